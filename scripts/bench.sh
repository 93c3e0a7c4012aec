#!/usr/bin/env bash
# Runs dnstun's end-to-end benchmark (bench/cmd/e2ebench) as root, entirely
# inside network namespaces it creates and removes, and writes
# bench/RESULTS.md, bench/results.json and bench/chart.png.
#
#   scripts/bench.sh            full run (about 6 min, < 10 min, on a 2-core
#                               machine)
#   scripts/bench.sh --smoke    a few seconds, 1 repetition, no targets,
#                               prints the tables only (CI)
#   scripts/bench.sh [e2ebench flags...]   e.g. --reps 5 --systems dnstun,ceiling
#                               (--tcp 0 skips the DNS-over-TCP phases,
#                               --lookups 0 the Go resolver lookup phase,
#                               --transports 0 the upstream transports phase,
#                               --cache-phase 0 the response cache phase;
#                               --transports-only or --cache-only runs that
#                               phase alone and prints its table, writing
#                               nothing)
#
# It installs the peers it compares against from Debian's packages
# (dnsmasq-base, unbound, dnsdist, dnsperf) when apt-get is there, with a
# policy-rc.d that keeps their distribution services from starting; every
# daemon is then run by the benchmark itself, in the foreground, inside a
# namespace, with its own config file. Set DNSTUN_BENCH_NO_INSTALL=1 to skip
# the install (absent peers are reported as not installed).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v go >/dev/null || export PATH=$PATH:/usr/local/go/bin

if [ "$(id -u)" != 0 ]; then
	exec sudo -E env "PATH=$PATH" "$0" "$@"
fi

smoke=0
for a in "$@"; do [ "$a" = --smoke ] || [ "$a" = -smoke ] && smoke=1; done

install_peers() {
	command -v apt-get >/dev/null || { echo "bench.sh: no apt-get; peers that are not installed are skipped" >&2; return 0; }
	local missing=()
	for p in dnsmasq:dnsmasq-base unbound:unbound dnsdist:dnsdist dnsperf:dnsperf; do
		local bin=${p%%:*} pkg=${p#*:}
		command -v "$bin" >/dev/null || [ -x "/usr/sbin/$bin" ] || missing+=("$pkg")
	done
	[ ${#missing[@]} = 0 ] && return 0
	echo "bench.sh: installing ${missing[*]} (services kept from starting)" >&2
	local prc=/usr/sbin/policy-rc.d created=0
	if [ ! -e "$prc" ]; then
		printf '#!/bin/sh\nexit 101\n' >"$prc"
		chmod 755 "$prc"
		created=1
	fi
	apt-get update -qq || true
	DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 ||
		echo "bench.sh: install failed; missing peers will be reported as not installed" >&2
	if [ $created = 1 ]; then rm -f "$prc"; fi
}

if [ "$smoke" = 0 ] && [ "${DNSTUN_BENCH_NO_INSTALL:-}" != 1 ]; then
	install_peers
fi

bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/e2ebench" ./bench/cmd/e2ebench
export DNSTUN_BENCH_COMMAND="scripts/bench.sh${*:+ $*}"
"$bin/e2ebench" "$@"

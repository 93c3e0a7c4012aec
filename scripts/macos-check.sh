#!/usr/bin/env bash
# Checks dnstun's macOS claims on a real Mac, one PASS/FAIL line per claim,
# ready to paste into an issue:
#
#   scripts/macos-check.sh            # builds dnstun, then asks for sudo
#   sudo scripts/macos-check.sh --bin /path/to/dnstun
#
# Written for the bash macOS ships (3.2): no bash-4 features.
#
# It builds dnstun, runs `dnstun run` with a two-name block list, first
# without and then with --capture, and checks each claim of the README's
# macOS section with the Mac's own tools (ifconfig, route, scutil,
# dscacheutil, dns-sd, dig when present): the utun and its addresses and
# host routes, the virtual resolver, the resolver key, lookups through the
# system resolver blocked and answered, the upstreams still answering after
# capture started, SIGTERM and kill -9 giving DNS back, `dnstun cleanup`.
#
# What it changes, and how it is undone: for a minute it runs dnstun, which
# publishes a temporary resolver key (gone when dnstun exits) and blocks
# example.org and www.example.org. Everything lives under /var/run/dnstun-check
# and a temporary directory; on exit (also on Ctrl-C or failure) it stops
# only the processes it started, by pid, runs `dnstun cleanup`, flushes the
# DNS caches and removes its directories. It needs network access: the
# checks resolve example.com, example.net and example.org.
set -uo pipefail
export LC_ALL=C PATH="/usr/bin:/bin:/usr/sbin:/sbin:$PATH"

STATE=/var/run/dnstun-check
KEY=State:/Network/Service/dnstun-dns-filter/DNS
RESOLVER4=198.19.53.53
RESOLVER6=fd64:6e73:7475::53
TUNADDR4=198.19.53.1
TUNADDR6=fd64:6e73:7475::1
BLOCKED=(example.org www.example.org)

die() { echo "macos-check: $*" >&2; exit 2; }

[ "$(uname -s)" = Darwin ] || die "this checks dnstun on macOS; on Linux run scripts/test.sh"

bin=""
if [ "${1:-}" = --bin ]; then
  bin=${2:-}
  [ -x "$bin" ] || die "--bin $bin: not an executable"
fi

if [ "$(id -u)" != 0 ]; then
  # Build as the user (their Go toolchain and cache), then check as root.
  command -v go >/dev/null || die "go is not in PATH (https://go.dev/dl/), or pass --bin with a built dnstun"
  build=$(mktemp -d "${TMPDIR:-/tmp}/dnstun-build.XXXXXX") || die "mktemp failed"
  repo=$(cd "$(dirname "$0")/.." && pwd)
  echo "== building dnstun (go build -o $build/dnstun ./cmd/dnstun)"
  if ! (cd "$repo" && go build -o "$build/dnstun" ./cmd/dnstun); then
    rm -rf "$build"
    die "go build failed"
  fi
  echo "== the checks need root: sudo"
  sudo "$0" --bin "$build/dnstun"
  rc=$?
  rm -rf "$build"
  exit "$rc"
fi

WORK=$(mktemp -d /tmp/dnstun-check.XXXXXX) || die "mktemp failed"
if [ -z "$bin" ]; then
  command -v go >/dev/null || die "go is not in root's PATH; run the script as your user (it builds, then uses sudo) or pass --bin"
  repo=$(cd "$(dirname "$0")/.." && pwd)
  echo "== building dnstun"
  (cd "$repo" && go build -o "$WORK/dnstun" ./cmd/dnstun) || die "go build failed"
  bin=$WORK/dnstun
fi

passed=0 failed=0 skipped=0
pass() { echo "PASS $*"; passed=$((passed + 1)); }
fail() { echo "FAIL $*"; failed=$((failed + 1)); }
skip() { echo "SKIP $*"; skipped=$((skipped + 1)); }
info() { echo "INFO $*"; }
# check CLAIM COMMAND...: PASS when the command succeeds.
check() {
  local claim=$1
  shift
  if "$@"; then pass "$claim"; else fail "$claim"; fi
}

STARTED=()   # every pid this script started, and only those
DNSTUN_PID=""
OWN_STATE="" # set once $STATE is known to belong to no running dnstun

cleanup() {
  local pid
  for pid in ${STARTED[@]+"${STARTED[@]}"}; do
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null
      for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$pid" 2>/dev/null || break; sleep 0.3; done
      kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    fi
  done
  if [ -n "$OWN_STATE" ]; then
    "$bin" cleanup --state-dir "$STATE" >/dev/null 2>&1
    rm -rf "$STATE"
  fi
  flush
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# flush drops the system's DNS caches, as Apple documents it (HUP makes
# mDNSResponder flush; nothing is stopped).
flush() {
  dscacheutil -flushcache
  killall -HUP mDNSResponder 2>/dev/null
  sleep 1
}

# resolves NAME: the system resolver (getaddrinfo's path) returns an IPv4
# address for NAME.
resolves() { dscacheutil -q host -a name "$1" 2>/dev/null | grep -q '^ip_address: '; }

# dnssd_answers NAME: mDNSResponder's API (dns-sd -G) returns an address
# for NAME within 3 s.
dnssd_answers() {
  local out=$WORK/dns-sd.out pid
  dns-sd -G v4 "$1" >"$out" 2>&1 &
  pid=$!
  STARTED+=("$pid")
  sleep 3
  kill -TERM "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  awk -v n="$1" '$2 == "Add" && ($5 == n || $5 == n ".") && $6 != "0.0.0.0" && !/No Such Record/ { found = 1 } END { exit !found }' "$out"
}

have_dig() { command -v dig >/dev/null; }
# dig_status SERVER NAME: the response code dig gets from SERVER.
dig_status() { dig +time=2 +tries=1 "@$1" "$2" A 2>/dev/null | awk '/status:/ { sub(",", "", $6); print $6; exit }'; }
dig_answers() { dig +time=2 +tries=1 +short "@$1" "$2" A 2>/dev/null | grep -qE '^[0-9.]+$'; }
nxdomain_at() { [ "$(dig_status "$1" "$2")" = NXDOMAIN ]; }

# tun_name: the utun that holds dnstun's IPv4 address ("" when none).
tun_name() {
  local i
  for i in $(ifconfig -l); do
    case $i in utun*) ifconfig "$i" 2>/dev/null | grep -q "inet $TUNADDR4 " && { echo "$i"; return; } ;; esac
  done
}
tun_ok() {
  local t=$1 out
  out=$(ifconfig "$t" 2>/dev/null) || return 1
  echo "$out" | head -1 | grep -q '<UP,' &&
    echo "$out" | grep -q "inet $TUNADDR4 " &&
    echo "$out" | grep -q "inet6 $TUNADDR6 prefixlen 128" &&
    ! echo "$out" | grep "inet6 $TUNADDR6 " | grep -qE 'tentative|duplicated'
}
routed_via() { route -n get "$1" "$2" 2>/dev/null | grep -q "interface: $3\$"; }
routes_ok() { routed_via -inet "$RESOLVER4" "$1" && routed_via -inet6 "$RESOLVER6" "$1"; }
key_show() { printf 'show %s\n' "$KEY" | scutil; }
key_gone() { key_show | grep -q 'No such key'; }
key_ours() {
  local out
  out=$(key_show)
  echo "$out" | grep -q "0 : $RESOLVER4\$" && echo "$out" | grep -q "DnstunPID : $1\$"
}
# first_resolver_is ADDR: scutil --dns's first resolver without a domain
# (the one every name goes to first) lists ADDR.
first_resolver_is() {
  scutil --dns | awk -v a="$1" '
    /^DNS configuration \(/ { exit }
    /^resolver #/ { if (inblk && !dom) exit; inblk = 1; dom = 0; hit = 0; next }
    /^  domain / { dom = 1 }
    /nameserver\[[0-9]+\] : / { if ($3 == a) hit = 1 }
    END { exit !(inblk && !dom && hit) }'
}
listed_anywhere() { scutil --dns | grep -q "nameserver\[[0-9]*\] : $1\$"; }
no_tun() { [ -z "$(tun_name)" ]; }
tun_and_routes() { tun_ok "$1" && routes_ok "$1"; }
# tun_gone TUN: the utun that was there is gone, and its route with it.
tun_gone() { [ -n "$1" ] && no_tun && ! routed_via -inet "$RESOLVER4" "$1"; }
blocked() { ! resolves "$1"; }
blocked_dnssd() { ! dnssd_answers "$1"; }
not_listed() { ! listed_anywhere "$RESOLVER4"; }
baseline_ok() { resolves "${BLOCKED[0]}" && resolves example.com; }
untouched() { key_gone && resolves "${BLOCKED[0]}"; }
status_ok() { "$bin" status --control "$STATE/control.sock" >/dev/null; }
term_withdraws() { stop_dnstun TERM && key_gone; }
gone_after_stop() { no_tun && not_listed; }
# pids_gone PID...: none of the pids runs (false without any pid).
pids_gone() {
  local p
  [ $# -gt 0 ] || return 1
  for p in "$@"; do kill -0 "$p" 2>/dev/null && return 1; done
  return 0
}
cleanup_clean() { "$bin" cleanup --state-dir "$STATE" >/dev/null && key_gone && [ ! -e "$STATE/journal.json" ]; }
gone_within() { # SECONDS COMMAND...: COMMAND succeeds within SECONDS
  local n=$(( $1 * 2 ))
  shift
  while [ "$n" -gt 0 ]; do "$@" && return 0; sleep 0.5; n=$((n - 1)); done
  return 1
}

# start_dnstun LOG ARGS...: starts dnstun run in the background; sets
# DNSTUN_PID; waits until it says it is ready.
start_dnstun() {
  local log=$1
  shift
  "$bin" run --blocklist "$WORK/block.txt" --state-dir "$STATE" --control "$STATE/control.sock" \
    --state-file "$STATE/state.json" --list-cache "$STATE/lists" --log-level info "$@" >"$log" 2>&1 &
  DNSTUN_PID=$!
  STARTED+=("$DNSTUN_PID")
  local n=40
  while [ "$n" -gt 0 ]; do
    if ! kill -0 "$DNSTUN_PID" 2>/dev/null; then
      echo "dnstun exited; its log:" >&2
      tail -20 "$log" >&2
      return 1
    fi
    grep -qE 'msg="(dnstun ready|capture on)' "$log" && return 0
    sleep 0.5
    n=$((n - 1))
  done
  echo "dnstun not ready after 20 s; its log:" >&2
  tail -20 "$log" >&2
  return 1
}
stop_dnstun() { # SIGNAL
  kill "-$1" "$DNSTUN_PID" 2>/dev/null
  for _ in $(seq 1 20); do kill -0 "$DNSTUN_PID" 2>/dev/null || break; sleep 0.5; done
  ! kill -0 "$DNSTUN_PID" 2>/dev/null
}

printf '0.0.0.0 %s\n' "${BLOCKED[@]}" >"$WORK/block.txt"

rev=$(git -C "$(dirname "$0")/.." describe --always --dirty 2>/dev/null || echo unknown)
echo "== dnstun macOS check: $(sw_vers -productName) $(sw_vers -productVersion) ($(sw_vers -buildVersion)), $(uname -m), dnstun $rev, $(date -u +%Y-%m-%dT%H:%MZ)"
if ! "$bin" cleanup --state-dir "$STATE" >/dev/null 2>&1; then
  die "$STATE is held by a running dnstun (another run of this script?); stop it first"
fi
OWN_STATE=1
mkdir -p "$STATE" && chmod 700 "$STATE"
flush

echo "== before dnstun"
check "baseline: ${BLOCKED[0]} and example.com resolve through the system resolver" baseline_ok
info "system resolvers before: $(scutil --dns | awk '/^DNS configuration \(/ { exit } /nameserver\[/ { printf "%s ", $3 }')"

echo "== dnstun run (no capture)"
if start_dnstun "$WORK/run1.log"; then
  TUN=$(tun_name)
  info "utun: ${TUN:-none}, pid $DNSTUN_PID"
  check "utun is up with $TUNADDR4 and $TUNADDR6 (not tentative)" tun_ok "$TUN"
  check "host routes to $RESOLVER4 and $RESOLVER6 go through the utun" routes_ok "$TUN"
  if have_dig; then
    check "the virtual resolver $RESOLVER4 forwards example.com" dig_answers "$RESOLVER4" example.com
    check "the virtual resolver $RESOLVER6 forwards example.com" dig_answers "$RESOLVER6" example.com
    check "the virtual resolver answers NXDOMAIN for listed ${BLOCKED[0]}" nxdomain_at "$RESOLVER4" "${BLOCKED[0]}"
  else
    skip "virtual resolver queries (dig not installed)"
  fi
  check "without --capture the system resolver is untouched (no key, ${BLOCKED[0]} resolves)" untouched
  check "the control socket answers dnstun status" status_ok
  check "SIGTERM stops dnstun" stop_dnstun TERM
  check "the utun is gone after stop" no_tun
else
  fail "dnstun run starts (see its log above)"
fi

echo "== dnstun run --capture"
flush
if start_dnstun "$WORK/run2.log" --capture; then
  TUN=$(tun_name)
  info "utun: ${TUN:-none}, pid $DNSTUN_PID"
  check "utun up with both addresses and host routes (capture)" tun_and_routes "$TUN"
  check "resolver key $KEY published with $RESOLVER4 and dnstun's pid" key_ours "$DNSTUN_PID"
  check "scutil --dns lists $RESOLVER4 first, for every domain" first_resolver_is "$RESOLVER4"
  info "scutil --dns, first resolver: $(scutil --dns | awk '/^resolver #2/ { exit } NR > 1 && NF { printf "%s; ", $0 }')"
  check "listed ${BLOCKED[1]} is blocked through the system resolver (dscacheutil)" blocked "${BLOCKED[1]}"
  check "listed ${BLOCKED[0]}, resolved before capture, is blocked (caches flushed on start)" blocked "${BLOCKED[0]}"
  check "listed ${BLOCKED[1]} is blocked through mDNSResponder's API (dns-sd -G)" blocked_dnssd "${BLOCKED[1]}"
  check "www.example.com is answered through the system resolver with capture on" resolves www.example.com
  check "www.example.com is answered through dns-sd with capture on" dnssd_answers www.example.com
  sleep 10
  check "upstreams still answer 10 s after capture started (example.net)" resolves example.net
  info "dnstun's upstream lines: $(grep -E 'upstream|resolver' "$WORK/run2.log" | tail -3 | tr '\n' ' ')"
  info "/etc/resolv.conf nameservers: $(awk '/^nameserver/ { printf "%s ", $2 }' /etc/resolv.conf 2>/dev/null)"
  if have_dig; then
    info "dig ${BLOCKED[1]} (resolv.conf path, not the system resolver): $(dig +time=2 +tries=1 "${BLOCKED[1]}" A 2>/dev/null | awk '/status:/ { sub(",", "", $6); print $6 }')"
  fi
  check "SIGTERM withdraws the key" term_withdraws
  check "after SIGTERM the utun and $RESOLVER4 are gone from the resolver list" gone_after_stop
  check "after SIGTERM ${BLOCKED[1]} resolves again (caches flushed on stop)" resolves "${BLOCKED[1]}"
else
  fail "dnstun run --capture starts (see its log above)"
fi

echo "== dnstun run --capture, then kill -9"
flush
if start_dnstun "$WORK/run3.log" --capture; then
  TUN=$(tun_name)
  scutil_pids=$(pgrep -P "$DNSTUN_PID" scutil | tr '\n' ' ')
  info "utun: ${TUN:-none}, pid $DNSTUN_PID, scutil child: ${scutil_pids:-none}"
  check "resolver key published (before kill -9)" key_ours "$DNSTUN_PID"
  kill -KILL "$DNSTUN_PID"
  wait "$DNSTUN_PID" 2>/dev/null
  check "kill -9: configd removes the key within 5 s" gone_within 5 key_gone
  # shellcheck disable=SC2086 # one word per pid
  check "kill -9: the scutil child ends with it" gone_within 5 pids_gone $scutil_pids
  check "kill -9: the utun and its routes are gone" tun_gone "$TUN"
  check "kill -9: scutil --dns no longer lists $RESOLVER4" gone_within 5 not_listed
  check "kill -9: a name not asked before (www.example.net) resolves at once" resolves www.example.net
  flush
  check "kill -9: listed ${BLOCKED[1]} resolves after a cache flush" resolves "${BLOCKED[1]}"
  check "dnstun cleanup succeeds and leaves no key and no journal" cleanup_clean
else
  fail "dnstun run --capture starts again (see its log above)"
fi

echo "== $passed passed, $failed failed"
[ "$skipped" = 0 ] || echo "== $skipped skipped"
[ "$failed" = 0 ]

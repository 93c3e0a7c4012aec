#!/usr/bin/env bash
# The whole test suite: formatting, vet (Linux and darwin), a darwin build,
# a bounded fuzz smoke run, then every test with the race detector.
#
# The end-to-end tests need root (network namespaces and a TUN); run as a
# normal user with sudo, the test binaries are built as you and run through
# `sudo -E`. Without root they skip with the reason, unless
# DNSTUN_REQUIRE_PRIV=1, which turns the skips into failures (CI sets it).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v go >/dev/null || export PATH=$PATH:/usr/local/go/bin

echo "== gofmt"
unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then echo "gofmt would change: $unformatted"; exit 1; fi
echo "== go vet (linux, darwin)"
go vet ./...
GOOS=darwin go vet ./...
echo "== darwin build"
GOOS=darwin go build ./...
echo "== fuzz smoke"
./scripts/fuzz.sh "${FUZZTIME:-6s}"

exec_flag=()
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then
  echo "== not root: running test binaries through sudo -E (for the namespace tests)"
  exec_flag=(-exec "sudo -E")
fi
echo "== hot-path packages without -race (their allocation tests only assert there)"
go test -count=1 ./packet ./filter ./engine ./querylog ./upstream ./cache ./attrib ./tap
echo "== go test -race ./..."
go test "${exec_flag[@]}" -race -count=1 -timeout=10m ./...

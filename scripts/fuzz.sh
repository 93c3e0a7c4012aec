#!/usr/bin/env bash
# Runs every fuzz target of the module for a bounded time each (default 10s;
# ./scripts/fuzz.sh 60s for longer). New crashers land in the package's
# testdata/fuzz/ and fail the run.
set -euo pipefail
cd "$(dirname "$0")/.."
time=${1:-10s}
# Every fuzz target of the module, found by name: a new one runs without
# being listed here.
mapfile -t targets < <(grep -rl --include='*_test.go' '^func Fuzz' . | sort | while read -r f; do
  grep -o '^func Fuzz[A-Za-z0-9_]*' "$f" | sed "s|^func |$(dirname "$f") |"
done)
[ ${#targets[@]} -gt 0 ] || { echo "fuzz.sh: no fuzz targets found" >&2; exit 1; }
for t in "${targets[@]}"; do
  read -r pkg name <<<"$t"
  echo "== fuzz $pkg $name for $time"
  # One worker: the machines are small and shared. A short minimisation
  # budget keeps the run bounded when a new interesting input appears.
  # Go's fuzzer sometimes ends a clean run with "context deadline
  # exceeded" when the time is up while its worker is busy, typically
  # minimising a new interesting input (no failing input is written then):
  # such a run is repeated, up to twice; a real crasher ("Failing input
  # written to ...") fails at once.
  for attempt in 1 2 3; do
    if out=$(go test "$pkg" -run='^$' -fuzz="^${name}\$" -fuzztime="$time" -fuzzminimizetime=2s -parallel=1 2>&1); then
      echo "$out" | tail -1
      break
    fi
    echo "$out" | tail -20
    if [ "$attempt" = 3 ] || echo "$out" | grep -q "Failing input written" || ! echo "$out" | grep -q "context deadline exceeded"; then
      exit 1
    fi
    echo "(fuzzer shut down late, no failing input: running $name once more)"
  done
done

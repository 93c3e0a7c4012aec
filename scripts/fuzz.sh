#!/usr/bin/env bash
# Runs every fuzz target of the module for a bounded time each (default 10s;
# ./scripts/fuzz.sh 60s for longer). New crashers land in the package's
# testdata/fuzz/ and fail the run.
set -euo pipefail
cd "$(dirname "$0")/.."
time=${1:-10s}
targets=(
  "./packet FuzzDecode"
  "./packet FuzzReadQuestion"
  "./packet FuzzAnswerInPlace"
  "./filter FuzzParseList"
  "./config FuzzParse"
)
for t in "${targets[@]}"; do
  read -r pkg name <<<"$t"
  echo "== fuzz $pkg $name for $time"
  # One worker: the machines are small and shared. A short minimisation
  # budget keeps the run bounded when a new interesting input appears.
  go test "$pkg" -run='^$' -fuzz="^${name}\$" -fuzztime="$time" -fuzzminimizetime=2s -parallel=1
done

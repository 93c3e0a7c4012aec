#!/usr/bin/env bash
# Builds dnstun and runs `dnstun demo` (root: through sudo when needed).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v go >/dev/null || export PATH=$PATH:/usr/local/go/bin
bin=$(mktemp -d)/dnstun
trap 'rm -rf "$(dirname "$bin")"' EXIT
# Without cgo: only such a binary can drop its capabilities on every thread
# after set-up (daemon/privs.go).
CGO_ENABLED=0 go build -o "$bin" ./cmd/dnstun
if [ "$(id -u)" = 0 ]; then "$bin" demo; else sudo "$bin" demo; fi

// SPDX-License-Identifier: MIT

//go:build race

package filter

// raceEnabled: the race detector makes sync.Pool drop items at random, so
// regexp (which pools its matchers) allocates under -race. The allocation
// tests assert only without it; scripts/test.sh runs them so.
const raceEnabled = true

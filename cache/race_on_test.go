// SPDX-License-Identifier: MIT

//go:build race

package cache_test

// raceEnabled: the eviction runs take ten times longer under the race
// detector and, on one goroutine, give it nothing to find; they are
// skipped there.
const raceEnabled = true

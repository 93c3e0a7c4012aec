// SPDX-License-Identifier: MIT

//go:build race

package main

// memoryScale: the test binary stands in for dnstun in the namespace
// tests, so under -race the daemon runs with the race detector, whose
// shadow memory multiplies what a connection costs (5-10x, Go's docs).
const memoryScale = 8

// SPDX-License-Identifier: MIT

//go:build !race

package main

// memoryScale: without the race detector, memory bounds hold as stated.
const memoryScale = 1

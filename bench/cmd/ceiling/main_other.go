// SPDX-License-Identifier: MIT

//go:build !linux

package main

import (
	"fmt"
	"os"
)

// The ceiling is the Linux benchmark's (bench/e2e runs on Linux only).
func main() {
	fmt.Fprintln(os.Stderr, "ceiling: Linux only (it opens /dev/net/tun)")
	os.Exit(1)
}

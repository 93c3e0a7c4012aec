// SPDX-License-Identifier: MIT

//go:build !linux

package main

import (
	"errors"
	"io"
)

func cmdDemo(args []string, stdout, stderr io.Writer) error {
	return errors.New("the demo builds Linux network namespaces and runs only on Linux; on this system use `dnstun run` and point a client at its resolver address")
}

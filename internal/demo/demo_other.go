// SPDX-License-Identifier: MIT

//go:build !linux

package demo

import (
	"context"
	"errors"
	"io"
)

// Row is one query of the demo and what happened to it (Linux only).
type Row struct{}

// Run is Linux-only: the demo builds network namespaces.
func Run(ctx context.Context, exe, env []string, out io.Writer) ([]Row, error) {
	return nil, errors.New("the demo builds Linux network namespaces and runs only on Linux; on this system use `dnstun run` and point a client at its resolver address")
}

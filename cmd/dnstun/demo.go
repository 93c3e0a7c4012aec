// SPDX-License-Identifier: MIT

package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/dnstun/dnstun/internal/demo"
)

func cmdDemo(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: dnstun demo\n\nRuns dnstun for real inside two throw-away network namespaces (root needed),\nsends real queries through its TUN and prints what happened to each.")
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("the demo needs root to create network namespaces and a TUN device.\n" +
			"Run it as root, e.g.:  go build -o dnstun ./cmd/dnstun && sudo ./dnstun demo")
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	_, err = demo.Run(ctx, []string{exe}, nil, stdout)
	return err
}

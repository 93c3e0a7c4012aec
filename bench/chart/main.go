// SPDX-License-Identifier: MIT

// Command chart draws the end-to-end benchmark's figure from a
// results.json written by bench/cmd/e2ebench: latency percentiles per
// system at the fixed rate (blocked and forwarded names), and grouped bars
// of saturation qps and of CPU per query.
//
//	cd bench/chart && go run . -in ../results.json -out ../chart.png
//
// It is a module of its own (github.com/dnstun/dnstun/bench/chart) so that
// gonum.org/v1/plot and its font, PDF and image modules stay out of the
// daemon's go.mod; e2ebench runs it with `go run` after writing
// results.json. It reads only the JSON (see report), never the e2e package.
package main

import (
	"flag"
	"fmt"
	"os"
)

func main() {
	in := flag.String("in", "../results.json", "results.json written by e2ebench")
	out := flag.String("out", "../chart.png", "the chart to write: SVG if it ends in .svg, else PNG")
	flag.Parse()
	if flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "chart: unexpected arguments:", flag.Args())
		flag.Usage()
		os.Exit(2)
	}
	r, err := readReport(*in)
	if err == nil {
		err = write(r, *out)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "chart:", err)
		os.Exit(1)
	}
}

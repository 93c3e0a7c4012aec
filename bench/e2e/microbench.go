// SPDX-License-Identifier: MIT

package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
)

// microPackages are the hot-path packages whose benchmarks RESULTS.md
// records (the filter's have their own section): every function of the
// per-packet path, each with its allocations.
var microPackages = []string{"packet", "engine", "querylog", "cache"}

// RunMicroBenches runs the hot-path packages' benchmarks in moduleDir,
// each name prefixed with its package, and returns them with the command
// line it used (the package stands for PKG).
func RunMicroBenches(ctx context.Context, moduleDir string) ([]*FilterBench, string, error) {
	var all []*FilterBench
	args := []string{"test", "./PKG", "-run", "^$", "-bench", ".", "-benchmem", "-count", strconv.Itoa(filterBenchCount), "-benchtime", "1s", "-timeout", "20m"}
	line := "go " + strings.Join(args, " ")
	for _, pkg := range microPackages {
		a := append([]string(nil), args...)
		a[1] = "./" + pkg
		cmd := exec.CommandContext(ctx, goTool(), a...)
		cmd.Dir = moduleDir
		out, err := cmd.CombinedOutput()
		if err != nil {
			return nil, line, fmt.Errorf("go %s: %w\n%s", strings.Join(a, " "), err, out)
		}
		benches, err := parseBenchOutput(strings.NewReader(string(out)))
		if err != nil {
			return nil, line, err
		}
		for _, b := range benches {
			b.Name = pkg + "/" + b.Name
		}
		all = append(all, benches...)
	}
	return all, line, nil
}

// microMarkdown renders the hot-path benchmarks.
func microMarkdown(r *Report) string {
	if len(r.Micro) == 0 {
		return ""
	}
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	w("\n## Hot path (micro-benchmarks)\n\n")
	w("`%s` for PKG in %s (on the client's core, after the runs above); median of %d runs, (min–max) when they differ. These are the figures the packages' benchmark files point to.\n\n", r.MicroCommand, strings.Join(microPackages, ", "), filterBenchCount)
	w("| benchmark | ns/op | B/op | allocs/op |\n|---|---|---|---|\n")
	for _, mb := range r.Micro {
		cells := []string{"–", "–", "–"}
		for i, u := range []string{"ns/op", "B/op", "allocs/op"} {
			if s := mb.Stat(u); s.N > 0 {
				prec := 1
				if i > 0 {
					prec = 0
				}
				cells[i] = f(s, 1, prec)
			}
		}
		w("| %s | %s |\n", mb.Name, strings.Join(cells, " | "))
	}
	return b.String()
}

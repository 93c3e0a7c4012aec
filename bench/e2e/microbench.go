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
var microPackages = []string{"packet", "engine", "querylog", "cache", "attrib", "tap"}

// RunMicroBenches runs the hot-path packages' benchmarks in moduleDir,
// each name prefixed with its package, and returns them with the command
// line it used (the package stands for PKG).
func RunMicroBenches(ctx context.Context, moduleDir string) ([]*FilterBench, string, error) {
	var all []*FilterBench
	args := []string{"test", "./PKG", "-run", "^$", "-bench", ".", "-benchmem", "-count", strconv.Itoa(filterBenchCount), "-benchtime", benchTime, "-timeout", "20m"}
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

// observabilityMarkdown renders what each observer costs the step: the
// engine's StepObserved benchmarks with it on, minus the same path with
// everything off, in ns and as a fraction of that path; and attribution's
// lookups, which run beside the step.
func observabilityMarkdown(r *Report) string {
	byName := map[string]*FilterBench{}
	for _, mb := range r.Micro {
		byName[mb.Name] = mb
	}
	med := func(name string) (float64, bool) {
		mb := byName[name]
		if mb == nil {
			return 0, false
		}
		s := mb.Stat("ns/op")
		return s.Med, s.N > 0
	}
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	rows := 0
	for _, o := range []struct{ name, what string }{
		{"metrics", "metrics (`--metrics`): counters and latency histograms"},
		{"tap", "dnstap (`--dnstap file:`): the step's two copies, and the writer's encoding and writing on the same core"},
		{"attrib/hit", "attribution, the socket cached"},
		{"attrib/miss", "attribution, not cached: a miss and a queued lookup (the lookup itself: below)"},
	} {
		var cells []string
		for _, path := range []string{"block", "forward"} {
			off, ok1 := med("engine/StepObserved/off/" + path)
			on, ok2 := med("engine/StepObserved/" + o.name + "/" + path)
			if !ok1 || !ok2 {
				cells = append(cells, "–", "–")
				continue
			}
			cells = append(cells, fmt.Sprintf("%+.0f", on-off), fmt.Sprintf("%+.2f", (on-off)/off))
		}
		if cells[0] == "–" && cells[2] == "–" {
			continue
		}
		if rows == 0 {
			w("\n## Observability: what each costs the step\n\n")
			w("The engine's `StepObserved` benchmarks (above) with one observer on, minus the same path with all off, medians of the runs; the fraction is of the path with all off (the step, not the whole forwarded round trip). Off, an observer is one predictable branch.\n\n")
			w("| observer | blocked: ns | blocked: fraction | forwarded: ns | forwarded: fraction |\n|---|---|---|---|---|\n")
		}
		rows++
		w("| %s | %s |\n", o.what, strings.Join(cells, " | "))
	}
	if rows == 0 {
		return ""
	}
	for _, l := range []struct{ name, what string }{
		{"attrib/LookupHit", "attribution's cache, a hit"},
		{"attrib/ResolveMiss", "a lookup, beside the step: a fresh socket of a process seen before (sock_diag, then that process's fds)"},
		{"attrib/ResolveScan", "a lookup, beside the step, at worst: an unknown process, found by reading every process's fd table"},
		{"tap/Log", "dnstap: one Log call (the copy into its queue)"},
		{"tap/WriterFile", "dnstap: the writer's encoding and writing of one message to a file"},
	} {
		if v, ok := med(l.name); ok {
			w("\n- %s: %.0f ns", l.what, v)
		}
	}
	w("\n")
	return b.String()
}

// SPDX-License-Identifier: MIT

package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
)

// FilterBench is one benchmark of the filter package: every metric `go
// test -bench` printed for it ("ns/op", "allocs/op", "heap-MB",
// "median-ns", ...), one value per -count run.
type FilterBench struct {
	Name    string
	Metrics map[string][]float64
}

// Stat returns the median and range of one metric (N=0 when absent).
func (f *FilterBench) Stat(unit string) Stat {
	return stat(f.Metrics[unit])
}

// filterBenchRegexp selects the filter benchmarks behind issue 3's figures:
// the 1M-name set (build, memory, Decide hot, cold and medians, a Go map
// beside it) and the real lists.
const filterBenchRegexp = `^Benchmark(Million|Decide|BuildReal)`

// filterBenchCount is how many times each benchmark runs, and
// benchTime for how long (go test -benchtime): 200 ms is millions of
// iterations of the nanosecond paths and about a thousand of the slowest
// (attribution's /proc scan), and keeps the filter and micro-benchmarks
// to about 1.5 min in all.
const (
	filterBenchCount = 3
	benchTime        = "200ms"
)

// RunFilterBenches runs the filter package's benchmarks in moduleDir and
// returns them with the command line it used.
func RunFilterBenches(ctx context.Context, moduleDir string) ([]*FilterBench, string, error) {
	args := []string{"test", "./filter", "-run", "^$", "-bench", filterBenchRegexp, "-benchmem",
		"-count", strconv.Itoa(filterBenchCount), "-benchtime", benchTime, "-timeout", "20m"}
	cmd := exec.CommandContext(ctx, goTool(), args...)
	cmd.Dir = moduleDir
	out, err := cmd.CombinedOutput()
	line := "go " + strings.Join(args, " ")
	if err != nil {
		return nil, line, fmt.Errorf("%s: %w\n%s", line, err, out)
	}
	benches, err := parseBenchOutput(strings.NewReader(string(out)))
	return benches, line, err
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

// parseBenchOutput reads `go test -bench` output: lines of a name, an
// iteration count, then value-unit pairs. The "-N" GOMAXPROCS suffix is
// dropped from names; lines that are not results are skipped.
func parseBenchOutput(r io.Reader) ([]*FilterBench, error) {
	var out []*FilterBench
	byName := map[string]*FilterBench{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") || len(f)%2 != 0 {
			continue
		}
		if _, err := strconv.Atoi(f[1]); err != nil {
			continue
		}
		name := strings.TrimPrefix(f[0], "Benchmark")
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			if _, err := strconv.Atoi(name[i+1:]); err == nil {
				name = name[:i]
			}
		}
		b := byName[name]
		if b == nil {
			b = &FilterBench{Name: name, Metrics: map[string][]float64{}}
			byName[name] = b
			out = append(out, b)
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return nil, fmt.Errorf("benchmark line %q: value %q: %w", sc.Text(), f[i], err)
			}
			b.Metrics[f[i+1]] = append(b.Metrics[f[i+1]], v)
		}
	}
	return out, sc.Err()
}

// filterMarkdown renders the filter benchmarks and issue 3's targets.
func filterMarkdown(r *Report) string {
	if len(r.Filter) == 0 {
		return ""
	}
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	w("\n## Filter engine\n\n")
	w("`%s` (on the client's core, after the runs above); median of %d runs, (min–max) when they differ. Million*: 1,000,000 distinct generated names in a hosts file (`filter/million_test.go`); Decide*: the real AdGuard DNS filter and StevenBlack hosts lists together.\n\n", r.FilterCommand, filterBenchCount)
	units := []string{"ns/op", "median-ns", "heap-MB", "peak-MB", "map-heap-MB", "B/op", "allocs/op"}
	w("| benchmark | %s |\n|---|%s\n", strings.Join(units, " | "), strings.Repeat("---|", len(units)))
	for _, fb := range r.Filter {
		cells := make([]string, len(units))
		for i, u := range units {
			cells[i] = "–"
			if s := fb.Stat(u); s.N > 0 {
				prec := 1
				if u == "ns/op" && s.Med >= 1e6 {
					cells[i] = f(s, 1e6, 0) + " ms"
					continue
				}
				if u == "B/op" || u == "allocs/op" {
					prec = 0
				}
				cells[i] = f(s, 1, prec)
			}
		}
		w("| %s | %s |\n", fb.Name, strings.Join(cells, " | "))
	}
	find := func(name string) *FilterBench {
		i := slices.IndexFunc(r.Filter, func(fb *FilterBench) bool { return fb.Name == name })
		if i < 0 {
			return nil
		}
		return r.Filter[i]
	}
	w("\n### Targets of issue 3 (filter engine)\n\n| target | measured | verdict |\n|---|---|---|\n")
	row := func(target, got string, ok, have bool) {
		v := "met"
		switch {
		case !have:
			v, got = "n/a", "not measured"
		case !ok:
			v = "**missed**"
		}
		w("| %s | %s | %s |\n", target, got, v)
	}
	allocs, n := 0.0, 0
	for _, fb := range r.Filter {
		if strings.HasPrefix(fb.Name, "MillionDecide/") && !strings.HasPrefix(fb.Name, "MillionDecide/map") || strings.HasPrefix(fb.Name, "Decide") {
			if s := fb.Stat("allocs/op"); s.N > 0 {
				allocs = max(allocs, s.Max)
				n++
			}
		}
	}
	row("Decide allocates nothing, hits and misses", fmt.Sprintf("at most %.0f allocs/op over %d benchmarks", allocs, n), allocs == 0, n > 0)
	med, rot := find("MillionDecide/median-name"), find("MillionDecide/median-rotate")
	if med != nil && rot != nil {
		m, c := med.Stat("median-ns"), rot.Stat("median-ns")
		row("1M names: Decide median < 100 ns, 4-label name", fmt.Sprintf("%.0f ns, each name's memory cached (median-name); %.0f ns cache-cold, a different name each call (median-rotate)", m.Med, c.Med),
			m.Med < 100, m.N > 0)
	} else {
		row("1M names: Decide median < 100 ns, 4-label name", "", false, false)
	}
	if bl := find("MillionBuild"); bl != nil {
		t, h, mh, pk := bl.Stat("ns/op"), bl.Stat("heap-MB"), bl.Stat("map-heap-MB"), bl.Stat("peak-MB")
		row("1M names: build from the file < 1 s", fmt.Sprintf("%.2f s", t.Med/1e9), t.Med < 1e9, t.N > 0)
		row("1M names: retained heap < 40 MB (beside a Go map of the names)", fmt.Sprintf("%.1f MB (map %.1f MB); build peak %.1f MB", h.Med, mh.Med, pk.Med), h.Med < 40, h.N > 0)
	}
	return b.String()
}

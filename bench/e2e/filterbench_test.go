// SPDX-License-Identifier: MIT

package e2e

import (
	"strings"
	"testing"
)

const benchOut = `goos: linux
goarch: amd64
pkg: github.com/dnstun/dnstun/filter
BenchmarkMillionBuild-2   	       3	 611291339 ns/op	  54.61 MB/s	        39.02 heap-MB	        39.88 map-heap-MB	        43.36 peak-MB	43215544 B/op	      81 allocs/op
BenchmarkMillionBuild-2   	       3	 1211291339 ns/op	  54.61 MB/s	        39.50 heap-MB	        39.88 map-heap-MB	        43.36 peak-MB	43215544 B/op	      81 allocs/op
BenchmarkMillionDecide/hit-hot-2         	 6462928	       83.3 ns/op	       0 B/op	       0 allocs/op
BenchmarkMillionDecide/median-name-2     	  100350	     11994 ns/op	       91.5 median-ns	       0 B/op	       0 allocs/op
BenchmarkMillionDecide/median-rotate-2   	   26091	     39903 ns/op	       214.0 median-ns	       0 B/op	       0 allocs/op
BenchmarkMillionDecide/map-hot-2         	63603967	        18.22 ns/op
BenchmarkDecideHit-2   	 1000	 150 ns/op	 0 B/op	 1 allocs/op
PASS
ok  	github.com/dnstun/dnstun/filter	60.1s
`

func TestParseBenchOutput(t *testing.T) {
	bs, err := parseBenchOutput(strings.NewReader(benchOut))
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 6 || bs[0].Name != "MillionBuild" || bs[1].Name != "MillionDecide/hit-hot" {
		t.Fatalf("parsed %d benchmarks: %+v", len(bs), bs)
	}
	if got := bs[0].Metrics["ns/op"]; len(got) != 2 || got[1] != 1211291339 {
		t.Errorf("MillionBuild ns/op %v", got)
	}
	if s := bs[0].Stat("heap-MB"); s.N != 2 || s.Min != 39.02 || s.Max != 39.5 {
		t.Errorf("heap-MB %+v", s)
	}
	r := &Report{Filter: bs, FilterCommand: "go test ./filter"}
	md := filterMarkdown(r)
	for _, want := range []string{
		"| Decide allocates nothing, hits and misses | at most 1 allocs/op over 4 benchmarks | **missed** |",
		"| 1M names: Decide median < 100 ns, 4-label name | 92 ns, each name's memory cached (median-name); 214 ns cache-cold",
		"| 1M names: build from the file < 1 s | 0.91 s | met |",
		"| 1M names: retained heap < 40 MB (beside a Go map of the names) | 39.3 MB (map 39.9 MB); build peak 43.4 MB | met |",
		"| MillionBuild | 911 (611–1211) ms |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}

func TestMicroMarkdown(t *testing.T) {
	bs, err := parseBenchOutput(strings.NewReader(`goos: linux
BenchmarkStep/block/v4-2   	 2000000	       570.0 ns/op	       0 B/op	       0 allocs/op
BenchmarkStep/block/v4-2   	 2000000	       610.0 ns/op	       0 B/op	       0 allocs/op
BenchmarkStep/block/v4-2   	 2000000	       590.0 ns/op	       0 B/op	       0 allocs/op
PASS
`))
	if err != nil {
		t.Fatal(err)
	}
	bs[0].Name = "engine/" + bs[0].Name
	md := microMarkdown(&Report{Micro: bs, MicroCommand: "go test ./PKG -bench ."})
	if want := "| engine/Step/block/v4 | 590.0 (570.0–610.0) | 0 | 0 |"; !strings.Contains(md, want) {
		t.Errorf("markdown lacks %q:\n%s", want, md)
	}
	if microMarkdown(&Report{}) != "" {
		t.Error("a report without micro-benchmarks renders a section")
	}
}

// TestObservabilityMarkdown: each observer's cost is its StepObserved run
// minus the all-off run, in ns and as a fraction of that run.
func TestObservabilityMarkdown(t *testing.T) {
	bs, err := parseBenchOutput(strings.NewReader(`goos: linux
BenchmarkStepObserved/off/block-2   	 2000000	       500.0 ns/op	       0 B/op	       0 allocs/op
BenchmarkStepObserved/off/forward-2   	 2000000	       4000 ns/op	       0 B/op	       0 allocs/op
BenchmarkStepObserved/metrics/block-2   	 2000000	       550.0 ns/op	       0 B/op	       0 allocs/op
BenchmarkStepObserved/metrics/forward-2   	 2000000	       4100 ns/op	       0 B/op	       0 allocs/op
BenchmarkStepObserved/attrib/hit/block-2   	 2000000	       600.0 ns/op	       0 B/op	       0 allocs/op
PASS
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bs {
		b.Name = "engine/" + b.Name
	}
	md := observabilityMarkdown(&Report{Micro: bs})
	for _, want := range []string{
		"| metrics (`--metrics`): counters and latency histograms | +50 | +0.10 | +100 | +0.03 |",
		"| attribution, the socket cached | +100 | +0.20 | – | – |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "dnstap (") {
		t.Errorf("a row for an observer without figures:\n%s", md)
	}
	if observabilityMarkdown(&Report{}) != "" {
		t.Error("a report without the benchmarks renders a section")
	}
}

// SPDX-License-Identifier: MIT

package main

import (
	"bytes"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestCommittedResults reads the committed bench/results.json through the
// chart's own view of it: every phase it names is one the chart knows, and
// every figure the chart draws is there (a field renamed in e2e.Report
// would decode as zero here), then draws it as PNG and SVG.
func TestCommittedResults(t *testing.T) {
	r, err := readReport("../results.json")
	if err != nil {
		t.Fatal(err)
	}
	if r.Options.Rate <= 0 {
		t.Errorf("Options.Rate = %v", r.Options.Rate)
	}
	figures := []struct {
		name string
		get  func(*phase) float64
	}{
		{"QPS", func(p *phase) float64 { return p.QPS }},
		{"CPUPerQuery", func(p *phase) float64 { return float64(p.CPUPerQuery) }},
	}
	for _, pc := range percentiles {
		figures = append(figures, struct {
			name string
			get  func(*phase) float64
		}{"Latency." + pc.label, func(p *phase) float64 { return float64(pc.get(p)) }})
	}
	ran := 0
	for _, s := range r.Systems {
		if len(s.Reps) == 0 {
			continue
		}
		ran++
		if !s.hasResults() {
			t.Errorf("%s: repetitions but no answered phase", s.Name)
		}
		for _, rp := range s.Reps {
			for ph := range rp.Phases {
				if !slices.Contains(phases, ph) {
					t.Errorf("%s: phase %q is not one of %v", s.Name, ph, phases)
				}
			}
		}
		for ph := range s.Reps[0].Phases {
			for _, f := range figures {
				if v := s.median(ph, f.get); !(v > 0) {
					t.Errorf("%s %s: median %s = %v, want > 0", s.Name, ph, f.name, v)
				}
			}
		}
	}
	if ran < 2 {
		t.Fatalf("%d systems with results", ran)
	}
	dir := t.TempDir()
	pngPath := filepath.Join(dir, "chart.png")
	if err := write(r, pngPath); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(pngPath)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	// 30 x 22 cm at 120 dpi.
	if sz := img.Bounds().Size(); sz.X != 1417 || sz.Y != 1039 {
		t.Errorf("PNG is %v, want 1417x1039", sz)
	}
	svgPath := filepath.Join(dir, "chart.svg")
	if err := write(r, svgPath); err != nil {
		t.Fatal(err)
	}
	svg, err := os.ReadFile(svgPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<svg", "Saturation (closed loop)", "dnstun"} {
		if !bytes.Contains(svg, []byte(want)) {
			t.Errorf("SVG lacks %q", want)
		}
	}
}

func TestMedian(t *testing.T) {
	p := func(answered int64, qps float64) *phase { return &phase{Answered: answered, QPS: qps} }
	qps := func(p *phase) float64 { return p.QPS }
	for _, tc := range []struct {
		name string
		reps []*rep
		want float64
	}{
		{"none", nil, math.NaN()},
		{"odd", []*rep{{map[string]*phase{closedBlocked: p(1, 30)}}, {map[string]*phase{closedBlocked: p(1, 10)}}, {map[string]*phase{closedBlocked: p(1, 20)}}}, 20},
		{"even", []*rep{{map[string]*phase{closedBlocked: p(1, 30)}}, {map[string]*phase{closedBlocked: p(1, 10)}}}, 20},
		{"unanswered skipped", []*rep{{map[string]*phase{closedBlocked: p(0, 99)}}, {map[string]*phase{closedBlocked: p(1, 10)}}}, 10},
		{"phase missing", []*rep{{map[string]*phase{closedForward: p(1, 10)}}}, math.NaN()},
	} {
		got := (&system{Reps: tc.reps}).median(closedBlocked, qps)
		if got != tc.want && !(math.IsNaN(got) && math.IsNaN(tc.want)) {
			t.Errorf("%s: median %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestNothingToDraw: a report whose systems never answered, or JSON that is
// not e2ebench's, is an error, not an empty chart.
func TestNothingToDraw(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, json, err string }{
		{"no systems", `{"Options":{"Rate":1000},"Systems":[]}`, "no system has results"},
		{"not installed", `{"Systems":[{"Name":"unbound","Why":"not installed","Reps":null}]}`, "no system has results"},
		{"renamed phases", `{"Systems":[{"Name":"dnstun","Reps":[{"Phases":{"saturation":{"Answered":5,"QPS":9}}}]}]}`, "no system has results"},
		{"not JSON", `not json`, "invalid character"},
	} {
		in := filepath.Join(dir, "results.json")
		if err := os.WriteFile(in, []byte(tc.json), 0o644); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(dir, tc.name+".png")
		r, err := readReport(in)
		if err == nil {
			err = write(r, out)
		}
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.err)
		}
		if _, serr := os.Stat(out); serr == nil {
			t.Errorf("%s: wrote %s anyway", tc.name, out)
		}
	}
}

// SPDX-License-Identifier: MIT

package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"slices"
	"time"
)

// The phases this chart reads, as e2e names them (bench/e2e/report.go).
const (
	closedBlocked = "closed-blocked"
	closedForward = "closed-forward"
	openBlocked   = "open-blocked"
	openForward   = "open-forward"
)

var phases = []string{closedBlocked, closedForward, openBlocked, openForward}

// report is the part of bench/e2e's Report that the chart draws, decoded
// from results.json. The field names are e2e's (encoding/json's default
// names), durations its nanoseconds. This module does not import e2e, so
// that the daemon's module never needs the plotting library nor this one
// the daemon's dependencies: results.json is the interface, and
// TestCommittedResults checks that the committed one still decodes into
// these fields.
type report struct {
	Options struct {
		Rate float64 // open-loop rate, queries per second
	}
	Systems []*system
}

type system struct {
	Name string
	Reps []*rep
}

type rep struct {
	Phases map[string]*phase
}

type phase struct {
	Answered int64
	QPS      float64
	Latency  struct {
		P50, P90, P99, P999 time.Duration
	}
	CPUPerQuery time.Duration
}

// readReport decodes the results.json at path.
func readReport(path string) (*report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &r, nil
}

// hasResults reports whether s answered in at least one known phase.
func (s *system) hasResults() bool {
	for _, ph := range phases {
		if !math.IsNaN(s.median(ph, func(p *phase) float64 { return p.QPS })) {
			return true
		}
	}
	return false
}

// median of fn over the repetitions of s that answered in ph, as e2e's
// Stat computes it (mean of the middle two for an even count); NaN when
// none did.
func (s *system) median(ph string, fn func(*phase) float64) float64 {
	var v []float64
	for _, r := range s.Reps {
		if p := r.Phases[ph]; p != nil && p.Answered > 0 {
			v = append(v, fn(p))
		}
	}
	if len(v) == 0 {
		return math.NaN()
	}
	slices.Sort(v)
	if len(v)%2 == 0 {
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return v[len(v)/2]
}

// SPDX-License-Identifier: MIT

package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/dnstun/dnstun/bench/loadgen"
)

// TestTCPMarkdown renders the TCP table from a made-up report: figures
// for a system that answered, "failed" with the first error for one that
// did not, and the systems without TCP phases named below the table.
func TestTCPMarkdown(t *testing.T) {
	ok := func(q float64) *PhaseResult {
		return &PhaseResult{Sent: 1000, Answered: 1000, QPS: q, Rcodes: map[int]int64{0: 1000}, CPUPerQuery: 30 * time.Microsecond,
			Latency: loadgen.Percentiles{Count: 1000, P50: 500 * time.Microsecond, P99: 2 * time.Millisecond}}
	}
	failed := &PhaseResult{ConnFailed: 16, Errors: 16, FirstError: "dial tcp 198.19.53.53:53: i/o timeout"}
	o := Defaults()
	r := &Report{Options: o, Systems: []*SystemReport{
		{Name: "unbound", Reps: []*RepResult{
			{Phases: map[string]*PhaseResult{ClosedForward: ok(1), TCP1Forward: ok(10000), TCPNForward: ok(30000)}},
			{Phases: map[string]*PhaseResult{ClosedForward: ok(1), TCP1Forward: ok(12000), TCPNForward: ok(32000)}},
		}},
		{Name: "dnstun", Reps: []*RepResult{
			{Phases: map[string]*PhaseResult{ClosedForward: ok(1), TCP1Forward: failed, TCPNForward: ok(20000),
				TCP1Blocked: {Sent: 100, Answered: 90, Lost: 10, Closed: 10, Rcodes: map[int]int64{3: 90}, QPS: 900, FirstError: "read: connection reset | peer"}}},
		}},
		{Name: "ceiling", Reps: []*RepResult{{Phases: map[string]*PhaseResult{ClosedBlocked: ok(1)}}}},
		{Name: "dnsdist", Why: "not installed"},
	}}
	md := tcpMarkdown(r)
	t.Log("\n" + md)
	for _, want := range []string{
		"## DNS over TCP: saturation (closed loop)",
		"16 connections at a time, each carrying 100 queries one after the other",
		"| unbound | forwarded | 11000 (10000–12000) | 500 | 2000 | 30.0 | 31000 (30000–32000) | 500 | 2000 | 30.0 | none |",
		"| dnstun | forwarded | **failed** | – | – | – | 20000 | 500 | 2000 | 30.0 | 1/conn: 16 connects failed (first error: `dial tcp 198.19.53.53:53: i/o timeout`) |",
		"| dnstun | blocked | 900 | 0 | 0 | 0.0 | – | – | – | – | 1/conn: 10 of 100 lost, 10 connections closed by the server (first error: `read: connection reset \\| peer`) |",
		"Not measured over TCP: ceiling (UDP only).",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("TCP table lacks %q", want)
		}
	}
	if strings.Contains(md, "| dnsdist |") {
		t.Error("a system that did not run is in the TCP table")
	}
	o.TCPPipeline = 4
	r.Options = o
	if md := tcpMarkdown(r); !strings.Contains(md, "4 connections at a time, each carrying 100 queries with up to 4 pipelined") {
		t.Errorf("pipelined method line missing:\n%s", md)
	}
	r.Systems = r.Systems[2:]
	if md := tcpMarkdown(r); md != "" {
		t.Errorf("no TCP phases, yet:\n%s", md)
	}
}

// SPDX-License-Identifier: MIT

package e2e

import (
	"encoding/json"
	"os"
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

// TestTransportsMarkdown renders the transports table from a made-up
// report: ratios to the system's UDP and to dnsdist, the reason for a
// transport dnsdist does not have, a run that failed every repetition.
func TestTransportsMarkdown(t *testing.T) {
	run := func(transport, system string, cpu time.Duration, q float64) *TransportRun {
		p := &PhaseResult{Sent: 1000, Answered: 1000, QPS: q, Rcodes: map[int]int64{0: 1000}, CPUPerQuery: cpu,
			Latency: loadgen.Percentiles{Count: 1000, P50: 400 * time.Microsecond}}
		return &TransportRun{Transport: transport, System: system, Server: "unbound", Upstream: "how-" + transport,
			Reps: []*TransportRep{{Closed: p, Open: p, ServerCPUPerQuery: 5 * time.Microsecond}}}
	}
	doq := run(TransportDoQ, "dnstun", 30*time.Microsecond, 20000)
	doq.Server = "quicupstream"
	r := &Report{Options: Defaults(), Transports: &TransportsReport{
		Unbound: "unbound 1.17.1", QUIC: "quicupstream", UnboundAt: "here", QUICAt: "there",
		Runs: []*TransportRun{
			run(TransportUDP, "dnstun", 10*time.Microsecond, 50000),
			run(TransportUDP, "dnsdist", 8*time.Microsecond, 60000),
			run(TransportDoT, "dnstun", 15*time.Microsecond, 40000),
			{Transport: TransportDoT, System: "dnsdist", Server: "unbound", Upstream: "{tls}"},
			doq,
			{Transport: TransportDoQ, System: "dnsdist", Server: "quicupstream", Why: "not supported by dnsdist 1.7.3"},
		},
	}}
	md := transportsMarkdown(r)
	t.Log("\n" + md)
	for _, want := range []string{
		"## Upstream transports: forwarded names",
		"| udp | unbound | dnstun | 50000 | 10.00 | 1.00x | 1.25x | 400.0 | 0.00 | 5.00 |  |",
		"| dot | unbound | dnstun | 40000 | 15.00 | 1.50x | – | 400.0 | 0.00 | 5.00 |  |",
		"| dot | unbound | dnsdist | **failed** (see the failures below) |",
		"| doq | quicupstream (ours) | dnstun | 20000 | 30.00 | 3.00x | – |",
		"| doq | quicupstream (ours) | dnsdist | not supported by dnsdist 1.7.3 | – |",
		"dnstun's `--upstream`: udp `how-udp`; dot `how-dot`; doq `how-doq`.",
		"dnsdist's `newServer`: udp `how-udp`; dot `{tls}`.",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("transports table lacks %q", want)
		}
	}
	r.Transports = &TransportsReport{Why: "not run: unbound is not installed"}
	if md := transportsMarkdown(r); !strings.Contains(md, "not run: unbound is not installed") {
		t.Errorf("the reason the phase did not run is missing:\n%s", md)
	}
	r.Transports = nil
	if md := transportsMarkdown(r); md != "" {
		t.Errorf("no transports phase, yet:\n%s", md)
	}
}

// TestRenderCommittedResults renders the committed results.json, as
// `e2ebench -from bench/results.json` does: a report from before a phase
// existed must still render, without that phase's section.
func TestRenderCommittedResults(t *testing.T) {
	b, err := os.ReadFile("../results.json")
	if err != nil {
		t.Skipf("no committed results: %v", err)
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("bench/results.json: %v", err)
	}
	md := Markdown(&r, false)
	if !strings.Contains(md, "## Forwarded names: saturation") {
		t.Error("the forwarded table is missing")
	}
	if got := strings.Contains(md, "## Upstream transports"); got != (r.Transports != nil) {
		t.Errorf("transports section rendered: %v, report has the phase: %v", got, r.Transports != nil)
	}
}

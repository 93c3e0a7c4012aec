// SPDX-License-Identifier: MIT

package e2e

import (
	"encoding/json"
	"os"
	"slices"
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

// TestLookupsMarkdown renders the lookup table from a made-up report: CPU
// per lookup over twice the UDP CPU per query, over the ceiling's
// (blocked) and dnsdist's (forwarded), the p50 over the ceiling's and
// direct's, sockets per lookup, a mix that failed with its first error,
// and nothing without the phase.
func TestLookupsMarkdown(t *testing.T) {
	udp := func(cpu time.Duration) *PhaseResult {
		return &PhaseResult{Sent: 1000, Answered: 1000, QPS: 100000, CPUPerQuery: cpu}
	}
	run := func(cpu, p50 time.Duration, lps float64) *LookupRuns {
		closed := &LookupRun{LookupResult: loadgen.LookupResult{Lookups: 1000, Found: 1000, Sockets: 2000, LPS: lps,
			Latency: loadgen.Percentiles{Count: 1000, P50: 5 * time.Millisecond}}, CPUPerLookup: cpu, CorePerLookup: cpu + time.Microsecond}
		open := &LookupRun{LookupResult: loadgen.LookupResult{Lookups: 1000, Found: 990, Failed: 10, Sockets: 2000, LPS: 1000,
			Latency: loadgen.Percentiles{Count: 990, P50: p50}}}
		return &LookupRuns{Closed: closed, Open: open}
	}
	failed := &LookupRun{LookupResult: loadgen.LookupResult{Lookups: 100, Failed: 100, Sockets: 200, FirstError: "lookup x.example.: i/o timeout"}}
	us := time.Microsecond
	r := &Report{Options: Defaults(), Systems: []*SystemReport{
		{Name: "direct", Reps: []*RepResult{{Phases: map[string]*PhaseResult{ClosedForward: udp(2 * us)},
			Lookups: map[string]*LookupRuns{LookupForward: run(5*us, 200*us, 9000)}}}},
		{Name: "dnstun", Reps: []*RepResult{
			{Phases: map[string]*PhaseResult{ClosedBlocked: udp(5 * us), ClosedForward: udp(10 * us)},
				Lookups: map[string]*LookupRuns{LookupBlocked: run(40*us, 300*us, 8000), LookupForward: run(60*us, 400*us, 6000)}},
			{Phases: map[string]*PhaseResult{ClosedBlocked: udp(5 * us), ClosedForward: udp(10 * us)},
				Lookups: map[string]*LookupRuns{LookupBlocked: run(50*us, 300*us, 7000), LookupForward: run(60*us, 400*us, 6000)}},
		}},
		{Name: "dnsmasq", Reps: []*RepResult{{Phases: map[string]*PhaseResult{ClosedForward: udp(20 * us)}}}},
		{Name: "dnsdist", Reps: []*RepResult{{Phases: map[string]*PhaseResult{ClosedBlocked: udp(4 * us), ClosedForward: udp(8 * us)},
			Lookups: map[string]*LookupRuns{LookupBlocked: {Closed: failed, Open: failed}, LookupForward: run(30*us, 350*us, 9000)}}}},
		{Name: "ceiling", Reps: []*RepResult{{Phases: map[string]*PhaseResult{ClosedBlocked: udp(4 * us)},
			Lookups: map[string]*LookupRuns{LookupBlocked: run(20*us, 250*us, 9500)}}}},
	}}
	md := lookupsMarkdown(r)
	t.Log("\n" + md)
	for _, want := range []string{
		"## Go's resolver as the client: lookups, a fresh socket per query",
		"Closed loop for 1s with 32 lookups at a time (64 queries in flight",
		"then 1000 lookups a second (2000 queries a second",
		"| system | names | lookups/s | CPU µs/lookup | x 2 UDP queries | x ceiling / dnsdist | core µs/lookup | p50 µs at 1000/s |",
		"| direct | forwarded | 9000 | 5.00 | 1.25x | 0.17x | 6.00 | 200.0 | +0.0 | 2.00 |",
		"| dnstun | blocked | 7500 (7000–8000) | 45.00 (40.00–50.00) | 4.50x | 2.25x | 46.00 (41.00–51.00) | 300.0 | +50.0 | 2.00 |",
		"| dnstun | forwarded | 6000 | 60.00 | 3.00x | 2.00x | 61.00 | 400.0 | +200.0 | 2.00 |",
		"| dnsdist | blocked | **failed** | – | – | – | – | – | – | – |\n",
		"| dnsdist | forwarded | 9000 | 30.00 | 1.88x | 1.00x | 31.00 | 350.0 | +150.0 | 2.00 |",
		"| ceiling | blocked | 9500 | 20.00 | 2.50x | 1.00x | 21.00 | 250.0 | +0.0 | 2.00 |",
		"dnsdist, blocked: 200 of 200 failed (first error: `lookup x.example.: i/o timeout`)",
		"Failed lookups (closed and open loop): direct, forwarded: 10 of 2000 failed; dnstun, blocked: 20 of 4000 failed;",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("lookup table lacks %q", want)
		}
	}
	if strings.Contains(md, "| dnsmasq |") {
		t.Error("a system without lookup runs is in the lookup table")
	}
	if !strings.Contains(Markdown(r, true), "## Go's resolver as the client") {
		t.Error("Markdown lacks the lookup table")
	}
	for _, s := range r.Systems {
		for _, rr := range s.Reps {
			rr.Lookups = nil
		}
	}
	if md := lookupsMarkdown(r); md != "" {
		t.Errorf("no lookup phase, yet:\n%s", md)
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
	if got := strings.Contains(md, "## Response cache"); got != (r.Cache != nil) {
		t.Errorf("cache section rendered: %v, report has the phase: %v", got, r.Cache != nil)
	}
}

// TestCacheMarkdown renders the cache tables from a made-up report: the
// ratio to dnstun's blocked path and the p50 over the ceiling's, the
// warm-up and upstream checks, a peer that is not installed, one that
// failed, the targets, and the fill's table; nothing without the
// phase.
func TestCacheMarkdown(t *testing.T) {
	rep := func(cpu, p50 time.Duration, hits bool) *CacheRep {
		p := &PhaseResult{Sent: 1000, Answered: 1000, QPS: 100000, Rcodes: map[int]int64{0: 1000}, CPUPerQuery: cpu,
			Latency: loadgen.Percentiles{Count: 1000, P50: p50, P99: 2 * p50}}
		if !hits {
			p.Rcodes = map[int]int64{3: 1000}
		}
		r := &CacheRep{Closed: p, Open: p}
		if hits {
			r.WarmAnswered, r.UpstreamWarm = 10000, 10000
		}
		return r
	}
	r := &Report{Options: Defaults(), Cache: &CacheReport{TTL: 3600, Upstream: "192.0.2.1:5354",
		Runs: []*CacheRun{
			{System: "dnstun", Path: CacheHits, Config: "`--cache 64MiB` (the default)", Reps: []*CacheRep{
				rep(5*time.Microsecond, 230*time.Microsecond, true), rep(6*time.Microsecond, 240*time.Microsecond, true)}},
			{System: "dnstun", Path: CacheBlocked, Config: "`--cache 64MiB` (the default)", Reps: []*CacheRep{
				rep(5*time.Microsecond, 220*time.Microsecond, false)}},
			{System: "ceiling", Path: CacheBlocked, Reps: []*CacheRep{rep(4*time.Microsecond, 225*time.Microsecond, false)}},
			{System: "dnsmasq", Path: CacheHits, Config: "`cache-size=20000`", Why: "not installed"},
			{System: "unbound", Path: CacheHits, Config: "`msg-cache-size: 16m`"},
		},
		Fill: &CacheFill{CacheSize: "64MiB", Names: 1000000, Sent: 1000000, Answered: 1000000, Took: 50 * time.Second,
			Upstream: 1000000, Entries: 280000, Bytes: 66000000, Evictions: 720000, RSSStart: 30 << 10, RSS: 120 << 10, HWM: 125 << 10,
			ZipfS: 1, ZipfQueries: 100000, ZipfAnswered: 100000, ZipfHits: 60000, ZipfMisses: 40000, ZipfEntries: 281000, TopShare: 0.71},
	}}
	md := cacheMarkdown(r, false)
	t.Log("\n" + md)
	for _, want := range []string{
		"## Response cache: warmed hits",
		"dnstun `--cache 64MiB` (the default); dnsmasq `cache-size=20000`; unbound `msg-cache-size: 16m`",
		"| dnstun | hits | 100000 | 5.50 (5.00–6.00) | 1.10x | 235.0 (230.0–240.0) | 470.0 (460.0–480.0) | +10.0 | 0.00 | 10000 / 10000 | 0 |",
		"| dnstun | blocked | 100000 | 5.00 | 1.00x | 220.0 | 440.0 | -5.0 | 0.00 | – | – |",
		"| ceiling | blocked | 100000 | 4.00 | 0.80x | 225.0 | 450.0 | +0.0 | 0.00 | – | – |",
		"| dnsmasq | hits | not installed | – |",
		"| unbound | hits | **failed** (see the failures below) | – |",
		"| dnstun: a hit's CPU/q <= 1.1x a blocked query's | 5.50 µs vs 5.00 µs = 1.10x | met |",
		"| dnstun: hit p50 <= ceiling p50 + 10 µs | +10.0 µs | met |",
		"## Response cache: 1000000 distinct names with `--cache 64MiB`",
		"| `cache_entries` after the fill | 280000 |",
		"| `cache_evictions` after the fill | 720000 |",
		"| dnstun RSS MiB: before the fill / after / peak (VmHWM) | 30.0 / 120.0 / 125.0 |",
		"| **hit ratio** over the pass | **0.600** (60000 hits, 40000 misses) |",
		"| share of the pass's queries for the 281000 most popular names | 0.710 |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("cache tables lack %q", want)
		}
	}
	if strings.Contains(md, "Unexpected answers") {
		t.Error("answers of the expected rcodes reported as unexpected")
	}
	if md := cacheMarkdown(r, true); strings.Contains(md, "Targets of issue 13") {
		t.Error("a smoke run has no targets")
	}
	r.Cache.Runs[0].Reps[0].Closed.Rcodes = map[int]int64{0: 990, 2: 10} // also the Open run: the same PhaseResult
	if md := cacheMarkdown(r, false); !strings.Contains(md, "dnstun hits: 20 of 4000 answers not NOERROR") {
		t.Errorf("wrong rcodes not reported:\n%s", md)
	}
	r.Cache = &CacheReport{Why: "not run: the cache phase's upstream did not answer"}
	if md := cacheMarkdown(r, false); !strings.Contains(md, "not run: the cache phase's upstream did not answer") {
		t.Errorf("the reason the phase did not run is missing:\n%s", md)
	}
	r.Cache = nil
	if md := cacheMarkdown(r, false); md != "" {
		t.Errorf("no cache phase, yet:\n%s", md)
	}
	if md := Markdown(r, false); strings.Contains(md, "response cache tables") {
		t.Error("the load line mentions the cache tables of a report without them")
	}
}

// TestZipf: ranks follow 1/r (rank 0 about twice as often as rank 1, and
// the top 10% of 10,000 names take about ln(1000)/ln(10000) of the
// draws), names are a permutation of the ranks, and the draws are the
// same for the same seeds.
func TestZipf(t *testing.T) {
	const n, k = 10000, 200000
	z := newZipf(n, 1, 7)
	seen := make(map[int32]bool, n)
	for _, name := range z.name {
		seen[name] = true
	}
	if len(seen) != n {
		t.Fatalf("names are not a permutation: %d distinct of %d", len(seen), n)
	}
	names, ranks := z.sample(k, 8)
	count := make([]int, n)
	for i, r := range ranks {
		count[r]++
		if names[i] != int(z.name[r]) {
			t.Fatalf("draw %d: name %d, rank %d's name is %d", i, names[i], r, z.name[r])
		}
	}
	if got := float64(count[0]) / float64(count[1]); got < 1.8 || got > 2.2 {
		t.Errorf("rank 0 drawn %.2fx as often as rank 1, want about 2", got)
	}
	// H(1000)/H(10000) = 7.485/9.788.
	if got, want := topShare(ranks, n/10), 7.4855/9.7876; got < want-0.01 || got > want+0.01 {
		t.Errorf("top 10%% take %.3f of the draws, want about %.3f", got, want)
	}
	if topShare(ranks, n) != 1 || topShare(nil, 5) != 0 {
		t.Error("topShare of every rank must be 1, of no draws 0")
	}
	again, _ := newZipf(n, 1, 7).sample(k, 8)
	if !slices.Equal(names, again) {
		t.Error("the same seeds drew other names")
	}
}

// TestTargets17: issue 17's targets from a made-up report: a ratio met and
// one missed, p50s over and under their bounds, n/a for a system that did
// not run, and the allocation row from the engine's micro-benchmarks.
func TestTargets17(t *testing.T) {
	ph := func(cpu, p50 time.Duration) *PhaseResult {
		return &PhaseResult{Answered: 1000, CPUPerQuery: cpu, Latency: loadgen.Percentiles{Count: 1000, P50: p50}}
	}
	us := time.Microsecond
	r := &Report{Options: Defaults(), Systems: []*SystemReport{
		{Name: "dnstun", Reps: []*RepResult{{Phases: map[string]*PhaseResult{
			ClosedForward: ph(9*us, 0), ClosedBlocked: ph(5*us, 0), OpenForward: ph(0, 300*us), OpenBlocked: ph(0, 205*us)}}}},
		{Name: "dnsdist", Reps: []*RepResult{{Phases: map[string]*PhaseResult{ClosedForward: ph(10*us, 0)}}}},
		{Name: "ceiling", Reps: []*RepResult{{Phases: map[string]*PhaseResult{ClosedBlocked: ph(5*us, 0), OpenBlocked: ph(0, 200*us)}}}},
		{Name: "direct", Reps: []*RepResult{{Phases: map[string]*PhaseResult{OpenForward: ph(0, 250*us)}}}},
	}, Micro: []*FilterBench{
		{Name: "engine/Step/block/v4", Metrics: map[string][]float64{"allocs/op": {0, 0}}},
		{Name: "engine/RoundTrip/pool", Metrics: map[string][]float64{"allocs/op": {0, 1}}},
		{Name: "engine/ClientAllow", Metrics: map[string][]float64{"allocs/op": {3}}},
	}}
	md := targets17(r)
	t.Log("\n" + md)
	for _, want := range []string{
		"| forwarded CPU/q <= 0.85x dnsdist | 9.00 µs vs 10.00 µs = 0.90x | **missed** |",
		"| blocked CPU/q <= 1.10x ceiling | 5.00 µs vs 5.00 µs = 1.00x | met |",
		"| forwarded p50 at 2,000 qps <= direct p50 + 25 µs | +50.0 µs | **missed** |",
		"| blocked p50 at 2,000 qps <= ceiling p50 + 10 µs | +5.0 µs | met |",
		"| blocked p50: packet path below flow mode | 205.0 µs vs 0.0 µs | n/a |",
		"| 0 allocations per query: step, deliver (round trip), sweep | at most 1 allocs/op over 2 benchmarks (engine/Step*, RoundTrip*, SweepFullTable) | **missed** |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("targets lack %q", want)
		}
	}
}

// TestPairedRatiosAndKernelShare: with two repetitions the ratio row gives
// the range of the ratios within each repetition (not of the medians), the
// kernel-share lines divide the system times right, and a report without
// system times (results.json from before them) has no such lines.
func TestPairedRatiosAndKernelShare(t *testing.T) {
	us := time.Microsecond
	ph := func(cpu, sys time.Duration) *PhaseResult {
		return &PhaseResult{Answered: 1000, CPUPerQuery: cpu, SysPerQuery: sys}
	}
	rep := func(fwd, fwdSys, blk, blkSys time.Duration) *RepResult {
		return &RepResult{Phases: map[string]*PhaseResult{ClosedForward: ph(fwd, fwdSys), ClosedBlocked: ph(blk, blkSys)}}
	}
	// Repetition 1 is a slow moment for every system, repetition 2 a fast
	// one: the paired ratios differ from the ratio of the medians.
	r := &Report{Options: Defaults(), Systems: []*SystemReport{
		{Name: "dnstun", Reps: []*RepResult{rep(12*us, 9*us, 4*us, 3*us), rep(9*us, 6*us, 3*us, 2*us)}},
		{Name: "dnsdist", Reps: []*RepResult{rep(15*us, 11*us, 6*us, 4*us), rep(10*us, 7*us, 5*us, 3*us)}},
		{Name: "ceiling", Reps: []*RepResult{rep(0, 0, 3*us, 2*us), rep(0, 0, 2*us, 1*us)}},
	}}
	md := targets17(r)
	for _, want := range []string{
		// medians 10.5 vs 12.5; per repetition 12/15 = 0.80, 9/10 = 0.90
		"| forwarded CPU/q <= 0.85x dnsdist | 10.50 µs vs 12.50 µs = 0.84x (per repetition 0.80–0.90x) | met |",
		// medians 3.5 vs 2.5; per repetition 4/3 = 1.33, 3/2 = 1.50
		"| blocked CPU/q <= 1.10x ceiling | 3.50 µs vs 2.50 µs = 1.40x (per repetition 1.33–1.50x) | **missed** |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("targets lack %q:\n%s", want, md)
		}
	}
	ks := kernelShare17(r)
	for _, want := range []string{
		// dnstun sys median 7.5 of 10.5; dnsdist 9 of 12.5; 7.5/12.5 = 0.60
		"- forwarded, saturated: dnstun 7.50 of 10.50 µs/q in the kernel (71%), dnsdist 9.00 of 12.50 (72%); dnstun's kernel time alone is 0.60x dnsdist's whole CPU/q, its user time 3.00 µs against dnsdist's 3.50.",
		"- blocked, saturated: dnstun 2.50 of 3.50 µs/q in the kernel (71%), ceiling 1.50 of 2.50 (60%); dnstun's kernel time alone is 1.00x ceiling's whole CPU/q, its user time 1.00 µs against ceiling's 1.00.",
	} {
		if !strings.Contains(ks, want) {
			t.Errorf("kernel share lacks %q:\n%s", want, ks)
		}
	}
	for _, s := range r.Systems {
		for _, rr := range s.Reps {
			for _, p := range rr.Phases {
				p.SysPerQuery = 0
			}
		}
	}
	if ks := kernelShare17(r); ks != "" {
		t.Errorf("no system times, yet a kernel share:\n%s", ks)
	}
}

// SPDX-License-Identifier: MIT

package e2e_test

import (
	"context"
	"maps"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dnstun/dnstun/bench/e2e"
	"github.com/dnstun/dnstun/internal/privtest"
)

func benchNamespaces(t *testing.T) []string {
	t.Helper()
	ents, _ := os.ReadDir("/run/netns")
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "dnb-") {
			out = append(out, e.Name())
		}
	}
	return out
}

// tcpSystems answer DNS over TCP: the smoke run has their two forwarded
// TCP phases.
var tcpSystems = map[string]bool{"direct": true, "dnstun": true, "dnsmasq": true, "unbound": true, "dnsdist": true}

// lookupSystems are looked up through by Go's resolver in the lookup
// phase: which mixes each has (blocked, forwarded).
var lookupSystems = map[string][2]bool{
	"direct": {false, true}, "dnstun": {true, true}, "dnstun-flow": {true, true}, "dnsdist": {true, true}, "ceiling": {true, false},
}

// TestSmoke runs the smoke benchmark (what `scripts/bench.sh --smoke` runs)
// in namespaces: every system that is installed must answer in every phase
// it has, the lookup phase included, and the namespaces must be gone
// afterwards. Peers that are not installed are reported, not failed.
func TestSmoke(t *testing.T) {
	privtest.RequirePriv(t)
	before := benchNamespaces(t)
	o := e2e.Smoke()
	o.Closed, o.Open = 300*time.Millisecond, 300*time.Millisecond
	o.ModuleDir = "../.."
	if runtime.NumCPU() < 2 {
		o.ClientCPU, o.SUTCPU = -1, -1
	} else {
		o.ClientCPU = -1 // the test process is not pinned; the systems are
	}
	o.Progress = t.Logf
	ctx, cancel := context.WithTimeout(context.Background(), 55*time.Second)
	defer cancel()
	rep, err := e2e.Run(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if after := benchNamespaces(t); !slices.Equal(before, after) {
		t.Errorf("namespaces left behind: before %v, after %v", before, after)
	}
	md := e2e.Markdown(rep, true)
	for _, s := range rep.Systems {
		switch {
		case s.Why != "":
			if slices.Contains([]string{"direct", "dnstun", "ceiling"}, s.Name) {
				t.Errorf("%s not run: %s", s.Name, s.Why)
			} else {
				t.Logf("%s: %s", s.Name, s.Why)
			}
			continue
		case len(s.Reps) != 1:
			t.Errorf("%s: %d reps, want 1 (notes: %v)", s.Name, len(s.Reps), rep.Notes)
			continue
		}
		want := 4
		switch s.Name {
		case "direct", "ceiling":
			want = 2
		}
		if tcpSystems[s.Name] {
			want += 2 // tcp1-forward, tcp100-forward
		}
		if got := len(s.Reps[0].Phases); got != want {
			t.Errorf("%s: %d phases, want %d", s.Name, got, want)
		}
		for ph, p := range s.Reps[0].Phases {
			if p.Answered == 0 || p.Answered < p.Sent*9/10 {
				t.Errorf("%s %s: answered %d of %d (connects failed %d, first error %q)", s.Name, ph, p.Answered, p.Sent, p.ConnFailed, p.FirstError)
			}
			wantRcode := 3 // NXDOMAIN for listed names
			if strings.HasSuffix(ph, "forward") {
				wantRcode = 0
			}
			if p.Rcodes[wantRcode] != p.Answered {
				t.Errorf("%s %s: rcodes %v, want all %d", s.Name, ph, p.Rcodes, wantRcode)
			}
		}
	}
	for _, s := range rep.Systems {
		if s.Why != "" || len(s.Reps) != 1 {
			continue
		}
		checkLookups(t, s.Name, s.Reps[0].Lookups)
	}
	for _, want := range []string{"| dnstun |", "| ceiling |", "Blocked names: saturation", "DNS over TCP: saturation", "| direct | forwarded |",
		"## Go's resolver as the client", "| dnstun | blocked |", "| ceiling | blocked |"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q", want)
		}
	}
	// The chart is drawn by the bench/chart module from results.json; its
	// own tests draw the committed one.
}

// checkLookups checks the lookup phase of one system of the smoke run:
// the mixes it should have, each closed and open run with 90% of its
// lookups answered as the mix is (NXDOMAIN blocked, two addresses
// forwarded), from two sockets a lookup.
func checkLookups(t *testing.T, system string, got map[string]*e2e.LookupRuns) {
	t.Helper()
	mixes, ok := lookupSystems[system]
	if !ok {
		if len(got) > 0 {
			t.Errorf("%s: lookup phases %v, want none", system, slices.Collect(maps.Keys(got)))
		}
		return
	}
	for i, ph := range []string{e2e.LookupBlocked, e2e.LookupForward} {
		lr := got[ph]
		if !mixes[i] {
			if lr != nil {
				t.Errorf("%s: %s ran, want not", system, ph)
			}
			continue
		}
		if lr == nil {
			t.Errorf("%s: no %s", system, ph)
			continue
		}
		for _, run := range []*e2e.LookupRun{lr.Closed, lr.Open} {
			if run == nil {
				t.Errorf("%s %s: a run is missing", system, ph)
				continue
			}
			want := run.NotFound
			if ph == e2e.LookupForward {
				want = run.Found
			}
			if run.Lookups == 0 || want < run.Lookups*9/10 || run.Answered() != want ||
				(ph == e2e.LookupForward && run.Addrs != 2*run.Found) || run.Sockets < 2*run.Lookups {
				t.Errorf("%s %s: %+v; want 90%% of the lookups %s, from two sockets each", system, ph, run.LookupResult,
					map[string]string{e2e.LookupBlocked: "not found", e2e.LookupForward: "found with two addresses"}[ph])
			}
		}
	}
}

// TestSmokeTransports runs the upstream transports phase alone with short
// runs (`e2ebench -smoke -transports-only -transports 100ms`): dnstun must
// forward over every transport, dnsdist (when installed) over UDP, TCP,
// DoT and DoH, with the reason it does not for DoQ and DoH3; the
// namespaces must be gone afterwards. Skipped with -short and without
// unbound.
func TestSmokeTransports(t *testing.T) {
	privtest.RequirePriv(t)
	if testing.Short() {
		t.Skip("-short: the transports phase takes about 10 s")
	}
	privtest.RequireTool(t, "unbound", "unbound")
	rep := runPhaseOnly(t, func(o *e2e.Options) {
		o.Transports, o.TransportsOnly = 100*time.Millisecond, true
	})
	tr := rep.Transports
	if tr == nil || tr.Why != "" {
		t.Fatalf("transports phase did not run: %+v (notes: %v)", tr, rep.Notes)
	}
	for _, tp := range e2e.Transports {
		for _, sys := range []string{"dnstun", "dnsdist"} {
			run := tr.Run(tp, sys)
			switch {
			case run == nil:
				t.Errorf("%s over %s: no run", sys, tp)
				continue
			case sys == "dnsdist" && (tp == e2e.TransportDoQ || tp == e2e.TransportDoH3):
				if !strings.Contains(run.Why, "not supported") {
					t.Errorf("dnsdist over %s: Why %q, want not supported", tp, run.Why)
				}
				continue
			case run.Why != "":
				if sys == "dnstun" {
					t.Errorf("dnstun over %s not run: %s", tp, run.Why)
				} else {
					t.Logf("dnsdist over %s: %s", tp, run.Why)
				}
				continue
			case len(run.Reps) != 1:
				t.Errorf("%s over %s: %d reps, want 1 (notes: %v)", sys, tp, len(run.Reps), rep.Notes)
				continue
			}
			for _, p := range []*e2e.PhaseResult{run.Reps[0].Closed, run.Reps[0].Open} {
				if p == nil || p.Answered == 0 || p.Answered < p.Sent*9/10 || p.Rcodes[0] != p.Answered {
					t.Errorf("%s over %s: %+v, want 90%% answered, all NOERROR", sys, tp, p)
				}
			}
		}
	}
	if md := e2e.Markdown(rep, true); !strings.Contains(md, "| doq | quicupstream (ours) | dnstun |") {
		t.Errorf("markdown lacks the DoQ row:\n%s", md)
	}
}

// TestSmokeCache runs the response cache phase alone with short runs and a
// small fill (`e2ebench -smoke -cache-only -cache-phase 100ms`): every
// installed system must answer its hits (NOERROR) or blocked names
// (NXDOMAIN); after the warm-up, dnstun's measured runs must reach the
// upstream not once; the fill must leave entries in dnstun's cache and hit
// it; the namespaces must be gone afterwards. Peers that are not installed
// are reported, not failed. Skipped with -short.
func TestSmokeCache(t *testing.T) {
	privtest.RequirePriv(t)
	if testing.Short() {
		t.Skip("-short: the cache phase takes about 15 s")
	}
	const names = 5000
	rep := runPhaseOnly(t, func(o *e2e.Options) {
		o.CachePhase, o.CacheOnly = 100*time.Millisecond, true
		o.CacheNames, o.CacheZipf = names, 2000
	})
	c := rep.Cache
	if c == nil || c.Why != "" {
		t.Fatalf("cache phase did not run: %+v (notes: %v)", c, rep.Notes)
	}
	for _, want := range []struct{ system, path string }{
		{"dnstun", e2e.CacheHits}, {"dnstun", e2e.CacheBlocked}, {"ceiling", e2e.CacheBlocked},
		{"dnsmasq", e2e.CacheHits}, {"unbound", e2e.CacheHits}, {"dnsdist", e2e.CacheHits},
	} {
		run := c.Run(want.system, want.path)
		switch {
		case run == nil:
			t.Errorf("%s %s: no run", want.system, want.path)
			continue
		case run.Why != "":
			if want.system == "dnstun" || want.system == "ceiling" {
				t.Errorf("%s not run: %s", want.system, run.Why)
			} else {
				t.Logf("%s: %s", want.system, run.Why)
			}
			continue
		case len(run.Reps) != 1:
			t.Errorf("%s %s: %d reps, want 1 (notes: %v)", want.system, want.path, len(run.Reps), rep.Notes)
			continue
		}
		r := run.Reps[0]
		rcode := 0
		if want.path == e2e.CacheBlocked {
			rcode = 3
		}
		for _, p := range []*e2e.PhaseResult{r.Closed, r.Open} {
			if p == nil || p.Answered == 0 || p.Answered < p.Sent*9/10 || p.Rcodes[rcode] != p.Answered {
				t.Errorf("%s %s: %+v, want 90%% answered, all rcode %d", want.system, want.path, p, rcode)
			}
		}
		if want.path == e2e.CacheHits && (r.WarmAnswered < 9000 || r.UpstreamWarm < r.WarmAnswered) {
			t.Errorf("%s warm-up: %d answered, upstream answered %d; want every name answered by the upstream", want.system, r.WarmAnswered, r.UpstreamWarm)
		}
		if want.system == "dnstun" && want.path == e2e.CacheHits && r.UpstreamMeasured != 0 {
			t.Errorf("dnstun: the upstream answered %d queries during the measured runs, want 0 (all hits)", r.UpstreamMeasured)
		}
	}
	f := c.Fill
	if f == nil {
		t.Fatalf("no fill (notes: %v)", rep.Notes)
	}
	if f.Answered < names*9/10 || f.Entries == 0 || f.RSS == 0 || f.ZipfAnswered == 0 || f.HitRatio() < 0.9 {
		t.Errorf("fill: %+v, want the names answered, cached, and hit (ratio %.3f)", f, f.HitRatio())
	}
	md := e2e.Markdown(rep, true)
	for _, want := range []string{"| dnstun | hits |", "| ceiling | blocked |", "## Response cache: 5000 distinct names"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}

// runPhaseOnly runs the smoke options changed by set (one phase on its
// own), within 90 s, and checks that no namespace is left behind.
func runPhaseOnly(t *testing.T, set func(*e2e.Options)) *e2e.Report {
	t.Helper()
	before := benchNamespaces(t)
	o := e2e.Smoke()
	set(&o)
	o.ModuleDir = "../.."
	o.ClientCPU = -1
	if runtime.NumCPU() < 2 {
		o.SUTCPU = -1
	}
	o.Progress = t.Logf
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	rep, err := e2e.Run(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if after := benchNamespaces(t); !slices.Equal(before, after) {
		t.Errorf("namespaces left behind: before %v, after %v", before, after)
	}
	return rep
}

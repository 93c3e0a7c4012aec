// SPDX-License-Identifier: MIT

package e2e_test

import (
	"context"
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

// TestSmoke runs the smoke benchmark (what `scripts/bench.sh --smoke` runs)
// in namespaces: every system that is installed must answer in every phase
// it has, and the namespaces must be gone afterwards. Peers that are not
// installed are reported, not failed.
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
	for _, want := range []string{"| dnstun |", "| ceiling |", "Blocked names: saturation", "DNS over TCP: saturation", "| direct | forwarded |"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q", want)
		}
	}
	// The chart is drawn by the bench/chart module from results.json; its
	// own tests draw the committed one.
}

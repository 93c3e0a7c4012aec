// SPDX-License-Identifier: MIT

package metrics

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/dnstun/dnstun/engine"
	"github.com/dnstun/dnstun/querylog"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// TestServe scrapes a real endpoint on loopback and parses it with
// Prometheus' own text parser: every value comes from the snapshot, the
// histograms' buckets are cumulative and in seconds, and label values are
// the bounded sets (decisions, rcodes, transports, paths, upstream URLs).
func TestServe(t *testing.T) {
	var snap Snapshot
	snap.Version, snap.Enabled = "9.9.9", true
	snap.Stats.Counters[engine.Blocked] = 5
	snap.Stats.Pending = 3
	snap.Metrics.Answers[querylog.Blocked][3] = 5
	snap.Metrics.Answers[querylog.Forwarded][0] = 7
	snap.Metrics.Queries[engine.TransportUDP] = 11
	snap.Metrics.Queries[engine.TransportTCP] = 1
	snap.Metrics.Latency[engine.PathForward].Counts[3] = 2 // ≤100 µs
	snap.Metrics.Latency[engine.PathForward].Counts[6] = 5 // ≤1 ms
	snap.Metrics.Latency[engine.PathForward].Sum = 3 * time.Millisecond
	snap.Upstreams = []engine.UpstreamState{{URL: "tls://dns.example", Healthy: true, Sent: 9, Answers: 8, Timeouts: 1}}
	snap.Upstreams[0].Latency.Counts[len(engine.LatencyBounds)] = 1 // above every bound
	snap.Rules, snap.Lists, snap.ListsLoad = 123456, 2, 1500*time.Millisecond
	snap.Extra = map[string]uint64{"dnstap_dropped": 4}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv, err := Serve(ctx, "127.0.0.1:0", Handler(func() Snapshot { return snap }), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	resp, err := http.Get("http://" + srv.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	get := func(name string, labels ...string) *dto.Metric {
		t.Helper()
		f := fams[name]
		if f == nil {
			t.Fatalf("no %s", name)
		}
	next:
		for _, m := range f.Metric {
			for i := 0; i+1 < len(labels); i += 2 {
				ok := false
				for _, l := range m.Label {
					ok = ok || l.GetName() == labels[i] && l.GetValue() == labels[i+1]
				}
				if !ok {
					continue next
				}
			}
			return m
		}
		t.Fatalf("no %s%v", name, labels)
		return nil
	}
	for _, c := range []struct {
		got  float64
		want float64
		what string
	}{
		{get("dnstun_answers_total", "decision", "block", "rcode", "NXDOMAIN").Counter.GetValue(), 5, "blocked NXDOMAIN"},
		{get("dnstun_answers_total", "decision", "forward", "rcode", "NOERROR").Counter.GetValue(), 7, "forwarded NOERROR"},
		{get("dnstun_queries_total", "transport", "udp").Counter.GetValue(), 11, "udp queries"},
		{get("dnstun_queries_total", "transport", "tcp").Counter.GetValue(), 1, "tcp queries"},
		{get("dnstun_events_total", "event", "blocked").Counter.GetValue(), 5, "blocked event"},
		{get("dnstun_pending_queries").Gauge.GetValue(), 3, "pending"},
		{get("dnstun_upstream_queries_total", "upstream", "tls://dns.example").Counter.GetValue(), 9, "upstream sent"},
		{get("dnstun_upstream_timeouts_total", "upstream", "tls://dns.example").Counter.GetValue(), 1, "upstream timeouts"},
		{get("dnstun_upstream_healthy", "upstream", "tls://dns.example").Gauge.GetValue(), 1, "upstream healthy"},
		{get("dnstun_rules").Gauge.GetValue(), 123456, "rules"},
		{get("dnstun_lists_load_seconds").Gauge.GetValue(), 1.5, "load time"},
		{get("dnstun_enabled").Gauge.GetValue(), 1, "enabled"},
		{get("dnstun_build_info", "version", "9.9.9").Gauge.GetValue(), 1, "build info"},
		{get("dnstun_dnstap_dropped_total").Counter.GetValue(), 4, "extra counter"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
		}
	}
	h := get("dnstun_added_latency_seconds", "path", "forward").Histogram
	if h.GetSampleCount() != 7 || h.GetSampleSum() != 0.003 {
		t.Errorf("forward latency: count %d sum %v", h.GetSampleCount(), h.GetSampleSum())
	}
	cum := map[float64]uint64{}
	for _, b := range h.Bucket {
		cum[b.GetUpperBound()] = b.GetCumulativeCount()
	}
	if cum[0.00005] != 0 || cum[0.0001] != 2 || cum[0.0005] != 2 || cum[0.001] != 7 || cum[5] != 7 {
		t.Errorf("forward buckets (cumulative, seconds): %v", cum)
	}
	u := get("dnstun_upstream_rtt_seconds", "upstream", "tls://dns.example").Histogram
	for _, b := range u.Bucket {
		if b.GetUpperBound() == 5 && b.GetCumulativeCount() != 0 {
			t.Errorf("an upstream sample above every bound is in the 5 s bucket")
		}
	}
	if u.GetSampleCount() != 1 {
		t.Errorf("upstream rtt count %d, want 1", u.GetSampleCount())
	}
	if fams["go_goroutines"] == nil || fams["process_resident_memory_bytes"] == nil {
		t.Error("the Go and process collectors are missing")
	}
	for _, f := range fams {
		for _, m := range f.Metric {
			for _, l := range m.Label {
				if l.GetName() == "name" || l.GetName() == "client" {
					t.Errorf("%s has an unbounded label %s", f.GetName(), l.GetName())
				}
			}
		}
	}
}

// TestServeBusyAddress: a taken address is a clear error.
func TestServeBusyAddress(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	a, err := Serve(context.Background(), "127.0.0.1:0", Handler(func() Snapshot { return Snapshot{} }), log)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, err := Serve(context.Background(), a.Addr().String(), Handler(func() Snapshot { return Snapshot{} }), log); err == nil {
		t.Error("a second endpoint on the same address started")
	}
}

// SPDX-License-Identifier: MIT

package engine

import (
	"net"
	"net/netip"
	"testing"

	"github.com/dnstun/dnstun/filter"
	"github.com/dnstun/dnstun/internal/pkttest"
	"github.com/dnstun/dnstun/querylog"
	"github.com/dnstun/dnstun/tun"
	"github.com/dnstun/dnstun/tun/tuntest"
	"github.com/dnstun/dnstun/upstream"
	"github.com/miekg/dns"
)

// stepCase is one packet through step, for the allocation test and the
// benchmarks.
type stepCase struct {
	name string
	pkt  []byte
	// forward: step sends it upstream and returns 0; otherwise it answers.
	forward bool
}

func stepCases() []stepCase {
	return []stepCase{
		{"block/v4", pkttest.Query(client4, resolver4, pkttest.Msg(1, "deep.sub.tracker.example", dns.TypeA)), false},
		{"block/v6/edns", pkttest.Query(client6, resolver6, pkttest.MsgEDNS(2, "ads.example", dns.TypeAAAA, 1232, true)), false},
		{"local/v4", pkttest.Query(client4, resolver4, pkttest.Msg(3, "printer.lan", dns.TypeA)), false},
		{"forward/v4", pkttest.Query(client4, resolver4, pkttest.Msg(4, "www.example.com", dns.TypeA)), true},
		{"forward/v6", pkttest.Query(client6, resolver6, pkttest.MsgEDNS(5, "www.example.com", dns.TypeAAAA, 1232, false)), true},
	}
}

// newStepEngine builds an engine whose upstream is a loopback socket that
// nobody reads (the kernel drops what overflows), for step in isolation.
func newStepEngine(tb testing.TB, maxPending int) *Engine {
	tb.Helper()
	sink, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { sink.Close() })
	e, err := New(Config{
		Upstreams:  upstream.UDPSpecs([]netip.AddrPort{netip.MustParseAddrPort(sink.LocalAddr().String())}),
		MaxPending: maxPending,
		QueryLog:   querylog.New(1024), // logged queries must not allocate either
	}, tuntest.NewPipe(1, 1), filter.NewLive(buildSet(tb, testList)))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { e.Close() })
	return e
}

// clearPending empties the table without answering anyone.
func clearPending(e *Engine) {
	out := make([]expired, sweepBatch)
	for {
		if _, done := e.pending.sweep(1<<62, 0, e.route.Load(), out); done {
			return
		}
	}
}

// runStep copies the packet into buf (as the TUN read would) and runs step.
func runStep(w *worker, buf []byte, pkt []byte) int {
	n := copy(buf, pkt)
	return w.step(buf, n)
}

func TestStepAllocs(t *testing.T) {
	e := newStepEngine(t, 1<<15)
	w := newWorker(e)
	buf := make([]byte, tun.MaxPacket)
	for _, tc := range stepCases() {
		t.Run(tc.name, func(t *testing.T) {
			if m := runStep(w, buf, tc.pkt); (m == 0) != tc.forward {
				t.Fatalf("step returned %d, forward=%v", m, tc.forward)
			}
			allocs := testing.AllocsPerRun(1000, func() { runStep(w, buf, tc.pkt) })
			if allocs != 0 {
				t.Errorf("step allocates %v times per packet, want 0", allocs)
			}
			if tc.forward {
				// Drain the table so the next case starts empty.
				clearPending(e)
			}
		})
	}
}

// BenchmarkStep measures the whole per-packet step: decode, question,
// decision and answer in place (or pending insert + upstream send).
func BenchmarkStep(b *testing.B) {
	for _, tc := range stepCases() {
		b.Run(tc.name, func(b *testing.B) { benchStep(b, newStepEngine(b, 1<<15), tc) })
	}
}

// benchStep runs tc's packet through e's step b.N times; a forwarded one
// fills the table, which is emptied (off the clock) every 16,384 queries.
func benchStep(b *testing.B, e *Engine, tc stepCase) {
	w := newWorker(e)
	buf := make([]byte, tun.MaxPacket)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		runStep(w, buf, tc.pkt)
		if tc.forward {
			if i++; i == 1<<14 {
				b.StopTimer()
				clearPending(e)
				i = 0
				b.StartTimer()
			}
		}
	}
}

// BenchmarkPending measures one forwarded query's table work: insert, then
// take on the matching reply.
func BenchmarkPending(b *testing.B) {
	p := newPending(4096)
	var parser = pkttestParsed(b)
	msg := pkttest.Pack(pkttest.Msg(1, "www.example.com", dns.TypeA))
	q := parser.q
	var m match
	r := req(parser, 0, 0, 1, 2)
	b.ReportAllocs()
	for b.Loop() {
		id, _ := p.insert(&q, msg, r)
		q.ID = id
		if p.take(&q, msg, 0, 0, 0, &m) != takeOK {
			b.Fatal("take failed")
		}
	}
}

// Figures: bench/RESULTS.md, "Hot path (micro-benchmarks)" (scripts/bench.sh
// runs these benchmarks three times). The step includes the rule engine's
// DecideQuery and the query log; the forward cost is mostly the sendto
// syscall on the upstream socket.

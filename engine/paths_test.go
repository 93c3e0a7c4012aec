// SPDX-License-Identifier: MIT

package engine

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/dnstun/dnstun/filter"
	"github.com/dnstun/dnstun/internal/pkttest"
	"github.com/dnstun/dnstun/querylog"
	"github.com/dnstun/dnstun/tun"
	"github.com/dnstun/dnstun/tun/tuntest"
	"github.com/dnstun/dnstun/upstream"
	"github.com/miekg/dns"
)

// countingDev is a TUN that counts the packets written to it and keeps
// none, so that a path's allocations are its own.
type countingDev struct {
	*tuntest.Pipe
	written int
}

func (d *countingDev) Write(bufs [][]byte, offset int) (int, error) {
	d.written += len(bufs)
	return len(bufs), nil
}

// roundTrip is one forwarded query through the engine's own code, without
// its goroutines: step sends it to an upstream socket the test answers
// from, the pool's Recv reads the answer, the receiver delivers it and the
// batch is written.
type roundTrip struct {
	e    *Engine
	w    *worker
	dev  *countingDev
	up   *net.UDPConn
	pkt  []byte
	buf  []byte
	qbuf []byte
	ms   [1]upstream.Msg
	r    receiver
}

// newRoundTrip builds the engine, its upstream having the given sockets in
// service, each for perSocket queries.
func newRoundTrip(tb testing.TB, sockets, perSocket int) *roundTrip {
	tb.Helper()
	up, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { up.Close() })
	dev := &countingDev{Pipe: tuntest.NewPipe(1, 1)}
	e, err := New(Config{
		Upstreams:          upstream.UDPSpecs([]netip.AddrPort{up.LocalAddr().(*net.UDPAddr).AddrPort()}),
		SocketsPerUpstream: sockets,
		QueriesPerSocket:   perSocket,
		QueryLog:           querylog.New(1024),
	}, dev, filter.NewLive(buildSet(tb, testList)))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { e.Close() })
	rt := &roundTrip{e: e, w: newWorker(e), dev: dev, up: up,
		pkt:  pkttest.Query(client4, resolver4, pkttest.Msg(4, "www.example.com", dns.TypeA)),
		buf:  make([]byte, tun.MaxPacket),
		qbuf: make([]byte, 1500),
	}
	rt.r = receiver{e: e, buf: make([]byte, replyOff+tun.MaxPacket), batch: new(tunBatch), lane: e.stats.newLane()}
	rt.ms[0] = upstream.Msg{Buf: rt.r.buf, Off: replyOff}
	return rt
}

// run forwards the query, answers it (NOERROR, no records) and delivers the
// answer; it reports whether one packet reached the TUN.
func (rt *roundTrip) run(tb testing.TB) bool {
	if runStep(rt.w, rt.buf, rt.pkt) != 0 {
		tb.Fatal("step answered a forwarded query")
	}
	n, from, err := rt.up.ReadFromUDPAddrPort(rt.qbuf)
	if err != nil {
		tb.Fatal(err)
	}
	rt.qbuf[2] |= 0x80 // QR
	if _, err := rt.up.WriteToUDPAddrPort(rt.qbuf[:n], from); err != nil {
		tb.Fatal(err)
	}
	k, err := rt.e.pool.Recv(rt.ms[:])
	if err != nil || k != 1 {
		tb.Fatalf("Recv: %d, %v", k, err)
	}
	m := &rt.ms[0]
	up, _ := rt.e.slotOfDest(m.Dest)
	before := rt.dev.written
	if rt.r.deliver(m.Buf, m.N, up, m.Sock) {
		rt.e.pool.Answered(m.Sock)
	}
	rt.e.writeBatch(rt.r.batch)
	return rt.dev.written == before+1
}

// TestDeliverAllocs: the receive side of a forwarded query (Recv, match,
// deliver, the batch's write) allocates nothing, nor does the whole round
// trip with it.
func TestDeliverAllocs(t *testing.T) {
	rt := newRoundTrip(t, 8, 32)
	for range 64 { // past the first sockets' opening
		if !rt.run(t) {
			t.Fatal("the answer did not reach the TUN")
		}
	}
	if a := testing.AllocsPerRun(500, func() { rt.run(t) }); a != 0 {
		t.Errorf("a forwarded round trip allocates %v times, want 0", a)
	}
	if st := rt.e.Stats(); st.Get(Replied) < 500 || st.Get(Unmatched) != 0 {
		t.Errorf("replied %d, unmatched %d", st.Get(Replied), st.Get(Unmatched))
	}
}

// BenchmarkRoundTrip is a forwarded query's whole cost in the engine, on one
// goroutine: step (decode, decide, pending insert, send), the upstream's
// answer read with the pool's Recv, deliver (match, restore, wrap) and the
// TUN write, which counts packets and keeps none. The test's upstream
// socket's read and write are included. pool: the daemon's default sockets
// (8 in service, 32 queries each); fresh: a socket per query.
func BenchmarkRoundTrip(b *testing.B) {
	for _, c := range []struct {
		name               string
		sockets, perSocket int
	}{{"pool", 8, 32}, {"fresh", 1, 1}} {
		b.Run(c.name, func(b *testing.B) {
			rt := newRoundTrip(b, c.sockets, c.perSocket)
			b.ReportAllocs()
			for b.Loop() {
				if !rt.run(b) {
					b.Fatal("the answer did not reach the TUN")
				}
			}
		})
	}
}

// TestSweepAllocs: the sweeper's work on expired queries allocates
// nothing: an attempt moved on (sent again) when its upstream timeout
// passes, and SERVFAIL written when the query's time is up. The engine's
// goroutines are not running; its clock is moved on by moving its epoch.
func TestSweepAllocs(t *testing.T) {
	rt := newRoundTrip(t, 8, 32)
	s := newSweeper(rt.e)
	e := rt.e
	expire := func() (retried, servfail bool) {
		if runStep(rt.w, rt.buf, rt.pkt) != 0 {
			t.Fatal("step answered a forwarded query")
		}
		r0, f0, w0 := e.stats.get(Retried), e.stats.get(ServFail), rt.dev.written
		e.epoch = e.epoch.Add(-DefaultUpstreamTimeout - time.Millisecond)
		s.sweep()
		retried = e.stats.get(Retried) == r0+1
		e.epoch = e.epoch.Add(-DefaultTotalTimeout)
		s.sweep()
		servfail = e.stats.get(ServFail) == f0+1 && rt.dev.written == w0+1
		return retried, servfail
	}
	if r, f := expire(); !r || !f {
		t.Fatalf("retried %v, SERVFAIL written %v; want both", r, f)
	}
	if a := testing.AllocsPerRun(200, func() { expire() }); a != 0 {
		t.Errorf("sweeping an expired query allocates %v times, want 0", a)
	}
	if n := e.pending.len(); n != 0 {
		t.Errorf("%d queries left waiting", n)
	}
}

// SPDX-License-Identifier: MIT

package engine

import (
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dnstun/dnstun/attrib"
	"github.com/dnstun/dnstun/filter"
	"github.com/dnstun/dnstun/internal/pkttest"
	"github.com/dnstun/dnstun/packet"
	"github.com/dnstun/dnstun/querylog"
	"github.com/dnstun/dnstun/tap"
	"github.com/dnstun/dnstun/tun"
	"github.com/dnstun/dnstun/tun/tuntest"
	"github.com/dnstun/dnstun/upstream"
	"github.com/miekg/dns"
)

// TestMetricsCount: with Config.Metrics, every answer is counted by
// decision and rcode, every query by front-end, and each path's latency
// and the upstream's round trip get one sample per answer.
func TestMetricsCount(t *testing.T) {
	up := startUpstream(t)
	h := startEngine(t, Config{Upstreams: upstream.UDPSpecs([]netip.AddrPort{up.Addr()}), Metrics: true}, testList)
	for i := range 3 {
		if m, _ := h.exchange(t, pkttest.Query(client4, resolver4, pkttest.Msg(uint16(i), "ads.example", dns.TypeA)), 2*time.Second); m.Rcode != dns.RcodeNameError {
			t.Fatalf("blocked: rcode %d", m.Rcode)
		}
	}
	if m, _ := h.exchange(t, pkttest.Query(client4, resolver4, pkttest.Msg(9, "printer.lan", dns.TypeA)), 2*time.Second); m.Rcode != dns.RcodeSuccess {
		t.Fatalf("local: rcode %d", m.Rcode)
	}
	for i := range 2 {
		if m, _ := h.exchange(t, pkttest.Query(client6, resolver6, pkttest.Msg(uint16(20+i), "www.example.com", dns.TypeA)), 2*time.Second); m.Rcode != dns.RcodeSuccess {
			t.Fatalf("forwarded: rcode %d", m.Rcode)
		}
	}
	m := settledMetrics(h.e, 4, 2)
	check := func(what string, got, want uint64) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %d, want %d", what, got, want)
		}
	}
	check("answers block/NXDOMAIN", m.Answers[querylog.Blocked][dns.RcodeNameError], 3)
	check("answers local/NOERROR", m.Answers[querylog.Local][0], 1)
	check("answers forward/NOERROR", m.Answers[querylog.Forwarded][0], 2)
	check("queries udp", m.Queries[TransportUDP], 6)
	check("queries tcp", m.Queries[TransportTCP], 0)
	check("latency local", m.Latency[PathLocal].Count(), 4)
	check("latency forward", m.Latency[PathForward].Count(), 2)
	check("latency cache", m.Latency[PathCache].Count(), 0)
	ups := h.e.UpstreamStates()
	if len(ups) != 1 {
		t.Fatalf("upstreams: %+v", ups)
	}
	check("upstream round trips", ups[0].Latency.Count(), 2)
	if f := m.Latency[PathForward]; f.Sum <= 0 || f.Sum > 2*time.Second {
		t.Errorf("forward latency sum %v", f.Sum)
	}
}

// settledMetrics returns e's metrics once the local and forwarded paths
// have at least the given numbers of latency samples, or after 2 s. A
// path's latency is observed just after its answer is written, so a client
// may read the last answer before its sample is counted.
func settledMetrics(e *Engine, local, forward uint64) Metrics {
	m := e.Metrics()
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); m = e.Metrics() {
		if m.Latency[PathLocal].Count() >= local && m.Latency[PathForward].Count() >= forward {
			break
		}
		time.Sleep(time.Millisecond)
	}
	return m
}

// TestMetricsOff: without Config.Metrics nothing is counted.
func TestMetricsOff(t *testing.T) {
	up := startUpstream(t)
	h := startEngine(t, Config{Upstreams: upstream.UDPSpecs([]netip.AddrPort{up.Addr()})}, testList)
	h.exchange(t, pkttest.Query(client4, resolver4, pkttest.Msg(1, "ads.example", dns.TypeA)), 2*time.Second)
	h.exchange(t, pkttest.Query(client4, resolver4, pkttest.Msg(2, "www.example.com", dns.TypeA)), 2*time.Second)
	if m := h.e.Metrics(); m != (Metrics{}) {
		t.Errorf("metrics off, but counted: %+v", m)
	}
}

// TestHistogramBuckets: a sample lands in the first bucket whose bound it
// does not exceed; one above every bound in the last.
func TestHistogramBuckets(t *testing.T) {
	var h histogram
	h.observe(int64(10*time.Microsecond), 1) // on the first bound
	h.observe(int64(11*time.Microsecond), 2) // just above it
	h.observe(int64(time.Hour), 1)
	s := h.snapshot()
	if s.Counts[0] != 1 || s.Counts[1] != 2 || s.Counts[len(LatencyBounds)] != 1 || s.Count() != 4 {
		t.Errorf("buckets %v", s.Counts)
	}
	if want := 10*time.Microsecond + 22*time.Microsecond + time.Hour; s.Sum != want {
		t.Errorf("sum %v, want %v", s.Sum, want)
	}
}

// TestTapMessages: with a Tap, a blocked query gives CLIENT_QUERY and
// CLIENT_RESPONSE, a forwarded one those and FORWARDER_QUERY and
// FORWARDER_RESPONSE (the file's contents are read back by the end-to-end
// test with dnstap-read).
func TestTapMessages(t *testing.T) {
	tp, err := tap.Open("file:"+filepath.Join(t.TempDir(), "t.fstrm"), tap.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Close()
	up := startUpstream(t)
	h := startEngine(t, Config{Upstreams: upstream.UDPSpecs([]netip.AddrPort{up.Addr()}), Tap: tp}, testList)
	h.exchange(t, pkttest.Query(client4, resolver4, pkttest.Msg(1, "ads.example", dns.TypeA)), 2*time.Second)
	h.exchange(t, pkttest.Query(client4, resolver4, pkttest.Msg(2, "www.example.com", dns.TypeA)), 2*time.Second)
	deadline := time.Now().Add(2 * time.Second)
	for tp.Stats().Sent < 6 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if s := tp.Stats(); s.Sent != 6 || s.Dropped != 0 {
		t.Errorf("tap stats %+v, want 6 sent", s)
	}
}

// TestProcessRuleHolds: with a $process rule, a query whose process is not
// known yet waits for attribution (a real sock_diag lookup of this test's
// own sockets), then is decided by it: blocked for this process's name,
// forwarded when the rule names another; a query no socket owns is
// released when its lookup fails and decided without a process. The query
// log shows the process.
func TestProcessRuleHolds(t *testing.T) {
	self, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		t.Skip("no /proc/self/comm: attribution reads Linux's /proc")
	}
	comm := string(self[:len(self)-1])
	var e *Engine
	at, err := attrib.New(attrib.Config{OnResolved: func(k attrib.Key, o *attrib.Owner) {
		if e != nil {
			e.OwnerResolved(k, o)
		}
	}})
	if err != nil {
		t.Skipf("attribution unsupported here: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go at.Run(ctx)
	up := startUpstream(t)
	ring := querylog.New(64)
	list := "||mine.example^$process=" + comm + "\n||theirs.example^$process=not-" + comm + "\n"
	h := startEngine(t, Config{Upstreams: upstream.UDPSpecs([]netip.AddrPort{up.Addr()}), Attrib: at, QueryLog: ring, Metrics: true}, list)
	e = h.e
	// A socket of ours: the query claims to come from it.
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:53")))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	local := netip.MustParseAddrPort(conn.LocalAddr().String())
	remote := netip.MustParseAddrPort("127.0.0.1:53")
	if m, _ := h.exchange(t, pkttest.Query(local, remote, pkttest.Msg(1, "mine.example", dns.TypeA)), 2*time.Second); m.Rcode != dns.RcodeNameError {
		t.Errorf("mine.example from %s: rcode %d, want NXDOMAIN ($process=%s)", comm, m.Rcode, comm)
	}
	h.exchange(t, pkttest.Query(local, remote, pkttest.Msg(2, "theirs.example", dns.TypeA)), 2*time.Second)
	if n := up.QueriesFor("theirs.example."); n != 1 {
		t.Errorf("theirs.example from %s reached the upstream %d times, want 1 (the rule names another process)", comm, n)
	}
	// A client no socket is behind: decided without a process.
	h.exchange(t, pkttest.Query(client4, resolver4, pkttest.Msg(3, "mine.example", dns.TypeA)), 2*time.Second)
	if n := up.QueriesFor("mine.example."); n != 1 {
		t.Errorf("mine.example from no process reached the upstream %d times, want 1", n)
	}
	// Known to have no process now: the next query from it is not held.
	h.exchange(t, pkttest.Query(client4, resolver4, pkttest.Msg(4, "mine.example", dns.TypeA)), 2*time.Second)
	if st := h.e.Stats(); st.Get(AttribHeld) != 2 || st.Get(AttribUnheld) != 0 {
		t.Errorf("held %d, unheld %d; want 2 held (the first query of each key; not the second of the socket no process owns), 0 unheld", st.Get(AttribHeld), st.Get(AttribUnheld))
	}
	// A held query is counted once, when it arrived, and its answer's
	// latency once, from then.
	m := settledMetrics(h.e, 1, 3)
	if m.Queries[TransportUDP] != 4 || m.Latency[PathLocal].Count() != 1 || m.Latency[PathForward].Count() != 3 {
		t.Errorf("counted %d queries, %d local and %d forwarded latencies; want 4, 1, 3", m.Queries[TransportUDP], m.Latency[PathLocal].Count(), m.Latency[PathForward].Count())
	}
	var found bool
	for _, r := range ring.Snapshot(10) {
		if r.Name == "mine.example" && r.Client == local.String() {
			found = true
			if r.PID != int32(os.Getpid()) || r.Process != comm || r.Decision != "block" {
				t.Errorf("query log entry %+v, want pid %d process %s decision block", r, os.Getpid(), comm)
			}
		}
	}
	if !found {
		t.Errorf("no query log entry for mine.example from %v", local)
	}
}

// newObservedStepEngine is newStepEngine with observability switched on
// as obs says: metrics, tap, attrib.
func newObservedStepEngine(tb testing.TB, obs string) *Engine {
	tb.Helper()
	sink, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { sink.Close() })
	cfg := Config{
		Upstreams:  upstream.UDPSpecs([]netip.AddrPort{netip.MustParseAddrPort(sink.LocalAddr().String())}),
		MaxPending: 1 << 15,
		QueryLog:   querylog.New(1024),
	}
	switch obs {
	case "metrics":
		cfg.Metrics = true
	case "tap":
		tp, err := tap.Open("file:"+filepath.Join(tb.TempDir(), "t.fstrm"), tap.Config{QueueLen: tap.MaxQueueLen})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { tp.Close() })
		cfg.Tap = tp
	case "attrib":
		at, err := attrib.New(attrib.Config{})
		if err != nil {
			tb.Skipf("attribution unsupported here: %v", err)
		}
		cfg.Attrib = at
	}
	e, err := New(cfg, tuntest.NewPipe(1, 1), filter.NewLive(buildSet(tb, testList)))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { e.Close() })
	return e
}

// observedCases are the step's packets from a real socket of this process
// (attribution finds it: a cache hit once looked up) or from a port no
// socket has (a miss each time).
func observedCases(tb testing.TB, e *Engine) (hit, miss []stepCase) {
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:53")))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	local := netip.MustParseAddrPort(conn.LocalAddr().String())
	remote := netip.MustParseAddrPort("127.0.0.1:53")
	if at := e.cfg.Attrib; at != nil {
		if _, err := at.Resolve(context.Background(), attrib.Key{Proto: attrib.ProtoUDP, Local: local, Remote: remote}); err != nil {
			tb.Fatalf("attribution of our own socket: %v", err)
		}
	}
	for _, c := range []struct {
		name, qname string
		forward     bool
	}{{"block", "deep.sub.tracker.example", false}, {"forward", "www.example.com", true}} {
		hit = append(hit, stepCase{c.name, pkttest.Query(local, remote, pkttest.Msg(1, c.qname, dns.TypeA)), c.forward})
		miss = append(miss, stepCase{c.name, pkttest.Query(client4, resolver4, pkttest.Msg(1, c.qname, dns.TypeA)), c.forward})
	}
	return hit, miss
}

// TestObservedStepAllocs: with metrics, dnstap or attribution on, the step
// still allocates nothing.
func TestObservedStepAllocs(t *testing.T) {
	for _, obs := range []string{"metrics", "tap", "attrib"} {
		t.Run(obs, func(t *testing.T) {
			e := newObservedStepEngine(t, obs)
			w := newWorker(e)
			buf := make([]byte, tun.MaxPacket)
			hit, miss := observedCases(t, e)
			for _, tc := range append(hit, miss...) {
				runStep(w, buf, tc.pkt)
				if n := testing.AllocsPerRun(500, func() { runStep(w, buf, tc.pkt) }); n != 0 {
					t.Errorf("%s: step allocates %v times per packet", tc.name, n)
				}
				clearPending(e)
			}
		})
	}
}

// BenchmarkStepObserved is BenchmarkStep's block and forward paths with
// each observer on (off: BenchmarkStep). attrib/hit is a query from a
// socket attribution has cached; attrib/miss one it has not (the step's
// share: a cache miss and a queued lookup; the lookup itself runs on
// attrib's goroutine, measured by attrib's BenchmarkResolve).
func BenchmarkStepObserved(b *testing.B) {
	for _, obs := range []string{"off", "metrics", "tap", "attrib"} {
		variants := []string{""}
		if obs == "attrib" {
			variants = []string{"/hit", "/miss"}
		}
		for _, v := range variants {
			for i, name := range []string{"block", "forward"} {
				b.Run(obs+v+"/"+name, func(b *testing.B) {
					// A fresh engine each: the forward path's sockets and
					// table start empty, as in BenchmarkStep.
					e := newObservedStepEngine(b, obs)
					hit, miss := observedCases(b, e)
					tc := hit[i]
					if v == "/miss" {
						tc = miss[i]
					}
					benchStep(b, e, tc)
				})
			}
		}
	}
}

// TestLookupBudget: at most lookupsPerSecond lookups are queued in one
// second of the engine's clock; the next second starts afresh.
func TestLookupBudget(t *testing.T) {
	var b budget
	now := int64(5 * time.Second)
	n := 0
	for range lookupsPerSecond + 100 {
		if b.take(now) {
			n++
		}
	}
	if n != lookupsPerSecond {
		t.Errorf("%d lookups in one second, want %d", n, lookupsPerSecond)
	}
	if !b.take(now + int64(time.Second)) {
		t.Error("the next second refused its first lookup")
	}
}

// TestHoldRefusedAfterLastPass: once the releaser's last pass has begun,
// hold refuses, so no query is left in a table nobody reads again.
func TestHoldRefusedAfterLastPass(t *testing.T) {
	at, err := attrib.New(attrib.Config{})
	if err != nil {
		t.Skipf("attribution unsupported here: %v", err)
	}
	e := newObservedStepEngine(t, "off")
	e.cfg.Attrib, e.held = at, newHolder()
	k := keyOf(viaTUN, client4, resolver4)
	if !e.hold([]byte("query"), k, viaTUN, client4, resolver4) {
		t.Fatal("an open table refused a query")
	}
	e.held.mu.Lock()
	e.held.closed = true
	e.held.mu.Unlock()
	if e.hold([]byte("query"), k, viaTUN, client4, resolver4) {
		t.Error("a closed table took a query")
	}
}

// TestAliasServfail: a CNAME rewrite whose target's reply cannot be
// spliced gets SERVFAIL for the question its client asked, not silence.
func TestAliasServfail(t *testing.T) {
	reply := pkttest.Msg(0x1234, "target.example", dns.TypeAAAA)
	reply.Response = true
	buf := make([]byte, replyOff+4096)
	n := copy(buf[replyOff:], pkttest.Pack(reply))
	r := &receiver{}
	msg := buf[replyOff : replyOff+n]
	if packet.ReadReply(msg, &r.q) != packet.OK {
		t.Fatal("reply does not read")
	}
	alias := pkttest.Pack(pkttest.Msg(1, "Alias.Example", dns.TypeAAAA))[12:]
	alias = alias[:len(alias)-4] // the name, without type and class
	r.m.aliasLen = uint8(copy(r.m.alias[:], alias))
	k := r.aliasServfail(msg)
	if k == 0 {
		t.Fatal("no SERVFAIL built")
	}
	got := pkttest.Unpack(t, buf[replyOff:replyOff+k])
	if got.Rcode != dns.RcodeServerFailure || !got.Response || len(got.Question) != 1 ||
		got.Question[0].Name != "Alias.Example." || got.Question[0].Qtype != dns.TypeAAAA || len(got.Answer) != 0 {
		t.Errorf("answer %v, want SERVFAIL for Alias.Example. AAAA", got)
	}
}

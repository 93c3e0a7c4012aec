// SPDX-License-Identifier: MIT

package engine

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/dnstun/dnstun/cache"
	"github.com/dnstun/dnstun/filter"
	"github.com/dnstun/dnstun/internal/dnstest"
	"github.com/dnstun/dnstun/internal/pkttest"
	"github.com/dnstun/dnstun/packet"
	"github.com/dnstun/dnstun/querylog"
	"github.com/dnstun/dnstun/tun/tuntest"
	"github.com/miekg/dns"
)

// cacheZone is testZone plus records with short TTLs and a SOA for
// negative answers.
var cacheZone = append([]string{
	"short.example.com. 1 IN A 192.0.2.31",
	"hot.example.com. 2 IN A 192.0.2.32",
	"example.com. 300 IN SOA ns.example.com. admin.example.com. 1 3600 600 86400 2",
}, testZone...)

func startCacheUpstream(t testing.TB) *dnstest.Server {
	t.Helper()
	z, err := dnstest.ParseZone(cacheZone...)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := dnstest.Serve(pc, z)
	t.Cleanup(s.Close)
	return s
}

func newCache(t testing.TB, staleFor time.Duration) *cache.Cache {
	t.Helper()
	c, err := cache.New(cache.Options{MaxBytes: 4 << 20, StaleFor: staleFor})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ttlOf(m *dns.Msg) uint32 {
	if len(m.Answer) == 0 {
		return 0
	}
	return m.Answer[0].Header().Ttl
}

// TestCacheAnswers: a repeated query is answered from the cache, with the
// client's case, a TTL that falls with time, and while the upstream is
// silent; DO and non-DO queries are kept apart; the query log says so.
func TestCacheAnswers(t *testing.T) {
	up := startCacheUpstream(t)
	ring := querylog.New(64)
	h := startEngine(t, Config{Upstreams: udp(up), Cache: newCache(t, 0), QueryLog: ring}, testList)
	first := h.ask(t, 1, "www.example.com", dns.TypeA)
	m := h.ask(t, 2, "WWW.Example.COM", dns.TypeA)
	if up.Queries() != 1 || answerText(m) != "192.0.2.80" || m.Id != 2 || m.Question[0].Name != "WWW.Example.COM." {
		t.Fatalf("second query: upstream saw %d, answer %v", up.Queries(), m)
	}
	if m.Authoritative {
		t.Error("a cached answer claims authority")
	}
	time.Sleep(1100 * time.Millisecond)
	m = h.ask(t, 3, "www.example.com", dns.TypeA)
	if ttlOf(m) >= ttlOf(first) || ttlOf(first)-ttlOf(m) > 2 {
		t.Errorf("TTL %d after 1.1 s in the cache, first %d", ttlOf(m), ttlOf(first))
	}
	up.SetSilent(true)
	if m := h.ask(t, 4, "www.example.com", dns.TypeA); answerText(m) != "192.0.2.80" {
		t.Errorf("with the upstream silent: %v", m)
	}
	up.SetSilent(false)
	// A DO query is another entry.
	do, _ := h.exchange(t, pkttest.Query(client4, resolver4, pkttest.MsgEDNS(5, "www.example.com", dns.TypeA, 1232, true)), 3*time.Second)
	if up.Queries() != 2 || answerText(do) != "192.0.2.80" || do.IsEdns0() == nil {
		t.Errorf("DO query: upstream saw %d, answer %v", up.Queries(), do)
	}
	do, _ = h.exchange(t, pkttest.Query(client4, resolver4, pkttest.MsgEDNS(6, "www.example.com", dns.TypeA, 1232, true)), 3*time.Second)
	if up.Queries() != 2 || do.IsEdns0() == nil || !do.IsEdns0().Do() {
		t.Errorf("second DO query: upstream saw %d, answer %v", up.Queries(), do)
	}
	if h.e.Stats().Get(CacheHits) != 4 {
		t.Errorf("cache hits %d, want 4", h.e.Stats().Get(CacheHits))
	}
	found := false
	for _, r := range ring.Snapshot(64) {
		found = found || r.Decision == "cache"
	}
	if !found {
		t.Error("the query log does not mark cache answers")
	}
}

// TestCacheNegative: NXDOMAIN is cached for the SOA's minimum (2 s), then
// asked again.
func TestCacheNegative(t *testing.T) {
	up := startCacheUpstream(t)
	h := startEngine(t, Config{Upstreams: udp(up), Cache: newCache(t, 0)}, testList)
	for i := range 3 {
		if m := h.ask(t, uint16(i), "nope.example.com", dns.TypeA); m.Rcode != dns.RcodeNameError || len(m.Ns) != 1 {
			t.Fatalf("query %d: %v", i, m)
		}
	}
	if up.Queries() != 1 {
		t.Errorf("upstream saw %d queries for a cached NXDOMAIN", up.Queries())
	}
	time.Sleep(2100 * time.Millisecond)
	h.ask(t, 9, "nope.example.com", dns.TypeA)
	if up.Queries() != 2 {
		t.Errorf("upstream saw %d queries after the SOA minimum, want 2", up.Queries())
	}
}

// TestCacheServeStale: past its TTL, with the upstream silent, an answer is
// served stale (TTL 30) when serve-stale is on, and SERVFAIL when off.
func TestCacheServeStale(t *testing.T) {
	for _, staleFor := range []time.Duration{time.Hour, 0} {
		up := startCacheUpstream(t)
		h := startEngine(t, Config{Upstreams: udp(up), Cache: newCache(t, staleFor),
			UpstreamTimeout: 100 * time.Millisecond, TotalTimeout: 300 * time.Millisecond}, testList)
		h.ask(t, 1, "short.example.com", dns.TypeA)
		time.Sleep(1100 * time.Millisecond)
		up.SetSilent(true)
		m := h.ask(t, 2, "short.example.com", dns.TypeA)
		if staleFor > 0 && (answerText(m) != "192.0.2.31" || ttlOf(m) != 30 || h.e.Stats().Get(CacheStale) != 1) {
			t.Errorf("serve-stale on: %v (stale %d)", m, h.e.Stats().Get(CacheStale))
		}
		if staleFor == 0 && m.Rcode != dns.RcodeServerFailure {
			t.Errorf("serve-stale off: %v, want SERVFAIL", m)
		}
	}
}

// TestCacheServeStaleWhenSlow: with serve-stale on, an upstream slower
// than its turn gets the client the expired answer at the end of that
// turn, not at the total timeout; its late answer refreshes the cache.
func TestCacheServeStaleWhenSlow(t *testing.T) {
	up := startCacheUpstream(t)
	h := startEngine(t, Config{Upstreams: udp(up), Cache: newCache(t, time.Hour),
		UpstreamTimeout: 200 * time.Millisecond, TotalTimeout: 3 * time.Second}, testList)
	h.ask(t, 1, "short.example.com", dns.TypeA)
	time.Sleep(1100 * time.Millisecond)
	up.SetDelay(500 * time.Millisecond)
	start := time.Now()
	m := h.ask(t, 2, "short.example.com", dns.TypeA)
	if took := time.Since(start); answerText(m) != "192.0.2.31" || ttlOf(m) != 30 || took > time.Second {
		t.Fatalf("slow upstream: %v after %v, want the stale answer after one turn", m, took)
	}
	// The late answer refreshes the entry: wait until the cache holds a
	// fresh one (TTL 1 s: ask it within that second).
	q := pkttest.Pack(pkttest.Msg(9, "short.example.com", dns.TypeA))
	var pq packet.Question
	if packet.ReadQuestion(q, &pq) != packet.OK {
		t.Fatal("query")
	}
	buf := make([]byte, 512)
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		copy(buf, q)
		if _, res := h.e.cfg.Cache.Lookup(buf, &pq, 512, h.e.now()); res.Status == cache.Hit {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the late answer did not refresh the cache")
		}
	}
	if m := h.ask(t, 3, "short.example.com", dns.TypeA); answerText(m) != "192.0.2.31" || ttlOf(m) == 30 {
		t.Errorf("after the late answer: %v, want the refreshed entry", m)
	}
}

// TestCacheRuleChange: a rule added after a name was cached blocks it at
// once: the filter decides before the cache is asked.
func TestCacheRuleChange(t *testing.T) {
	up := startCacheUpstream(t)
	live := filter.NewLive(buildSet(t, testList))
	pipe := tuntest.NewPipe(4, 256)
	e, err := New(Config{Upstreams: udp(up), Cache: newCache(t, 0)}, pipe, live)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{e: e, pipe: pipe, done: make(chan error, 1)}
	go func() { h.done <- e.Run(t.Context()) }()
	t.Cleanup(func() { e.Close(); <-h.done })
	h.ask(t, 1, "www.example.com", dns.TypeA)
	if m := h.ask(t, 2, "www.example.com", dns.TypeA); answerText(m) != "192.0.2.80" || h.e.Stats().Get(CacheHits) != 1 {
		t.Fatalf("not cached: %v", m)
	}
	live.Store(buildSet(t, testList+"\n||www.example.com^\n"))
	if m := h.ask(t, 3, "www.example.com", dns.TypeA); m.Rcode != dns.RcodeNameError {
		t.Errorf("a cached name stayed answered after a rule blocked it: %v", m)
	}
}

// TestCachePrefetch: a hot name in the last second of its TTL is refreshed
// in the background, so the next query after the TTL still hits.
func TestCachePrefetch(t *testing.T) {
	up := startCacheUpstream(t)
	h := startEngine(t, Config{Upstreams: udp(up), Cache: newCache(t, 0)}, testList)
	h.ask(t, 1, "hot.example.com", dns.TypeA) // stored, TTL 2
	h.ask(t, 2, "hot.example.com", dns.TypeA)
	time.Sleep(1100 * time.Millisecond)
	h.ask(t, 3, "hot.example.com", dns.TypeA) // hot and in its last second: refresh
	deadline := time.Now().Add(2 * time.Second)
	for up.Queries() < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if up.Queries() != 2 || h.e.Stats().Get(CachePrefetch) != 1 {
		t.Fatalf("upstream saw %d queries, prefetch %d; want a refresh", up.Queries(), h.e.Stats().Get(CachePrefetch))
	}
	time.Sleep(1000 * time.Millisecond) // past the first answer's TTL
	if m := h.ask(t, 4, "hot.example.com", dns.TypeA); answerText(m) != "192.0.2.32" || up.Queries() != 2 {
		t.Errorf("after the TTL: %v, upstream saw %d; want a hit on the refreshed entry", m, up.Queries())
	}
}

// storeWWW puts an answer for www.example.com A into c, as a receiver
// would.
func storeWWW(tb testing.TB, c *cache.Cache, now int64) {
	tb.Helper()
	am := pkttest.Msg(7, "www.example.com", dns.TypeA)
	am.Response, am.RecursionAvailable = true, true
	rr, _ := dns.NewRR("www.example.com. 300 IN A 192.0.2.80")
	am.Answer = []dns.RR{rr}
	if err := c.Store(pkttest.Pack(am), now); err != nil {
		tb.Fatal(err)
	}
}

// TestCacheHitAllocs: answering a cached query in the per-packet step
// allocates nothing.
func TestCacheHitAllocs(t *testing.T) {
	up := startCacheUpstream(t)
	e, err := New(Config{Upstreams: udp(up), Cache: newCache(t, 0)}, tuntest.NewPipe(1, 1), filter.NewLive(buildSet(t, testList)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	storeWWW(t, e.cfg.Cache, e.now())
	w := newWorker(e)
	pkt := pkttest.Query(client4, resolver4, pkttest.Msg(7, "www.example.com", dns.TypeA))
	buf := make([]byte, 2048)
	if n := runStep(w, buf, pkt); n == 0 || e.Stats().Get(CacheHits) != 1 {
		t.Fatalf("step = %d, hits %d", n, e.Stats().Get(CacheHits))
	}
	if a := testing.AllocsPerRun(200, func() { runStep(w, buf, pkt) }); a != 0 {
		t.Errorf("a cache hit allocates %v times", a)
	}
}

// BenchmarkStepCached is the per-packet step of a query answered from the
// cache (compare BenchmarkStep/block/v4: the goal is at most 1.1x).
func BenchmarkStepCached(b *testing.B) {
	e := newStepEngine(b, 1024)
	e.cfg.Cache = newCache(b, 0)
	storeWWW(b, e.cfg.Cache, e.now())
	w := newWorker(e)
	pkt := pkttest.Query(client4, resolver4, pkttest.Msg(7, "www.example.com", dns.TypeA))
	buf := make([]byte, 2048)
	b.ReportAllocs()
	for b.Loop() {
		if runStep(w, buf, pkt) == 0 {
			b.Fatal("no answer")
		}
	}
}

// TestCacheInspectsPerClient: a cached answer is inspected on every hit for
// the asking client, so a $client rule on a CNAME target blocks it for
// that client only, whoever asked first.
func TestCacheInspectsPerClient(t *testing.T) {
	up := startCacheUpstream(t)
	list := testList + "\n||tracker.evil^$client=198.19.53.1\n"
	h := startEngine(t, Config{Upstreams: udp(up), Cache: newCache(t, 0), BlockMode: filter.ModeNull}, list)
	other := netip.MustParseAddrPort("198.19.53.9:40000")
	ask := func(id uint16, client netip.AddrPort) string {
		m, _ := h.exchange(t, pkttest.Query(client, resolver4, pkttest.Msg(id, "cloaked.example", dns.TypeA)), 3*time.Second)
		return answerText(m)
	}
	if got := ask(1, other); got != "192.0.2.9" {
		t.Fatalf("another client, first: %s", got)
	}
	if got := ask(2, client4); got != "0.0.0.0" {
		t.Errorf("the blocked client, from the cache: %s, want the block answer", got)
	}
	if got := ask(3, other); got != "192.0.2.9" {
		t.Errorf("another client again: %s", got)
	}
	if up.Queries() != 1 {
		t.Errorf("upstream saw %d queries, want 1 (the rest from the cache)", up.Queries())
	}
}

// SPDX-License-Identifier: MIT

package engine

import (
	"net/netip"
	"testing"
	"time"

	"github.com/dnstun/dnstun/internal/pkttest"
	"github.com/dnstun/dnstun/upstream"
	"github.com/miekg/dns"
)

// TestClientShare: one client whose queries get no answer fills its share
// of the pending table (MaxPending/ClientShareDiv), then is refused; another
// client is still forwarded; answered queries give the share back.
func TestClientShare(t *testing.T) {
	silent := startUpstream(t)
	silent.SetSilent(true)
	h := startEngine(t, Config{Upstreams: upstream.UDPSpecs([]netip.AddrPort{silent.Addr()}), MaxPending: 8, TotalTimeout: 10 * time.Second, UpstreamTimeout: 10 * time.Second}, testList)
	for i := range 2 {
		if !h.pipe.Inject(pkttest.Query(client4, resolver4, pkttest.Msg(uint16(i), "www.example.com", dns.TypeA))) {
			t.Fatal("inject")
		}
	}
	m, _ := h.exchange(t, pkttest.Query(client4, resolver4, pkttest.Msg(3, "www.example.com", dns.TypeA)), 3*time.Second)
	if m.Rcode != dns.RcodeRefused || m.Id != 3 {
		t.Fatalf("third query of a client with two waiting: %v, want REFUSED", m)
	}
	if !h.pipe.Inject(pkttest.Query(client6, resolver6, pkttest.Msg(4, "www.example.com", dns.TypeA))) {
		t.Fatal("inject")
	}
	deadline := time.Now().Add(2 * time.Second)
	for silent.Queries() < 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := silent.Queries(); n != 3 {
		t.Errorf("the upstream got %d queries, want 3 (two of the first client, one of the other)", n)
	}
	st := h.e.Stats()
	if st.Get(ClientFull) != 1 || st.Get(Full) != 0 || st.Pending != 3 {
		t.Errorf("client_full %d, full %d, pending %d; want 1, 0, 3", st.Get(ClientFull), st.Get(Full), st.Pending)
	}
	// Closing answers the waiting queries and gives every share back.
	h.e.Close()
	for i := range h.e.clients.waiting {
		if n := h.e.clients.waiting[i].Load(); n != 0 {
			t.Fatalf("bucket %d holds %d after close", i, n)
		}
	}
}

// TestClientRate: a client over its rate is refused before anything else
// is done; another client is not; the bucket refills with time.
func TestClientRate(t *testing.T) {
	c := newClients(5, 100)
	a, b := c.bucket(client4.Addr()), c.bucket(client6.Addr())
	if a == b {
		t.Skip("the two test clients share a bucket under this seed")
	}
	now := int64(time.Hour)
	n := 0
	for range 20 {
		if c.allow(a, now) {
			n++
		}
	}
	if n != 5 {
		t.Errorf("%d of 20 queries in one instant allowed, want the burst of 5", n)
	}
	if !c.allow(b, now) {
		t.Error("another client was refused")
	}
	if !c.allow(a, now+int64(200*time.Millisecond)) {
		t.Error("200 ms later (one query's worth at 5/s) the client was still refused")
	}
	if c.allow(a, now+int64(200*time.Millisecond)) {
		t.Error("a second query in the same instant was allowed")
	}
	off := newClients(0, 100)
	for range 1000 {
		if !off.allow(a, now) {
			t.Fatal("rate 0 refused a query")
		}
	}
}

// TestClientRateEngine: with ClientRate, the queries past the burst are
// answered REFUSED and counted; the answered ones are decided as usual.
func TestClientRateEngine(t *testing.T) {
	up := startUpstream(t)
	h := startEngine(t, Config{Upstreams: upstream.UDPSpecs([]netip.AddrPort{up.Addr()}), ClientRate: 3}, testList)
	var rcodes []int
	for i := range 6 {
		m, _ := h.exchange(t, pkttest.Query(client4, resolver4, pkttest.Msg(uint16(i), "ads.example", dns.TypeA)), 2*time.Second)
		rcodes = append(rcodes, m.Rcode)
	}
	refused := 0
	for _, rc := range rcodes {
		switch rc {
		case dns.RcodeRefused:
			refused++
		case dns.RcodeNameError:
		default:
			t.Errorf("rcode %d", rc)
		}
	}
	// The burst is 3; the coarse clock may tick once during the loop and
	// let a few more through, never all.
	if refused < 1 || refused > 3 || rcodes[0] != dns.RcodeNameError {
		t.Errorf("rcodes %v: want the first answered, and the later ones REFUSED past the burst of 3", rcodes)
	}
	if got := h.e.Stats().Get(RateLimited); got != uint64(refused) {
		t.Errorf("rate_limited %d, want %d", got, refused)
	}
}

// BenchmarkClientAllow is the rate check of one query.
func BenchmarkClientAllow(b *testing.B) {
	c := newClients(1<<20, 100)
	i := c.bucket(client4.Addr())
	b.ReportAllocs()
	now := int64(0)
	for b.Loop() {
		now += 1000
		c.allow(i, now)
	}
}

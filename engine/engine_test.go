// SPDX-License-Identifier: MIT

package engine

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/dnstun/dnstun/filter"
	"github.com/dnstun/dnstun/internal/dnstest"
	"github.com/dnstun/dnstun/internal/pkttest"
	"github.com/dnstun/dnstun/internal/privtest"
	"github.com/dnstun/dnstun/packet"
	"github.com/dnstun/dnstun/querylog"
	"github.com/dnstun/dnstun/tun/tuntest"
	"github.com/dnstun/dnstun/upstream"
	"github.com/miekg/dns"
)

var (
	client4   = netip.MustParseAddrPort("198.19.53.1:40000")
	resolver4 = netip.MustParseAddrPort("198.19.53.53:53")
	client6   = netip.MustParseAddrPort("[fd64:6e73:7475::1]:40001")
	resolver6 = netip.MustParseAddrPort("[fd64:6e73:7475::53]:53")
)

const testList = `
# test list
ads.example
||tracker.example^
0.0.0.0 exact.example
192.0.2.7 printer.lan
2001:db8::7 printer.lan
@@||ok.ads.example^
`

var testZone = []string{
	"cloaked.example. 300 IN CNAME tracker.evil.",
	"tracker.evil. 300 IN A 192.0.2.9",
	"ipblocked.example. 300 IN A 192.0.2.222",
	"www.example.com. 300 IN A 192.0.2.80",
	"www.example.com. 300 IN AAAA 2001:db8::80",
	"sub.ads.example. 300 IN A 192.0.2.99",
}

func buildSet(t testing.TB, list string) *filter.Set {
	t.Helper()
	b := filter.NewBuilder()
	if _, err := b.ParseList(strings.NewReader(list), "test", nil); err != nil {
		t.Fatal(err)
	}
	return b.Build()
}

// startUpstream serves testZone on a loopback UDP port.
func startUpstream(t testing.TB) *dnstest.Server {
	t.Helper()
	return startUpstreamAt(t, "127.0.0.1:0")
}

type harness struct {
	e    *Engine
	pipe *tuntest.Pipe
	done chan error
}

// startEngine runs an engine over an in-memory TUN.
func startEngine(t testing.TB, cfg Config, list string) *harness {
	t.Helper()
	pipe := tuntest.NewPipe(4, 256)
	e, err := New(cfg, pipe, filter.NewLive(buildSet(t, list)))
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{e: e, pipe: pipe, done: make(chan error, 1)}
	go func() { h.done <- e.Run(context.Background()) }()
	t.Cleanup(func() {
		e.Close()
		if err := <-h.done; err != nil {
			t.Errorf("Run: %v", err)
		}
		if err := pipe.Err(); err != nil {
			t.Errorf("tun contract: %v", err)
		}
	})
	return h
}

// exchange writes one query packet into the TUN and returns the answer
// packet's DNS message, after verifying its IP/UDP headers independently.
func (h *harness) exchange(t testing.TB, pkt []byte, wait time.Duration) (*dns.Msg, []byte) {
	t.Helper()
	if !h.pipe.Inject(pkt) {
		t.Fatal("inject failed")
	}
	select {
	case out := <-h.pipe.Written():
		payload := pkttest.VerifyUDP(t, out)
		return pkttest.Unpack(t, payload), out
	case <-time.After(wait):
		t.Fatalf("no answer within %v", wait)
	}
	return nil, nil
}

// TestEngineDecisions runs one query per row through the engine and checks
// the answer and how many queries the fake upstream received for it:
// wantUpstream is 1 for a forwarded query and 0 for one answered in place
// (blocked, local, FORMERR, NOTIMP).
func TestEngineDecisions(t *testing.T) {
	up := startUpstream(t)
	h := startEngine(t, Config{Upstreams: upstream.UDPSpecs([]netip.AddrPort{up.Addr()})}, testList)
	notimp := pkttest.Msg(0xbbbb, "www.example.com", dns.TypeA)
	notimp.Opcode = dns.OpcodeStatus
	rows := []struct {
		name     string
		client   netip.AddrPort
		resolver netip.AddrPort
		q        *dns.Msg
		// mangle, if set, edits the packed query before it is sent.
		mangle       func(msg []byte)
		rcode        int
		answers      []string
		ede          bool
		wantUpstream int // queries the upstream receives for this row
	}{
		{"forwarded A v4", client4, resolver4, pkttest.Msg(0x1111, "www.example.com", dns.TypeA), nil, dns.RcodeSuccess, []string{"192.0.2.80"}, false, 1},
		{"forwarded AAAA v6", client6, resolver6, pkttest.Msg(0x2222, "WWW.Example.COM", dns.TypeAAAA), nil, dns.RcodeSuccess, []string{"2001:db8::80"}, false, 1},
		{"upstream NXDOMAIN", client4, resolver4, pkttest.Msg(0x3333, "nope.example.com", dns.TypeA), nil, dns.RcodeNameError, nil, false, 1},
		{"blocked plain domain", client4, resolver4, pkttest.Msg(0x4444, "ads.example", dns.TypeA), nil, dns.RcodeNameError, nil, false, 0},
		{"blocked subdomain with EDNS gets EDE", client6, resolver6, pkttest.MsgEDNS(0x5555, "deep.sub.tracker.example", dns.TypeA, 1232, false), nil, dns.RcodeNameError, nil, true, 0},
		{"exception forwards", client4, resolver4, pkttest.Msg(0x6666, "ok.ads.example", dns.TypeA), nil, dns.RcodeNameError, nil, false, 1},
		{"local answer A", client4, resolver4, pkttest.Msg(0x7777, "printer.lan", dns.TypeA), nil, dns.RcodeSuccess, []string{"192.0.2.7"}, false, 0},
		{"local answer AAAA", client6, resolver6, pkttest.Msg(0x8888, "printer.lan", dns.TypeAAAA), nil, dns.RcodeSuccess, []string{"2001:db8::7"}, false, 0},
		// As in AdGuard Home: hosts lines answer A and AAAA (and PTR);
		// other types of the name go upstream (which knows no printer.lan).
		{"local name other type is forwarded", client4, resolver4, pkttest.Msg(0x9999, "printer.lan", dns.TypeTXT), nil, dns.RcodeNameError, nil, false, 1},
		{"compression pointer in question is FORMERR", client4, resolver4, pkttest.Msg(0xaaaa, "www.example.com", dns.TypeA),
			func(m []byte) { m[12], m[13] = 0xC0, 0x0C }, dns.RcodeFormatError, nil, false, 0},
		{"opcode STATUS is NOTIMP", client6, resolver6, notimp, nil, dns.RcodeNotImplemented, nil, false, 0},
	}
	wantForwarded := 0
	for _, tc := range rows {
		wantForwarded += tc.wantUpstream
		t.Run(tc.name, func(t *testing.T) {
			before := up.Queries()
			beforeName := up.QueriesFor(tc.q.Question[0].Name)
			msg := pkttest.Pack(tc.q)
			if tc.mangle != nil {
				tc.mangle(msg)
			}
			var pkt []byte
			if tc.client.Addr().Is4() {
				pkt = pkttest.UDP4(tc.client, tc.resolver, msg, nil)
			} else {
				pkt = pkttest.UDP6(tc.client, tc.resolver, msg, nil)
			}
			m, out := h.exchange(t, pkt, 3*time.Second)
			if m.Id != tc.q.Id || !m.Response {
				t.Errorf("id %#x response %v, want %#x true", m.Id, m.Response, tc.q.Id)
			}
			if m.Rcode != tc.rcode {
				t.Errorf("rcode %s, want %s", dns.RcodeToString[m.Rcode], dns.RcodeToString[tc.rcode])
			}
			// A rejected query is answered with the header only
			// (packet.ReadQuestion); any other echoes the question.
			if tc.rcode == dns.RcodeFormatError || tc.rcode == dns.RcodeNotImplemented {
				if len(m.Question) != 0 {
					t.Errorf("question %v in a %s answer, want none", m.Question, dns.RcodeToString[tc.rcode])
				}
			} else if len(m.Question) != 1 || !strings.EqualFold(m.Question[0].Name, tc.q.Question[0].Name) {
				t.Errorf("question %v, want %v", m.Question, tc.q.Question)
			}
			var got []string
			for _, rr := range m.Answer {
				switch rr := rr.(type) {
				case *dns.A:
					got = append(got, rr.A.String())
				case *dns.AAAA:
					got = append(got, rr.AAAA.String())
				}
			}
			if strings.Join(got, ",") != strings.Join(tc.answers, ",") {
				t.Errorf("answers %v, want %v", got, tc.answers)
			}
			hasEDE := false
			if opt := m.IsEdns0(); opt != nil {
				for _, o := range opt.Option {
					if e, ok := o.(*dns.EDNS0_EDE); ok && e.InfoCode == dns.ExtendedErrorCodeBlocked {
						hasEDE = true
					}
				}
			}
			if hasEDE != tc.ede {
				t.Errorf("EDE Blocked present = %v, want %v", hasEDE, tc.ede)
			}
			// The answer comes from the resolver the client asked, to the client.
			src, dst := addrsOf(t, out)
			if src != tc.resolver || dst != tc.client {
				t.Errorf("answer %v -> %v, want %v -> %v", src, dst, tc.resolver, tc.client)
			}
			if got := up.Queries() - before; got != int64(tc.wantUpstream) {
				t.Errorf("upstream received %d queries, want %d", got, tc.wantUpstream)
			}
			if got := up.QueriesFor(tc.q.Question[0].Name) - beforeName; got != tc.wantUpstream {
				t.Errorf("upstream received %d queries for %s, want %d", got, tc.q.Question[0].Name, tc.wantUpstream)
			}
		})
	}
	st := h.e.Stats()
	for _, c := range []struct {
		c    Counter
		want int
	}{
		{Packets, len(rows)},
		{Blocked, 2},
		{Local, 2},
		{Forwarded, wantForwarded},
		{Replied, wantForwarded},
		{Retried, 0},
		{ServFail, 0},
		{Unmatched, 0},
	} {
		if got := st.Get(c.c); got != uint64(c.want) {
			t.Errorf("counter %s = %d, want %d (all: %v)", c.c, got, c.want, st.Map())
		}
	}
	var wantDrops [packet.NumReasons]uint64
	wantDrops[packet.FormErr], wantDrops[packet.NotImp] = 1, 1
	if st.Drops != wantDrops {
		t.Errorf("drops %v, want %v", st.Drops, wantDrops)
	}
}

func addrsOf(t testing.TB, pkt []byte) (src, dst netip.AddrPort) {
	t.Helper()
	if pkt[0]>>4 == 4 {
		s, _ := netip.AddrFromSlice(pkt[12:16])
		d, _ := netip.AddrFromSlice(pkt[16:20])
		return netip.AddrPortFrom(s, uint16(pkt[20])<<8|uint16(pkt[21])), netip.AddrPortFrom(d, uint16(pkt[22])<<8|uint16(pkt[23]))
	}
	s, _ := netip.AddrFromSlice(pkt[8:24])
	d, _ := netip.AddrFromSlice(pkt[24:40])
	return netip.AddrPortFrom(s, uint16(pkt[40])<<8|uint16(pkt[41])), netip.AddrPortFrom(d, uint16(pkt[42])<<8|uint16(pkt[43]))
}

func TestEngineQueryLog(t *testing.T) {
	up := startUpstream(t)
	ring := querylog.New(16)
	h := startEngine(t, Config{Upstreams: upstream.UDPSpecs([]netip.AddrPort{up.Addr()}), QueryLog: ring}, testList)
	h.exchange(t, pkttest.Query(client4, resolver4, pkttest.Msg(1, "ads.example", dns.TypeA)), 3*time.Second)
	h.exchange(t, pkttest.Query(client6, resolver6, pkttest.Msg(2, "www.example.com", dns.TypeAAAA)), 3*time.Second)
	h.exchange(t, pkttest.Query(client4, resolver4, pkttest.Msg(3, "printer.lan", dns.TypeA)), 3*time.Second)
	got := ring.Snapshot(10)
	if len(got) != 3 {
		t.Fatalf("log has %d entries: %+v", len(got), got)
	}
	for i, want := range []struct{ name, decision, rcode, upstream string }{
		{"ads.example", "block", "NXDOMAIN", ""},
		{"www.example.com", "forward", "NOERROR", up.Addr().String()},
		{"printer.lan", "local", "NOERROR", ""},
	} {
		e := got[i]
		if e.Name != want.name || e.Decision != want.decision || e.Rcode != want.rcode || e.Upstream != want.upstream {
			t.Errorf("entry %d = %+v, want %+v", i, e, want)
		}
	}
	if got[1].Client != client6.String() || got[1].Type != "AAAA" {
		t.Errorf("forwarded entry %+v", got[1])
	}
}

func TestEngineBlockModes(t *testing.T) {
	up := startUpstream(t)
	for _, tc := range []struct {
		mode    filter.BlockMode
		qtype   uint16
		rcode   int
		answers []string
	}{
		{filter.ModeNXDomain, dns.TypeA, dns.RcodeNameError, nil},
		{filter.ModeRefused, dns.TypeA, dns.RcodeRefused, nil},
		{filter.ModeNoData, dns.TypeA, dns.RcodeSuccess, nil},
		{filter.ModeNull, dns.TypeA, dns.RcodeSuccess, []string{"0.0.0.0"}},
		{filter.ModeNull, dns.TypeAAAA, dns.RcodeSuccess, []string{"::"}},
		{filter.ModeNull, dns.TypeMX, dns.RcodeSuccess, nil},
	} {
		t.Run(tc.mode.String()+"/"+dns.TypeToString[tc.qtype], func(t *testing.T) {
			h := startEngine(t, Config{Upstreams: upstream.UDPSpecs([]netip.AddrPort{up.Addr()}), BlockMode: tc.mode}, testList)
			m, _ := h.exchange(t, pkttest.Query(client4, resolver4, pkttest.Msg(7, "ads.example", tc.qtype)), 3*time.Second)
			if m.Rcode != tc.rcode {
				t.Errorf("rcode %s, want %s", dns.RcodeToString[m.Rcode], dns.RcodeToString[tc.rcode])
			}
			var got []string
			for _, rr := range m.Answer {
				switch rr := rr.(type) {
				case *dns.A:
					got = append(got, rr.A.String())
				case *dns.AAAA:
					got = append(got, rr.AAAA.String())
				}
				if rr.Header().Ttl != DefaultBlockTTL {
					t.Errorf("TTL %d, want %d", rr.Header().Ttl, DefaultBlockTTL)
				}
			}
			if strings.Join(got, ",") != strings.Join(tc.answers, ",") {
				t.Errorf("answers %v, want %v", got, tc.answers)
			}
		})
	}
}

func TestEngineFailoverToSecondUpstream(t *testing.T) {
	silent := startUpstream(t)
	silent.SetSilent(true)
	good := startUpstream(t)
	h := startEngine(t, Config{
		Upstreams:       upstream.UDPSpecs([]netip.AddrPort{silent.Addr(), good.Addr()}),
		UpstreamTimeout: 200 * time.Millisecond,
		TotalTimeout:    2 * time.Second,
	}, testList)
	start := time.Now()
	m, _ := h.exchange(t, pkttest.Query(client4, resolver4, pkttest.Msg(42, "www.example.com", dns.TypeA)), 3*time.Second)
	took := time.Since(start)
	if m.Rcode != dns.RcodeSuccess || len(m.Answer) != 1 {
		t.Fatalf("answer %v", m)
	}
	if silent.Queries() != 1 || good.Queries() != 1 {
		t.Errorf("queries: silent %d, good %d; want 1 and 1", silent.Queries(), good.Queries())
	}
	if took < 200*time.Millisecond {
		t.Errorf("answered after %v, before the first upstream's timeout", took)
	}
	if h.e.Stats().Get(Retried) != 1 {
		t.Errorf("stats %v", h.e.Stats().Map())
	}
}

func TestEngineServfailWhenNoUpstreamAnswers(t *testing.T) {
	silent := startUpstream(t)
	silent.SetSilent(true)
	h := startEngine(t, Config{
		Upstreams:       upstream.UDPSpecs([]netip.AddrPort{silent.Addr()}),
		UpstreamTimeout: 100 * time.Millisecond,
		TotalTimeout:    350 * time.Millisecond,
	}, testList)
	start := time.Now()
	m, _ := h.exchange(t, pkttest.Query(client6, resolver6, pkttest.MsgEDNS(43, "www.example.com", dns.TypeA, 4096, true)), 3*time.Second)
	took := time.Since(start)
	if m.Rcode != dns.RcodeServerFailure || m.Id != 43 {
		t.Fatalf("answer %v", m)
	}
	if took < 350*time.Millisecond {
		t.Errorf("SERVFAIL after %v, before the total timeout", took)
	}
	// One try per 100 ms until 350 ms: the first send and 3 retries.
	if q := silent.Queries(); q < 3 || q > 4 {
		t.Errorf("upstream saw %d attempts, want 3 or 4", q)
	}
	if h.e.Stats().Pending != 0 {
		t.Errorf("pending %d after SERVFAIL", h.e.Stats().Pending)
	}
}

func TestEngineRefusingUpstreamFailsFast(t *testing.T) {
	dead := startUpstream(t)
	addr := dead.Addr()
	dead.Close() // now the kernel answers with ICMP port unreachable
	h := startEngine(t, Config{
		Upstreams:       upstream.UDPSpecs([]netip.AddrPort{addr}),
		UpstreamTimeout: 2 * time.Second,
		TotalTimeout:    5 * time.Second,
	}, testList)
	start := time.Now()
	m, _ := h.exchange(t, pkttest.Query(client4, resolver4, pkttest.Msg(44, "www.example.com", dns.TypeA)), 4*time.Second)
	if m.Rcode != dns.RcodeServerFailure {
		t.Fatalf("answer %v", m)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("SERVFAIL after %v; a refusing upstream should fail at once", took)
	}
}

func TestEngineFullTableRefuses(t *testing.T) {
	silent := startUpstream(t)
	silent.SetSilent(true)
	h := startEngine(t, Config{Upstreams: upstream.UDPSpecs([]netip.AddrPort{silent.Addr()}), MaxPending: 1, TotalTimeout: 10 * time.Second}, testList)
	if !h.pipe.Inject(pkttest.Query(client4, resolver4, pkttest.Msg(1, "www.example.com", dns.TypeA))) {
		t.Fatal("inject")
	}
	// Another client: the table is full, not only the first one's share.
	m, _ := h.exchange(t, pkttest.Query(client6, resolver6, pkttest.Msg(2, "www.example.com", dns.TypeA)), 3*time.Second)
	if m.Rcode != dns.RcodeRefused || m.Id != 2 {
		t.Fatalf("answer %v, want REFUSED for id 2", m)
	}
	if h.e.Stats().Get(Full) != 1 {
		t.Errorf("stats %v", h.e.Stats().Map())
	}
}

func TestEngineCloseAnswersPending(t *testing.T) {
	silent := startUpstream(t)
	silent.SetSilent(true)
	pipe := tuntest.NewPipe(1, 16)
	e, err := New(Config{Upstreams: upstream.UDPSpecs([]netip.AddrPort{silent.Addr()}), TotalTimeout: time.Minute}, pipe, filter.NewLive(buildSet(t, testList)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	pipe.Inject(pkttest.Query(client4, resolver4, pkttest.Msg(5, "www.example.com", dns.TypeA)))
	deadline := time.Now().Add(3 * time.Second)
	for e.Stats().Pending == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	select {
	case out := <-pipe.Written():
		m := pkttest.Unpack(t, pkttest.VerifyUDP(t, out))
		if m.Rcode != dns.RcodeServerFailure || m.Id != 5 {
			t.Errorf("answer on close %v", m)
		}
	default:
		t.Fatal("the pending query was not answered on close")
	}
}

// TestEngineDropsGarbageAndKeepsServing sends one malformed packet per row
// and checks that each is counted under exactly its reason, that only
// NOTIMP and FORMERR are answered (garbage never is), that nothing reaches
// the upstream, and that a valid query is still answered afterwards.
func TestEngineDropsGarbageAndKeepsServing(t *testing.T) {
	up := startUpstream(t)
	h := startEngine(t, Config{Upstreams: upstream.UDPSpecs([]netip.AddrPort{up.Addr()})}, testList)
	valid := pkttest.Query(client4, resolver4, pkttest.Msg(9, "ads.example", dns.TypeA))
	valid6 := pkttest.Query(client6, resolver6, pkttest.Msg(9, "ads.example", dns.TypeA))
	// edit returns a copy of pkt with f applied.
	edit := func(pkt []byte, f func(b []byte)) []byte {
		b := bytes.Clone(pkt)
		f(b)
		return b
	}
	// query packs a query for x.example with id, changed by f if set.
	query := func(id uint16, f func(m *dns.Msg)) []byte {
		m := pkttest.Msg(id, "x.example", dns.TypeA)
		if f != nil {
			f(m)
		}
		return pkttest.Pack(m)
	}
	const drop = -1 // rcode of a row that must get no answer
	rows := []struct {
		name   string
		pkt    []byte
		reason packet.Reason
		rcode  int // the answer's rcode, or drop
		id     uint16
	}{
		{"empty", []byte{}, packet.DropShort, drop, 0},
		{"one byte", []byte{0x45}, packet.DropShort, drop, 0},
		{"truncated IPv4", valid[:30], packet.DropShort, drop, 0},
		{"truncated IPv6", valid6[:50], packet.DropShort, drop, 0},
		{"IP version 5", edit(valid, func(b []byte) { b[0] = 0x55 }), packet.DropVersion, drop, 0},
		{"IPv4 IHL 4", edit(valid, func(b []byte) { b[0] = 0x44 }), packet.DropBadHeader, drop, 0},
		{"UDP length differs from IP", edit(valid, func(b []byte) { b[25]-- }), packet.DropBadHeader, drop, 0},
		{"IPv4 more fragments", edit(valid, func(b []byte) { b[6] |= 0x20 }), packet.DropFragment, drop, 0},
		{"IPv6 fragment header", edit(valid6, func(b []byte) { b[6] = 44 }), packet.DropFragment, drop, 0},
		{"IPv6 hop-by-hop header", edit(valid6, func(b []byte) { b[6] = 0 }), packet.DropIPv6Ext, drop, 0},
		{"TCP", edit(valid, func(b []byte) { b[9] = 6 }), packet.DropNotUDP, drop, 0},
		{"port 5353", pkttest.UDP4(client4, netip.MustParseAddrPort("198.19.53.53:5353"), query(9, nil), nil), packet.DropNotDNS, drop, 0},
		{"DNS shorter than a header", pkttest.UDP4(client4, resolver4, []byte{1, 2, 3}, nil), packet.DropShortDNS, drop, 0},
		{"a response", pkttest.UDP4(client4, resolver4, query(9, func(m *dns.Msg) { m.Response = true }), nil), packet.DropResponse, drop, 0},
		{"compression pointer in question", pkttest.UDP4(client4, resolver4, edit(query(77, nil), func(b []byte) { b[12], b[13] = 0xC0, 0x0C }), nil),
			packet.FormErr, dns.RcodeFormatError, 77},
		{"two questions", pkttest.UDP6(client6, resolver6, edit(query(78, nil), func(b []byte) { b[5] = 2 }), nil), // QDCOUNT, bytes 4-5
			packet.FormErr, dns.RcodeFormatError, 78},
		{"opcode NOTIFY", pkttest.UDP4(client4, resolver4, query(79, func(m *dns.Msg) { m.Opcode = dns.OpcodeNotify }), nil),
			packet.NotImp, dns.RcodeNotImplemented, 79},
	}
	var want [packet.NumReasons]uint64
	for _, tc := range rows {
		want[tc.reason]++
	}
	for r := packet.OK + 1; r < packet.NumReasons; r++ {
		if want[r] == 0 {
			t.Errorf("no row for reason %s: add one", r)
		}
	}
	for _, tc := range rows {
		if tc.rcode == drop {
			// Nothing is written for it: the next answer read below
			// must be the next answered row's.
			if !h.pipe.Inject(tc.pkt) {
				t.Fatalf("%s: inject failed", tc.name)
			}
			continue
		}
		m, _ := h.exchange(t, tc.pkt, 3*time.Second)
		if m.Rcode != tc.rcode || m.Id != tc.id {
			t.Errorf("%s: answer rcode %s id %d, want %s id %d", tc.name, dns.RcodeToString[m.Rcode], m.Id, dns.RcodeToString[tc.rcode], tc.id)
		}
	}
	m, _ := h.exchange(t, valid, 3*time.Second)
	if m.Rcode != dns.RcodeNameError || m.Id != 9 {
		t.Fatalf("answer after garbage %v", m)
	}
	select {
	case out := <-h.pipe.Written():
		t.Errorf("unexpected packet written: % x", out)
	default:
	}
	st := h.e.Stats()
	for r := packet.Reason(0); r < packet.NumReasons; r++ {
		if st.Drops[r] != want[r] {
			t.Errorf("drops[%s] = %d, want %d", r, st.Drops[r], want[r])
		}
	}
	for _, c := range []struct {
		c    Counter
		want uint64
	}{
		{Packets, uint64(len(rows)) + 1},
		{Blocked, 1}, // the valid query
		{Local, 0},
		{Forwarded, 0},
	} {
		if got := st.Get(c.c); got != c.want {
			t.Errorf("counter %s = %d, want %d", c.c, got, c.want)
		}
	}
	if n := up.Queries(); n != 0 {
		t.Errorf("upstream received %d queries, want 0", n)
	}
}

// startUpstreamAt serves testZone over UDP on a given loopback address.
func startUpstreamAt(t testing.TB, addr string) *dnstest.Server {
	t.Helper()
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s := dnstest.Serve(pc, testZoneParsed(t))
	t.Cleanup(s.Close)
	return s
}

// startUpstreamTCP serves testZone over TCP on addr (the port of a UDP
// upstream, say).
func startUpstreamTCP(t testing.TB, addr netip.AddrPort) *dnstest.Server {
	t.Helper()
	ln, err := net.Listen("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	s := dnstest.ServeTCP(ln, testZoneParsed(t))
	t.Cleanup(s.Close)
	return s
}

func testZoneParsed(t testing.TB) dnstest.Zone {
	t.Helper()
	z, err := dnstest.ParseZone(testZone...)
	if err != nil {
		t.Fatal(err)
	}
	return z
}

func TestEnginePassThrough(t *testing.T) {
	// Captured packets are DNS only if sent to port 53, so the resolvers
	// the clients ask listen on port 53 of loopback addresses (root).
	privtest.RequirePriv(t)
	a := startUpstreamAt(t, "127.0.53.1:53")
	b := startUpstreamAt(t, "127.0.53.2:53")
	override := startUpstream(t)
	h := startEngine(t, Config{
		Upstreams:   upstream.UDPSpecs([]netip.AddrPort{override.Addr()}),
		PassThrough: true,
		Resolvers:   []netip.Addr{resolver4.Addr()},
		HealthName:  "dnstun-health.invalid",
	}, testList)
	// Captured queries go to the resolver the client asked, and the answer
	// comes back from it.
	for _, up := range []*dnstest.Server{a, b, a} {
		m, pkt := h.exchange(t, pkttest.Query(client4, up.Addr(), pkttest.Msg(21, "www.example.com", dns.TypeA)), 3*time.Second)
		if answerText(m) != "192.0.2.80" {
			t.Fatalf("answer %v", m)
		}
		if src, _ := addrsOf(t, pkt); src != up.Addr() {
			t.Errorf("answer from %v, want %v", src, up.Addr())
		}
	}
	if a.Queries() != 2 || b.Queries() != 1 || override.Queries() != 0 {
		t.Errorf("queries a=%d b=%d override=%d, want 2 1 0", a.Queries(), b.Queries(), override.Queries())
	}
	// Blocked names are still blocked, whatever resolver was asked.
	if m, _ := h.exchange(t, pkttest.Query(client4, a.Addr(), pkttest.Msg(22, "ads.example", dns.TypeA)), 3*time.Second); m.Rcode != dns.RcodeNameError || a.Queries() != 2 {
		t.Errorf("blocked via pass-through: %v (a saw %d)", m, a.Queries())
	}
	// Queries to dnstun's own resolver go to the configured upstream.
	if m, _ := h.exchange(t, pkttest.Query(client4, resolver4, pkttest.Msg(23, "www.example.com", dns.TypeA)), 3*time.Second); answerText(m) != "192.0.2.80" || override.Queries() != 1 {
		t.Errorf("own resolver: %v (override saw %d)", m, override.Queries())
	}
	// The watchdog's probe is answered locally.
	if m, _ := h.exchange(t, pkttest.Query(client4, resolver4, pkttest.Msg(24, "dnstun-health.invalid", dns.TypeA)), 3*time.Second); m.Rcode != dns.RcodeSuccess || override.Queries() != 1 {
		t.Errorf("health probe: %v", m)
	}
}

// answerText lists the answer's addresses, comma-separated.
func answerText(m *dns.Msg) string { return strings.Join(dnstest.Addrs(m), ",") }

func TestEngineSetUpstreams(t *testing.T) {
	a := startUpstream(t)
	b := startUpstream(t)
	h := startEngine(t, Config{Upstreams: upstream.UDPSpecs([]netip.AddrPort{a.Addr()})}, testList)
	if m, _ := h.exchange(t, pkttest.Query(client4, resolver4, pkttest.Msg(31, "www.example.com", dns.TypeA)), 3*time.Second); m.Rcode != dns.RcodeSuccess {
		t.Fatal(m)
	}
	if err := h.e.SetUpstreams(upstream.UDPSpecs([]netip.AddrPort{b.Addr()}), nil); err != nil {
		t.Fatal(err)
	}
	if got := h.e.Upstreams(); len(got) != 1 || got[0].String() != b.Addr().String() {
		t.Errorf("Upstreams() = %v", got)
	}
	if m, _ := h.exchange(t, pkttest.Query(client6, resolver6, pkttest.Msg(32, "www.example.com", dns.TypeAAAA)), 3*time.Second); m.Rcode != dns.RcodeSuccess {
		t.Fatal(m)
	}
	if a.Queries() != 1 || b.Queries() != 1 {
		t.Errorf("a saw %d, b saw %d; want 1 and 1", a.Queries(), b.Queries())
	}
	// Back to a: its slot is reused (it stays in the table until idle).
	n := h.e.slotsInUse()
	if err := h.e.SetUpstreams(upstream.UDPSpecs([]netip.AddrPort{a.Addr(), b.Addr()}), nil); err != nil || h.e.slotsInUse() != n {
		t.Errorf("SetUpstreams back: err %v, upstreams in the table %d -> %d", err, n, h.e.slotsInUse())
	}
	// No upstream at all: SERVFAIL at once.
	h.e.SetUpstreams(nil, nil)
	if m, _ := h.exchange(t, pkttest.Query(client4, resolver4, pkttest.Msg(33, "www.example.com", dns.TypeA)), 3*time.Second); m.Rcode != dns.RcodeServerFailure {
		t.Errorf("no upstream: %v", m)
	}
}

// TestEngineRuleEngine runs the filter's answers through the engine with a
// real upstream: rewrites (A, CNAME resolved upstream, TXT, rcode),
// per-list block modes, bypass signals, and response inspection.
func TestEngineRuleEngine(t *testing.T) {
	up := startUpstream(t)
	b := filter.NewBuilder()
	list := `||rew.example^$dnsrewrite=192.0.2.55
||alias.example^$dnsrewrite=www.example.com
||txt.example^$dnsrewrite=NOERROR;TXT;hello world
||refused.example^$dnsrewrite=REFUSED
||10.2.0.192.in-addr.arpa^$dnsrewrite=NOERROR;PTR;printer.lan
||tracker.evil^
192.0.2.222
`
	if _, err := b.ParseList(strings.NewReader(list), "rules", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := b.ParseListWith(strings.NewReader("nulled.example\n"), filter.ListOptions{Name: "null-list", Mode: filter.ModeNull}, nil); err != nil {
		t.Fatal(err)
	}
	pipe := tuntest.NewPipe(4, 256)
	e, err := New(Config{Upstreams: upstream.UDPSpecs([]netip.AddrPort{up.Addr()})}, pipe, filter.NewLive(b.Build()))
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{e: e, pipe: pipe, done: make(chan error, 1)}
	go func() { h.done <- e.Run(context.Background()) }()
	t.Cleanup(func() { e.Close(); <-h.done })

	ask := func(name string, qtype uint16) *dns.Msg {
		m, _ := h.exchange(t, pkttest.Query(client4, resolver4, pkttest.MsgEDNS(99, name, qtype, 1232, false)), 3*time.Second)
		return m
	}
	before := up.Queries()
	if m := ask("rew.example", dns.TypeA); answerText(m) != "192.0.2.55" {
		t.Errorf("A rewrite: %v", m)
	}
	if m := ask("txt.example", dns.TypeTXT); len(m.Answer) != 1 || m.Answer[0].(*dns.TXT).Txt[0] != "hello world" {
		t.Errorf("TXT rewrite: %v", m)
	}
	if m := ask("refused.example", dns.TypeA); m.Rcode != dns.RcodeRefused {
		t.Errorf("rcode rewrite: %v", m)
	}
	if m := ask("10.2.0.192.in-addr.arpa", dns.TypePTR); len(m.Answer) != 1 || m.Answer[0].(*dns.PTR).Ptr != "printer.lan." {
		t.Errorf("PTR rewrite: %v", m)
	}
	if m := ask("nulled.example", dns.TypeA); answerText(m) != "0.0.0.0" {
		t.Errorf("per-list null mode: %v", m)
	}
	if m := ask("use-application-dns.net", dns.TypeA); m.Rcode != dns.RcodeNameError {
		t.Errorf("Firefox canary: %v", m)
	}
	if m := ask("_dns.resolver.arpa", dns.TypeSVCB); m.Rcode != dns.RcodeSuccess || len(m.Answer) != 0 {
		t.Errorf("DDR: %v", m)
	}
	if up.Queries() != before {
		t.Errorf("local answers reached the upstream %d times", up.Queries()-before)
	}
	// A CNAME rewrite is resolved upstream and spliced under the name asked.
	m := ask("Alias.Example", dns.TypeA)
	if len(m.Answer) != 2 || m.Question[0].Name != "Alias.Example." || m.Id != 99 {
		t.Fatalf("CNAME rewrite: %v", m)
	}
	if c, ok := m.Answer[0].(*dns.CNAME); !ok || c.Target != "www.example.com." || answerText(m) != "192.0.2.80" {
		t.Errorf("CNAME rewrite records: %v", m.Answer)
	}
	if up.QueriesFor("www.example.com") != 1 || up.QueriesFor("alias.example") != 0 {
		t.Errorf("the upstream should see the target only")
	}
	// Response inspection: a CNAME to a blocked name, an address blocked.
	if m := ask("cloaked.example", dns.TypeA); m.Rcode != dns.RcodeNameError || len(m.Answer) != 0 {
		t.Errorf("CNAME cloaking: %v", m)
	}
	if m := ask("ipblocked.example", dns.TypeA); m.Rcode != dns.RcodeNameError {
		t.Errorf("IP rule: %v", m)
	}
	if st := e.Stats(); st.Get(Rewritten) != 1 || st.Get(AnswerBlocked) != 2 {
		t.Errorf("stats %v", st.Map())
	}
}

// TestEngineAliasServfail: a CNAME rewrite whose target gets no answer
// ends in SERVFAIL for the client's question, not the target's.
func TestEngineAliasServfail(t *testing.T) {
	silent := startUpstream(t)
	silent.SetSilent(true)
	h := startEngine(t, Config{Upstreams: upstream.UDPSpecs([]netip.AddrPort{silent.Addr()}), UpstreamTimeout: 50 * time.Millisecond, TotalTimeout: 150 * time.Millisecond},
		"||alias.example^$dnsrewrite=www.example.com\n")
	m, _ := h.exchange(t, pkttest.Query(client4, resolver4, pkttest.MsgEDNS(5, "alias.example", dns.TypeA, 1232, false)), 3*time.Second)
	if m.Rcode != dns.RcodeServerFailure || m.Question[0].Name != "alias.example." || m.Id != 5 {
		t.Errorf("alias SERVFAIL: %v", m)
	}
}

// TestEngineDeviceGone: a TUN that stops reading without a stop asked for
// (deleted from under the process) ends Run with an error that says so, so
// the daemon reports it and exits for its service manager; a stop asked for
// ends it with nil, whatever the device said as it closed.
func TestEngineDeviceGone(t *testing.T) {
	up := startUpstream(t)
	pipe := tuntest.NewPipe(4, 16)
	e, err := New(Config{Upstreams: upstream.UDPSpecs([]netip.AddrPort{up.Addr()})}, pipe, filter.NewLive(buildSet(t, testList)))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- e.Run(context.Background()) }()
	pipe.Close() // the device goes; nobody asked the engine to stop
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "TUN stopped reading") {
			t.Errorf("Run after the device went: %v, want an error saying the TUN stopped", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not end when its device went")
	}
}

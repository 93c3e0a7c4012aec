// SPDX-License-Identifier: MIT

package engine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dnstun/dnstun/internal/dnstest"
	"github.com/dnstun/dnstun/internal/pkttest"
	"github.com/dnstun/dnstun/internal/privtest"
	"github.com/dnstun/dnstun/upstream"
	"github.com/miekg/dns"
)

func udp(servers ...*dnstest.Server) []upstream.Spec {
	var out []upstream.Spec
	for _, s := range servers {
		out = append(out, upstream.UDPSpecs([]netip.AddrPort{s.Addr()})...)
	}
	return out
}

// ask sends one query for name through h and returns the answer.
func (h *harness) ask(t testing.TB, id uint16, name string, qtype uint16) *dns.Msg {
	t.Helper()
	m, _ := h.exchange(t, pkttest.Query(client4, resolver4, pkttest.Msg(id, name, qtype)), 5*time.Second)
	return m
}

// TestAnswersWrittenPerBatch: answers the receiver reads together are
// written into the TUN with one Write, each to its own client with its own
// ID and question. The upstream holds 16 answers 50 ms and sends them
// together, on one socket; a round whose answers were all read one at a
// time is repeated (at most 5).
func TestAnswersWrittenPerBatch(t *testing.T) {
	up := startUpstream(t)
	up.SetDelay(50 * time.Millisecond)
	h := startEngine(t, Config{Upstreams: udp(up), SocketsPerUpstream: 1, QueriesPerSocket: 1000}, testList)
	const n = 16
	for round := 0; round < 5 && h.pipe.MostPerWrite() < 2; round++ {
		for i := range n {
			client := netip.AddrPortFrom(client4.Addr(), uint16(40000+i))
			if !h.pipe.Inject(pkttest.Query(client, resolver4, pkttest.Msg(uint16(round*n+i), fmt.Sprintf("n%d.example.com", i), dns.TypeA))) {
				t.Fatal("inject failed")
			}
		}
		seen := map[uint16]bool{}
		for range n {
			select {
			case out := <-h.pipe.Written():
				payload := pkttest.VerifyUDP(t, out)
				m := new(dns.Msg)
				if err := m.Unpack(payload); err != nil {
					t.Fatal(err)
				}
				i := int(m.Id) - round*n
				dst := binary.BigEndian.Uint16(out[22:24])
				if i < 0 || i >= n || seen[m.Id] || dst != uint16(40000+i) || m.Question[0].Name != fmt.Sprintf("n%d.example.com.", i) || m.Rcode != dns.RcodeNameError {
					t.Fatalf("round %d: answer %v to port %d", round, m, dst)
				}
				seen[m.Id] = true
			case <-time.After(5 * time.Second):
				t.Fatalf("round %d: %d of %d answers", round, len(seen), n)
			}
		}
	}
	if b := h.pipe.MostPerWrite(); b < 2 {
		t.Errorf("the most answers one TUN Write carried: %d; want the receive batch written together", b)
	}
}

func TestSplitDNS(t *testing.T) {
	def, corp, lab := startUpstream(t), startUpstream(t), startUpstream(t)
	h := startEngine(t, Config{
		Upstreams: udp(def),
		Domains: []DomainUpstreams{
			{Domain: "corp.example", Upstreams: udp(corp)},
			{Domain: "lab.example", Upstreams: udp(lab)},
			{Domain: "public.corp.example", UseDefault: true},
			{Domain: "*.wild.example", Upstreams: udp(lab)},
		},
	}, testList)
	rows := []struct {
		name string
		want *dnstest.Server
	}{
		{"x.corp.example", corp},
		{"corp.example", corp},
		{"deep.x.CORP.example", corp},
		{"lab.example", lab},
		{"www.public.corp.example", def}, // "#": the most specific domain wins
		{"notcorp.example", def},
		{"www.example.com", def},
		{"example", def},
		{"a.wild.example", lab}, // "*.": subdomains only
		{"wild.example", def},
	}
	for i, r := range rows {
		before := [3]int64{def.Queries(), corp.Queries(), lab.Queries()}
		h.ask(t, uint16(i+1), r.name, dns.TypeA)
		after := [3]int64{def.Queries(), corp.Queries(), lab.Queries()}
		for j, s := range []*dnstest.Server{def, corp, lab} {
			want := int64(0)
			if s == r.want {
				want = 1
			}
			if after[j]-before[j] != want {
				t.Errorf("%s: upstream %d saw %d queries, want %d", r.name, j, after[j]-before[j], want)
			}
		}
	}
	states := h.e.UpstreamStates()
	if len(states) != 3 || len(states[0].Domains) != 0 || fmt.Sprint(states[1].Domains) != "[corp.example]" {
		t.Errorf("states %+v", states)
	}
}

func TestParallelFirstGoodAnswerWins(t *testing.T) {
	silent, failing, good := startUpstream(t), startUpstream(t), startUpstream(t)
	silent.SetSilent(true)
	failing.SetRcode(dns.RcodeServerFailure)
	good.SetDelay(50 * time.Millisecond) // the SERVFAIL arrives first
	h := startEngine(t, Config{
		Upstreams:       udp(silent, failing, good),
		Strategy:        Parallel,
		UpstreamTimeout: 2 * time.Second,
		TotalTimeout:    4 * time.Second,
	}, testList)
	start := time.Now()
	m := h.ask(t, 7, "www.example.com", dns.TypeA)
	if answerText(m) != "192.0.2.80" {
		t.Fatalf("answer %v", m)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("answered after %v: parallel should not wait for the silent upstream", took)
	}
	if silent.Queries() != 1 || failing.Queries() != 1 || good.Queries() != 1 {
		t.Errorf("queries %d %d %d, want one each", silent.Queries(), failing.Queries(), good.Queries())
	}
	if h.e.Stats().Get(Held) != 1 {
		t.Errorf("held %d, want the SERVFAIL held back", h.e.Stats().Get(Held))
	}
	// When every upstream fails, the client gets the failure, at once.
	good.SetRcode(dns.RcodeServerFailure)
	silent.SetRcode(dns.RcodeServerFailure)
	silent.SetSilent(false)
	if m := h.ask(t, 8, "www.example.com", dns.TypeA); m.Rcode != dns.RcodeServerFailure {
		t.Errorf("all failing: %v", m)
	}
}

func TestFastestPrefersQuickUpstream(t *testing.T) {
	slow, fast := startUpstream(t), startUpstream(t)
	slow.SetDelay(30 * time.Millisecond)
	h := startEngine(t, Config{Upstreams: udp(slow, fast), Strategy: Fastest}, testList)
	const n = 200
	for i := range n {
		if m := h.ask(t, uint16(i+1), "www.example.com", dns.TypeA); answerText(m) != "192.0.2.80" {
			t.Fatalf("query %d: %v", i, m)
		}
	}
	// Each is asked first once (no sample yet); after that the fast one,
	// but for one query in fastestExplore.
	if f := fast.Queries(); f < n*8/10 {
		t.Errorf("fast upstream got %d of %d queries (slow %d)", f, n, slow.Queries())
	}
	if s := slow.Queries(); s < 2 {
		t.Errorf("slow upstream got %d queries: its time is never refreshed", s)
	}
	st := h.e.UpstreamStates()
	if st[0].RTT <= st[1].RTT {
		t.Errorf("rtt slow %v <= fast %v", st[0].RTT, st[1].RTT)
	}
}

func TestCase0x20(t *testing.T) {
	up := startUpstream(t)
	h := startEngine(t, Config{Upstreams: udp(up), Case0x20: true, UpstreamTimeout: 300 * time.Millisecond, TotalTimeout: 600 * time.Millisecond}, testList)
	m := h.ask(t, 1, "WwW.Example.cOm", dns.TypeA)
	if answerText(m) != "192.0.2.80" || m.Question[0].Name != "WwW.Example.cOm." {
		t.Fatalf("answer %v: want the client's own case back", m)
	}
	// The upstream saw the name in a case of our choosing: over many
	// queries, more than one spelling.
	for i := range 20 {
		h.ask(t, uint16(i+2), "www.example.com", dns.TypeA)
	}
	// A server that does not repeat the case is refused: SERVFAIL.
	up.SetLowerCase(true)
	if m := h.ask(t, 50, "www.example.com", dns.TypeA); m.Rcode != dns.RcodeServerFailure {
		t.Errorf("case not repeated: %v, want SERVFAIL", m)
	}
	if h.e.Stats().Get(CaseMismatch) == 0 {
		t.Error("case_mismatch not counted")
	}
}

func TestRandomizeCase(t *testing.T) {
	msg := pkttest.Pack(pkttest.Msg(1, "abcdefghijklmnopqrstuvwxyz.example-1.com", dns.TypeA))
	orig := string(msg)
	end := len(msg) - 4
	spellings := map[string]bool{}
	for range 50 {
		b := []byte(orig)
		var flip [32]byte
		randomizeCase(b, end, &flip)
		if !strings.EqualFold(string(b), orig) {
			t.Fatalf("not a case change: %q", b)
		}
		spellings[string(b)] = true
		unflip(b, &flip)
		if string(b) != orig {
			t.Fatalf("unflip did not restore: %q", b)
		}
	}
	if len(spellings) < 40 {
		t.Errorf("%d spellings in 50: not random", len(spellings))
	}
	if n := testing.AllocsPerRun(100, func() {
		var flip [32]byte
		randomizeCase(msg, end, &flip)
		unflip(msg, &flip)
	}); n != 0 {
		t.Errorf("%v allocations", n)
	}
}

// TestSourcePortsRandom: 1,000 forwarded queries leave from at least 500
// distinct source ports (RFC 5452) with a fresh socket per query. With the
// daemon's default pool (8 sockets in service, 32 queries each) they leave
// from about 1000/32 ports (the kernel may give a closed socket's port to a
// later one, and a socket past its 1 s life is replaced early: 24 to 200).
// The pool's own tests check a socket's budget exactly.
func TestSourcePortsRandom(t *testing.T) {
	for _, c := range []struct {
		name     string
		cfg      Config
		min, max int
	}{
		{"fresh", Config{}, 500, 1000},
		{"pool", Config{SocketsPerUpstream: 8, QueriesPerSocket: 32}, 24, 200},
	} {
		t.Run(c.name, func(t *testing.T) {
			up := startUpstream(t)
			c.cfg.Upstreams = udp(up)
			h := startEngine(t, c.cfg, testList)
			for i := range 1000 {
				if m := h.ask(t, uint16(i), "www.example.com", dns.TypeA); m.Rcode != dns.RcodeSuccess {
					t.Fatalf("query %d: %v", i, m)
				}
			}
			if p := up.SourcePorts(); p < c.min || p > c.max {
				t.Errorf("1000 queries left from %d distinct ports, want %d to %d", p, c.min, c.max)
			}
		})
	}
}

// liar answers every query with forgeries: at the query's socket with the
// wrong ID, name or type; from another port with the right ID and
// question; a flood of guessed IDs at random ports and of the right answer
// at the ports around the query's; then, after a pause, truly.
type liar struct {
	pc, other *net.UDPConn
	wg        sync.WaitGroup
	readErrs  atomic.Int32
}

func startLiar(t *testing.T) *liar {
	t.Helper()
	l := &liar{}
	var err error
	if l.pc, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}); err != nil {
		t.Fatal(err)
	}
	if l.other, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}); err != nil {
		t.Fatal(err)
	}
	l.wg.Add(1)
	go l.serve()
	t.Cleanup(func() { l.pc.Close(); l.other.Close(); l.wg.Wait() })
	return l
}

func (l *liar) addr() netip.AddrPort { return l.pc.LocalAddr().(*net.UDPAddr).AddrPort() }

func (l *liar) serve() {
	defer l.wg.Done()
	buf := make([]byte, 1500)
	for {
		n, from, err := l.pc.ReadFromUDPAddrPort(buf)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			l.readErrs.Add(1) // an ICMP error for one of the flood's packets
			continue
		}
		q := new(dns.Msg)
		if q.Unpack(buf[:n]) != nil || len(q.Question) != 1 || q.Response {
			continue // a stray forgery of its own, sent to its own port
		}
		answer := func(mod func(m *dns.Msg), addr string) []byte {
			m := new(dns.Msg)
			m.SetReply(q)
			rr, _ := dns.NewRR(q.Question[0].Name + " 60 IN A " + addr)
			m.Answer = []dns.RR{rr}
			if mod != nil {
				mod(m)
			}
			b, _ := m.Pack()
			return b
		}
		forged := [][]byte{
			answer(func(m *dns.Msg) { m.Id++ }, "6.6.6.1"),
			answer(func(m *dns.Msg) { m.Question[0].Name = "evil.example." }, "6.6.6.2"),
			answer(func(m *dns.Msg) { m.Question[0].Qtype = dns.TypeAAAA }, "6.6.6.3"),
		}
		for _, f := range forged {
			l.pc.WriteToUDPAddrPort(f, from)
		}
		l.other.WriteToUDPAddrPort(answer(nil, "6.6.6.4"), from)
		// An off-path flood from the right address and port: the right
		// question with guessed IDs at random ports, and the right ID at
		// the ports around the query's (other queries' sockets, if any).
		for i := range 100 {
			if p := 1024 + rand.IntN(64512); p != int(from.Port()) {
				l.pc.WriteToUDPAddrPort(answer(func(m *dns.Msg) { m.Id = uint16(rand.Uint32()) }, "6.6.6.5"), netip.AddrPortFrom(from.Addr(), uint16(p)))
			}
			if p := int(from.Port()) + i - 50; p > 1024 && p < 65536 && p != int(from.Port()) {
				l.pc.WriteToUDPAddrPort(answer(nil, "6.6.6.6"), netip.AddrPortFrom(from.Addr(), uint16(p)))
			}
		}
		time.Sleep(20 * time.Millisecond)
		l.pc.WriteToUDPAddrPort(answer(nil, "192.0.2.80"), from)
	}
}

// TestForgedAnswersRejected: no forgery of the liar's is taken for the
// answer.
//
// With a pool of sockets in service, the forgeries at the ports around the
// query's may reach another of its sockets, with the right ID: the answer
// is matched to the query's own socket, so they are refused too.
func TestForgedAnswersRejected(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  Config
	}{
		{"fresh", Config{}},
		{"pool", Config{SocketsPerUpstream: 8, QueriesPerSocket: 32}},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := startLiar(t)
			c.cfg.Upstreams = upstream.UDPSpecs([]netip.AddrPort{l.addr()})
			h := startEngine(t, c.cfg, testList)
			for i := range 20 {
				if m := h.ask(t, uint16(i), "www.example.com", dns.TypeA); answerText(m) != "192.0.2.80" {
					t.Fatalf("query %d accepted a forgery: %v (liar read errors: %d)", i, m, l.readErrs.Load())
				}
			}
			// The three forgeries at the query's own socket reach dnstun and
			// are refused; the rest never get past the kernel (no socket at
			// their port, or one connected to another address), or reach
			// another of its sockets and are refused.
			if u := h.e.Stats().Get(Unmatched); u < 20*3 {
				t.Errorf("unmatched %d, want at least %d", u, 20*3)
			}
		})
	}
}

// TestPassThroughTableBounded: captured queries to 100 distinct resolvers,
// asked in turn, are all answered, while the upstreams open at once stay
// within MaxUpstreams (idle pass-through resolvers give way).
func TestPassThroughTableBounded(t *testing.T) {
	privtest.RequirePriv(t) // port 53 on loopback addresses
	z := testZoneParsed(t)
	var servers []*dnstest.Server
	for i := range 100 {
		pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.54.%d:53", i+1))
		if err != nil {
			t.Fatal(err)
		}
		s := dnstest.Serve(pc, z)
		t.Cleanup(s.Close)
		servers = append(servers, s)
	}
	h := startEngine(t, Config{PassThrough: true, Resolvers: []netip.Addr{resolver4.Addr()}}, testList)
	for round := range 2 {
		for i, s := range servers {
			m, _ := h.exchange(t, pkttest.Query(client4, s.Addr(), pkttest.Msg(uint16(i), "www.example.com", dns.TypeA)), 3*time.Second)
			if answerText(m) != "192.0.2.80" {
				t.Fatalf("round %d resolver %v: %v", round, s.Addr(), m)
			}
			if n := h.e.slotsInUse(); n > MaxUpstreams {
				t.Fatalf("%d upstreams open at once", n)
			}
			if o := h.e.pool.Stats().Open; o > MaxUpstreams {
				t.Fatalf("%d upstream sockets open at once", o)
			}
		}
	}
	for _, s := range servers {
		if s.Queries() != 2 {
			t.Errorf("%v saw %d queries, want 2", s.Addr(), s.Queries())
		}
	}
}

// TestParallelRefusalWaitsForOthers: in parallel mode an upstream that
// refuses at once (ICMP port unreachable) does not end the query while
// another is still to answer.
func TestParallelRefusalWaitsForOthers(t *testing.T) {
	dead := startUpstream(t)
	deadAddr := dead.Addr()
	dead.Close()
	good := startUpstream(t)
	good.SetDelay(50 * time.Millisecond)
	h := startEngine(t, Config{
		Upstreams: append(upstream.UDPSpecs([]netip.AddrPort{deadAddr}), udp(good)...),
		Strategy:  Parallel, UpstreamTimeout: time.Second, TotalTimeout: 2 * time.Second,
	}, testList)
	for i := range 3 {
		if m := h.ask(t, uint16(i+1), "www.example.com", dns.TypeA); answerText(m) != "192.0.2.80" {
			t.Fatalf("query %d: %v", i, m)
		}
	}
}

// TestStreamUpstreamLateAnswer: an answer over TCP later than the
// per-upstream timeout but within the total one still reaches the client.
func TestStreamUpstreamLateAnswer(t *testing.T) {
	up := startUpstreamTCP(t, netip.MustParseAddrPort("127.0.0.1:0"))
	up.SetDelay(700 * time.Millisecond)
	h := startEngine(t, Config{
		Upstreams:       []upstream.Spec{mustSpec(t, "tcp://"+up.Addr().String())},
		UpstreamTimeout: 500 * time.Millisecond, TotalTimeout: 3 * time.Second,
	}, testList)
	if m := h.ask(t, 1, "www.example.com", dns.TypeA); answerText(m) != "192.0.2.80" {
		t.Fatalf("answer %v", m)
	}
}

// TestPinnedURLIsAnotherUpstream: the same URL with a pin is not served by
// the unpinned transport already in the table.
func TestPinnedURLIsAnotherUpstream(t *testing.T) {
	up := startUpstream(t)
	h := startEngine(t, Config{Upstreams: udp(up)}, testList)
	plain := mustSpec(t, "tls://127.0.0.1:853")
	pinned := mustSpec(t, "tls://127.0.0.1:853#pin-sha256=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=")
	if err := h.e.SetUpstreams([]upstream.Spec{plain}, nil); err != nil {
		t.Fatal(err)
	}
	if err := h.e.SetUpstreams([]upstream.Spec{plain, pinned}, nil); err != nil {
		t.Fatal(err)
	}
	g := h.e.route.Load().groups[0]
	if len(g.idx) != 2 || h.e.slots[g.idx[1]].Load().spec.Pins == nil {
		t.Errorf("the pinned URL shares the unpinned transport: group %v", g.idx)
	}
}

// SPDX-License-Identifier: MIT

package upstream

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/dnstun/dnstun/internal/dnstest"
	"github.com/dnstun/dnstun/internal/quictest"
)

// The tests of this file run against both QUIC transports, DoQ and DoH3,
// served by internal/quictest on loopback.

var quicProtos = []Proto{ProtoQUIC, ProtoH3}

func forQUIC(t *testing.T, f func(t *testing.T, p Proto)) {
	for _, p := range quicProtos {
		t.Run(p.String(), func(t *testing.T) { f(t, p) })
	}
}

// quicRig is a test server and what a client needs to trust it.
type quicRig struct {
	ca   *quictest.CA
	cert tls.Certificate
	srv  *quictest.Server
}

func newQUICRig(t testing.TB, p Proto, cfg quictest.Config) *quicRig {
	t.Helper()
	ca, err := quictest.NewCA("dnstun test CA")
	if err != nil {
		t.Fatal(err)
	}
	r := &quicRig{ca: ca}
	if len(cfg.Cert.Certificate) == 0 {
		if cfg.Cert, err = ca.IssueDefault(); err != nil {
			t.Fatal(err)
		}
	}
	r.cert = cfg.Cert
	if p == ProtoQUIC {
		r.srv, err = quictest.ServeDoQ(cfg)
	} else {
		r.srv, err = quictest.ServeDoH3(cfg)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.srv.Close() })
	return r
}

// spec names the server as dns.test at its loopback address.
func (r *quicRig) spec(p Proto) Spec { return quicSpec(p, r.srv.Addr()) }

func quicSpec(p Proto, ap netip.AddrPort) Spec {
	s := Spec{Proto: p, Host: quictest.ServerName, Addr: ap.Addr(), Port: ap.Port()}
	if p == ProtoH3 {
		s.Path = "/dns-query"
	}
	return s
}

func (r *quicRig) opt() DialOptions {
	return DialOptions{Timeout: 3 * time.Second, IdleTimeout: 30 * time.Second, RootCAs: r.ca.Pool}
}

// quicClient is an Exchanger with its callbacks collected.
type quicClient struct {
	Exchanger
	answers chan *dns.Msg
	fails   chan quicFailure
	logs    *syncBuffer
}

type quicFailure struct {
	id  uint16
	err error
	at  time.Time
}

// syncBuffer is a log sink the test reads while the transport writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func dialQUICTest(t testing.TB, spec Spec, opt DialOptions) *quicClient {
	t.Helper()
	c := &quicClient{answers: make(chan *dns.Msg, 1100), fails: make(chan quicFailure, 1100), logs: &syncBuffer{}}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.NewTextHandler(c.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	ex, err := NewExchanger(spec, opt,
		func(msg []byte) {
			m := new(dns.Msg)
			if err := m.Unpack(msg); err != nil {
				t.Errorf("answer does not parse: %v", err)
				return
			}
			c.answers <- m
		},
		func(id uint16, err error) { c.fails <- quicFailure{id, err, time.Now()} })
	if err != nil {
		t.Fatal(err)
	}
	c.Exchanger = ex
	t.Cleanup(func() { ex.Close() })
	return c
}

func (c *quicClient) send(t testing.TB, id uint16, name string, qtype uint16) {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.Id = id
	m.SetEdns0(1232, false)
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Send(b); err != nil {
		t.Fatal(err)
	}
}

// answer waits for the next answer, failing the test on a failure.
func (c *quicClient) answer(t testing.TB) *dns.Msg {
	t.Helper()
	select {
	case m := <-c.answers:
		return m
	case f := <-c.fails:
		t.Fatalf("query %d failed: %v", f.id, f.err)
	case <-time.After(10 * time.Second):
		t.Fatal("no answer within 10s")
	}
	return nil
}

// failure waits for the next failure, failing the test on an answer.
func (c *quicClient) failure(t testing.TB, within time.Duration) quicFailure {
	t.Helper()
	select {
	case f := <-c.fails:
		return f
	case m := <-c.answers:
		t.Fatalf("want a failure, got an answer: %v", m)
	case <-time.After(within):
		t.Fatalf("no failure within %v", within)
	}
	return quicFailure{}
}

// quiet checks that no callback comes for d.
func (c *quicClient) quiet(t testing.TB, d time.Duration) {
	t.Helper()
	select {
	case f := <-c.fails:
		t.Fatalf("unexpected failure of query %d: %v", f.id, f.err)
	case m := <-c.answers:
		t.Fatalf("unexpected answer: %v", m)
	case <-time.After(d):
	}
}

// exchange sends one query and checks its answer: ID, question, rcode.
func (c *quicClient) exchange(t testing.TB, id uint16, name string, qtype uint16) *dns.Msg {
	t.Helper()
	c.send(t, id, name, qtype)
	m := c.answer(t)
	if m.Id != id {
		t.Fatalf("answer ID %d, want the query's %d", m.Id, id)
	}
	if !m.Response || len(m.Question) != 1 || m.Question[0].Name != name || m.Question[0].Qtype != qtype {
		t.Fatalf("answer to %s/%s is %v", name, dns.TypeToString[qtype], m)
	}
	if m.Rcode != dns.RcodeSuccess {
		t.Fatalf("answer to %s: rcode %s", name, dns.RcodeToString[m.Rcode])
	}
	return m
}

func (x *quicExchanger) liveConns() int {
	x.cmu.Lock()
	defer x.cmu.Unlock()
	return len(x.live)
}

// eventually polls cond every 10ms for up to 5s.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for range 500 {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("not within 5s: %s", what)
}

func TestQUICAnswers(t *testing.T) {
	forQUIC(t, func(t *testing.T, p Proto) {
		r := newQUICRig(t, p, quictest.Config{})
		c := dialQUICTest(t, r.spec(p), r.opt())

		m := c.exchange(t, 0x1234, quictest.NameA, dns.TypeA)
		if len(m.Answer) != 1 || m.Answer[0].(*dns.A).A.String() != "192.0.2.1" {
			t.Errorf("A: %v", m.Answer)
		}
		m = c.exchange(t, 0xffff, quictest.NameA, dns.TypeAAAA)
		if len(m.Answer) != 1 || m.Answer[0].(*dns.AAAA).AAAA.String() != "2001:db8::1" {
			t.Errorf("AAAA: %v", m.Answer)
		}
		m = c.exchange(t, 1, quictest.NameTXT, dns.TypeTXT)
		if len(m.Answer) != 1 || strings.Join(m.Answer[0].(*dns.TXT).Txt, "") != "hello over QUIC" {
			t.Errorf("TXT: %v", m.Answer)
		}
		m = c.exchange(t, 0x8000, quictest.NameBig, dns.TypeTXT)
		if len(m.Answer) != 1 || len(strings.Join(m.Answer[0].(*dns.TXT).Txt, "")) != quictest.BigTXTLen {
			t.Errorf("big TXT: %d records", len(m.Answer))
		}
		if n := m.Len(); n <= 4096 {
			t.Errorf("the big answer is %d bytes, want more than 4096", n)
		}
		// The server sees ID 0 on every query (RFC 9250 §4.2.1; RFC 8484
		// §4.1), and, for DoQ, a STREAM FIN after each.
		if got := r.srv.Streams(); got != 4 {
			t.Errorf("server read %d queries, want 4", got)
		}
		if got := r.srv.NonZeroIDs(); got != 0 {
			t.Errorf("server saw %d queries with a non-zero ID", got)
		}
		if got := r.srv.ProtocolErrors(); got != 0 {
			t.Errorf("server counted %d protocol errors", got)
		}
		if got := r.srv.Conns(); got != 1 {
			t.Errorf("server accepted %d connections, want 1", got)
		}
	})
}

// TestQUICInFlight holds every answer at the server until 100 queries
// wait there: they must all be in flight at once, on one connection.
func TestQUICInFlight(t *testing.T) {
	forQUIC(t, func(t *testing.T, p Proto) {
		r := newQUICRig(t, p, quictest.Config{})
		c := dialQUICTest(t, r.spec(p), r.opt())
		const n = 100
		r.srv.Gate(n)
		for i := range n {
			c.send(t, uint16(1000+i), quictest.NameA, dns.TypeA)
		}
		seen := map[uint16]bool{}
		for range n {
			m := c.answer(t)
			if m.Id < 1000 || m.Id >= 1000+n || seen[m.Id] {
				t.Fatalf("answer with ID %d", m.Id)
			}
			seen[m.Id] = true
		}
		if got := r.srv.Conns(); got != 1 {
			t.Errorf("server accepted %d connections, want 1", got)
		}
		if got := r.srv.Streams(); got != n {
			t.Errorf("server read %d queries, want %d", got, n)
		}
	})
}

// TestQUICStall: the server completes the handshake and never answers.
func TestQUICStall(t *testing.T) {
	forQUIC(t, func(t *testing.T, p Proto) {
		r := newQUICRig(t, p, quictest.Config{})
		opt := r.opt()
		opt.Timeout = 300 * time.Millisecond
		c := dialQUICTest(t, r.spec(p), opt)
		c.exchange(t, 1, quictest.NameA, dns.TypeA)
		r.srv.SetMode(quictest.Stall)
		start := time.Now()
		c.send(t, 7, quictest.NameA, dns.TypeA)
		f := c.failure(t, 5*time.Second)
		if el := f.at.Sub(start); el < opt.Timeout || el > opt.Timeout+time.Second {
			t.Errorf("failed after %v, want %v (+1s)", el, opt.Timeout)
		}
		if f.id != 7 || !errors.Is(f.err, ErrTimeout) {
			t.Errorf("failure %d: %v; want query 7, ErrTimeout", f.id, f.err)
		}
		c.quiet(t, 300*time.Millisecond) // one callback per query
		// Nothing answered during the query: the connection is presumed
		// dead and dropped, and the next query dials a new one.
		eventually(t, "the silent connection closed", func() bool { return r.srv.ClosedConns() == 1 })
		r.srv.SetMode(quictest.Answer)
		c.exchange(t, 8, quictest.NameA, dns.TypeA)
		if got := r.srv.Conns(); got != 2 {
			t.Errorf("server accepted %d connections, want 2", got)
		}
	})
}

// TestQUICHandshakeStall: the server's address swallows every packet.
func TestQUICHandshakeStall(t *testing.T) {
	forQUIC(t, func(t *testing.T, p Proto) {
		hole, err := quictest.Blackhole("")
		if err != nil {
			t.Fatal(err)
		}
		defer hole.Close()
		ap := netip.MustParseAddrPort(hole.LocalAddr().String())
		opt := DialOptions{Timeout: 300 * time.Millisecond, IdleTimeout: time.Minute}
		c := dialQUICTest(t, quicSpec(p, ap), opt)
		start := time.Now()
		c.send(t, 9, quictest.NameA, dns.TypeA)
		c.send(t, 10, quictest.NameA, dns.TypeA)
		for range 2 {
			f := c.failure(t, 5*time.Second)
			if el := f.at.Sub(start); el > opt.Timeout+time.Second {
				t.Errorf("query %d failed after %v, want %v (+1s)", f.id, el, opt.Timeout)
			}
			if !errors.Is(f.err, ErrTimeout) || !strings.Contains(f.err.Error(), "handshake") {
				t.Errorf("query %d: %v; want ErrTimeout, naming the handshake", f.id, f.err)
			}
		}
		c.quiet(t, 300*time.Millisecond)
	})
}

// TestQUICReset: the server resets a stream halfway through its answer.
// The query fails at once; the connection serves the next one.
func TestQUICReset(t *testing.T) {
	forQUIC(t, func(t *testing.T, p Proto) {
		r := newQUICRig(t, p, quictest.Config{})
		c := dialQUICTest(t, r.spec(p), r.opt())
		r.srv.SetMode(quictest.Reset)
		start := time.Now()
		c.send(t, 11, quictest.NameBig, dns.TypeTXT)
		f := c.failure(t, 5*time.Second)
		if f.id != 11 || errors.Is(f.err, ErrTimeout) || f.at.Sub(start) > time.Second {
			t.Errorf("failure of %d after %v: %v; want query 11 failed at once, not a timeout", f.id, f.at.Sub(start), f.err)
		}
		c.quiet(t, 200*time.Millisecond)
		r.srv.SetMode(quictest.Answer)
		c.exchange(t, 12, quictest.NameA, dns.TypeA)
		if got := r.srv.Conns(); got != 1 {
			t.Errorf("server accepted %d connections, want 1 (a stream reset is not a connection's end)", got)
		}
	})
}

// TestQUICIdle: the connection closes after IdleTimeout without queries,
// and the next query dials a new one.
func TestQUICIdle(t *testing.T) {
	forQUIC(t, func(t *testing.T, p Proto) {
		r := newQUICRig(t, p, quictest.Config{})
		opt := r.opt()
		opt.IdleTimeout = 300 * time.Millisecond
		c := dialQUICTest(t, r.spec(p), opt)
		c.exchange(t, 1, quictest.NameA, dns.TypeA)
		c.exchange(t, 2, quictest.NameA, dns.TypeA)
		if got := r.srv.Conns(); got != 1 {
			t.Fatalf("server accepted %d connections, want 1", got)
		}
		// The client closes silently (RFC 9000 §10.1); the server would
		// notice after its own timeout, at least 5s in quic-go.
		x := c.Exchanger.(*quicExchanger)
		start := time.Now()
		eventually(t, "the idle connection closed", func() bool { return x.liveConns() == 0 })
		if el := time.Since(start); el < 200*time.Millisecond {
			t.Errorf("the connection closed %v after the last answer, before its idle timeout", el)
		}
		c.exchange(t, 3, quictest.NameA, dns.TypeA)
		if got := r.srv.Conns(); got != 2 {
			t.Errorf("server accepted %d connections, want 2", got)
		}
	})
}

// TestQUICServerCloses: a server that closes its connections cleanly
// (restart, maximum age) with queries in flight: they go again on a new
// connection, and none fails.
func TestQUICServerCloses(t *testing.T) {
	forQUIC(t, func(t *testing.T, p Proto) {
		r := newQUICRig(t, p, quictest.Config{})
		c := dialQUICTest(t, r.spec(p), r.opt())
		c.exchange(t, 1, quictest.NameA, dns.TypeA)
		r.srv.SetMode(quictest.Stall)
		c.send(t, 2, quictest.NameA, dns.TypeA)
		eventually(t, "the server holds the query", func() bool { return r.srv.Streams() == 2 })
		r.srv.SetMode(quictest.Answer)
		code := uint64(doqNoError)
		if p == ProtoH3 {
			code = 0x100 // H3_NO_ERROR, RFC 9114 §8.1
		}
		r.srv.CloseConns(code)
		if m := c.answer(t); m.Id != 2 {
			t.Errorf("answer ID %d, want 2", m.Id)
		}
		if got := r.srv.Conns(); got != 2 {
			t.Errorf("server accepted %d connections, want 2", got)
		}
	})
}

// TestQUICWrongCert: certificates from an unknown CA, or for another
// name, are refused; the failure and the log say for which name, why and
// what to do, the log once for several queries.
func TestQUICWrongCert(t *testing.T) {
	forQUIC(t, func(t *testing.T, p Proto) {
		other, err := quictest.NewCA("another CA")
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name, why, fix string
			cert           func(r *quictest.CA) (tls.Certificate, error)
		}{
			{"unknown CA", "unknown authority", "SSL_CERT_FILE", func(*quictest.CA) (tls.Certificate, error) { return other.IssueDefault() }},
			{"wrong name", "not dns.test", "write one of these", func(ca *quictest.CA) (tls.Certificate, error) { return ca.Issue("other.test") }},
		} {
			t.Run(tc.name, func(t *testing.T) {
				ca, err := quictest.NewCA("dnstun test CA")
				if err != nil {
					t.Fatal(err)
				}
				cert, err := tc.cert(ca)
				if err != nil {
					t.Fatal(err)
				}
				r := newQUICRig(t, p, quictest.Config{Cert: cert})
				opt := r.opt()
				opt.RootCAs = ca.Pool
				c := dialQUICTest(t, r.spec(p), opt)
				for i := range 3 {
					c.send(t, uint16(20+i), quictest.NameA, dns.TypeA)
					f := c.failure(t, 5*time.Second)
					var cerr *certRefusedError
					if !errors.As(f.err, &cerr) {
						t.Fatalf("failure is %T %v, want a *certRefusedError", f.err, f.err)
					}
					for _, want := range []string{"certificate", "refused", `server name "dns.test"`, tc.why, tc.fix} {
						if !strings.Contains(f.err.Error(), want) {
							t.Errorf("error %q does not say %q", f.err, want)
						}
					}
				}
				logs := c.logs.String()
				if n := strings.Count(logs, "certificate refused"); n != 1 {
					t.Errorf("%d log lines on the refused certificate, want 1 (rate-limited):\n%s", n, logs)
				}
				for _, want := range []string{"level=ERROR", `dns.test`, tc.why, tc.fix} {
					if !strings.Contains(logs, want) {
						t.Errorf("log does not say %q:\n%s", want, logs)
					}
				}
				if got := r.srv.Streams(); got != 0 {
					t.Errorf("server read %d queries over a refused connection", got)
				}
			})
		}
	})
}

// TestQUICPins: a pinned key accepts the server, another refuses it.
func TestQUICPins(t *testing.T) {
	forQUIC(t, func(t *testing.T, p Proto) {
		r := newQUICRig(t, p, quictest.Config{})
		good := sha256.Sum256(r.cert.Leaf.RawSubjectPublicKeyInfo)
		bad := sha256.Sum256([]byte("another key"))

		spec := r.spec(p)
		spec.Pins = [][32]byte{bad, good}
		dialQUICTest(t, spec, r.opt()).exchange(t, 30, quictest.NameA, dns.TypeA)

		spec.Pins = [][32]byte{bad}
		c := dialQUICTest(t, spec, r.opt())
		c.send(t, 31, quictest.NameA, dns.TypeA)
		f := c.failure(t, 5*time.Second)
		var cerr *certRefusedError
		if !errors.As(f.err, &cerr) || !errors.Is(f.err, errPinMismatch) {
			t.Fatalf("failure %v; want a certificate refused for its pin", f.err)
		}
		if !strings.Contains(f.err.Error(), PinString(good)) {
			t.Errorf("error %q does not give the server's pin %s", f.err, PinString(good))
		}
	})
}

// TestQUICAddressName: a URL with an address verifies the certificate's
// IP SAN, on IPv4 and IPv6 loopback.
func TestQUICAddressName(t *testing.T) {
	forQUIC(t, func(t *testing.T, p Proto) {
		for _, addr := range []string{"127.0.0.1:0", "[::1]:0"} {
			pc, err := net.ListenPacket("udp", addr)
			if err != nil {
				t.Logf("skip %s: %v", addr, err)
				continue
			}
			r := newQUICRig(t, p, quictest.Config{PacketConn: pc})
			ap := r.srv.Addr()
			spec := quicSpec(p, ap)
			spec.Host = ap.Addr().String()
			dialQUICTest(t, spec, r.opt()).exchange(t, 40, quictest.NameA, dns.TypeA)
		}
	})
}

// TestQUICClose: Close ends queries in flight without callbacks; Send then
// fails without blocking.
func TestQUICClose(t *testing.T) {
	forQUIC(t, func(t *testing.T, p Proto) {
		r := newQUICRig(t, p, quictest.Config{})
		before := runtime.NumGoroutine()
		c := dialQUICTest(t, r.spec(p), r.opt())
		c.exchange(t, 1, quictest.NameA, dns.TypeA)
		r.srv.SetMode(quictest.Stall)
		for i := range 10 {
			c.send(t, uint16(50+i), quictest.NameA, dns.TypeA)
		}
		eventually(t, "the server holds the queries", func() bool { return r.srv.Streams() == 11 })
		start := time.Now()
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if el := time.Since(start); el > time.Second {
			t.Errorf("Close took %v", el)
		}
		c.quiet(t, 200*time.Millisecond)
		if err := c.Send(make([]byte, 12)); !errors.Is(err, net.ErrClosed) {
			t.Errorf("Send after Close: %v, want net.ErrClosed", err)
		}
		if err := c.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		// The client's goroutines are gone (the server's may take a
		// moment to notice the connection closed).
		eventually(t, "the goroutines ended", func() bool { return runtime.NumGoroutine() <= before })
	})
}

// TestQUICBusy: past quicMaxInFlight queries waiting, Send refuses at once.
func TestQUICBusy(t *testing.T) {
	hole, err := quictest.Blackhole("")
	if err != nil {
		t.Fatal(err)
	}
	defer hole.Close()
	ap := netip.MustParseAddrPort(hole.LocalAddr().String())
	c := dialQUICTest(t, quicSpec(ProtoQUIC, ap), DialOptions{Timeout: 10 * time.Second, IdleTimeout: time.Minute})
	q := make([]byte, 12)
	for i := range quicMaxInFlight {
		if err := c.Send(q); err != nil {
			t.Fatalf("query %d: %v", i, err)
		}
	}
	start := time.Now()
	if err := c.Send(q); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("Send past the limit: %v, want refused", err)
	}
	if el := time.Since(start); el > 100*time.Millisecond {
		t.Errorf("Send past the limit took %v", el)
	}
	if err := c.Send(q[:11]); err == nil {
		t.Error("Send of 11 bytes: no error")
	}
}

// TestQUICBootstrap: a host name goes through the bootstrap resolver.
func TestQUICBootstrap(t *testing.T) {
	forQUIC(t, func(t *testing.T, p Proto) {
		r := newQUICRig(t, p, quictest.Config{})
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		boot := dnstest.Serve(pc, quictest.Zone())
		t.Cleanup(boot.Close)
		spec := r.spec(p)
		spec.Addr = netip.Addr{}
		opt := r.opt()
		opt.Bootstrap = []netip.AddrPort{netip.MustParseAddrPort(pc.LocalAddr().String())}
		c := dialQUICTest(t, spec, opt)
		c.exchange(t, 60, quictest.NameA, dns.TypeA)
		if boot.QueriesFor(quictest.ServerName) == 0 {
			t.Error("the bootstrap resolver was not asked for dns.test")
		}
	})
}

func benchmarkQUIC(b *testing.B, p Proto, concurrent int) {
	r := newQUICRig(b, p, quictest.Config{MaxStreams: 1000})
	opt := r.opt()
	done := make(chan struct{}, concurrent)
	ex, err := NewExchanger(r.spec(p), opt, func([]byte) { done <- struct{}{} },
		func(id uint16, err error) { b.Errorf("query %d: %v", id, err); done <- struct{}{} })
	if err != nil {
		b.Fatal(err)
	}
	defer ex.Close()
	m := new(dns.Msg)
	m.SetQuestion(quictest.NameA, dns.TypeA)
	q, err := m.Pack()
	if err != nil {
		b.Fatal(err)
	}
	// Dial before the clock starts.
	if err := ex.Send(q); err != nil {
		b.Fatal(err)
	}
	<-done
	b.ReportAllocs()
	b.ResetTimer()
	inFlight := 0
	for i := 0; i < b.N; i++ {
		if inFlight == concurrent {
			<-done
			inFlight--
		}
		if err := ex.Send(q); err != nil {
			b.Fatal(err)
		}
		inFlight++
	}
	for ; inFlight > 0; inFlight-- {
		<-done
	}
}

// Allocations are the client's and the in-process server's together.
func BenchmarkDoQ(b *testing.B) {
	b.Run("1", func(b *testing.B) { benchmarkQUIC(b, ProtoQUIC, 1) })
	b.Run("64", func(b *testing.B) { benchmarkQUIC(b, ProtoQUIC, 64) })
}

func BenchmarkDoH3(b *testing.B) {
	b.Run("1", func(b *testing.B) { benchmarkQUIC(b, ProtoH3, 1) })
	b.Run("64", func(b *testing.B) { benchmarkQUIC(b, ProtoH3, 64) })
}

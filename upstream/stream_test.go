// SPDX-License-Identifier: MIT

package upstream

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dnstun/dnstun/internal/tlstest"
	"github.com/miekg/dns"
)

// The zone every unbound of these tests serves.
var stZones = []string{"test. static"}

func stData() []string {
	d := []string{
		"a.test. 300 IN A 192.0.2.1",
		"a.test. 300 IN AAAA 2001:db8::1",
		`txt.test. 300 IN TXT "hello" "world"`,
		// The server's name, for the bootstrap resolver (unbound's plain
		// DNS port).
		"dns.test. 300 IN A 127.0.0.1",
		"wrong.test. 300 IN A 127.0.0.1",
	}
	// big.test: 24 TXT records of 243 bytes, about 6.5 KB: more than one
	// TLS record and far more than a UDP answer.
	for i := range 24 {
		d = append(d, fmt.Sprintf(`big.test. 300 IN TXT "%02d%s"`, i, strings.Repeat("x", 240)))
	}
	return d
}

func stUnbound(t testing.TB) *tlstest.Loopback {
	t.Helper()
	return tlstest.StartLoopback(t, "dns.test", stZones, stData())
}

// stSpecs returns the upstreams unbound serves: TCP, DoT and DoH, the
// encrypted ones by name through the bootstrap resolver.
func stSpecs(t testing.TB, u *tlstest.Loopback) map[string]Spec {
	t.Helper()
	out := map[string]Spec{}
	for name, s := range map[string]string{
		"tcp":   "tcp://" + u.DNS.String(),
		"tls":   fmt.Sprintf("tls://dns.test:%d", u.TLS.Port()),
		"https": fmt.Sprintf("https://dns.test:%d/dns-query", u.HTTPS.Port()),
	} {
		spec, err := ParseSpec(s)
		if err != nil {
			t.Fatal(err)
		}
		out[name] = spec
	}
	return out
}

func stOptions(u *tlstest.Loopback) DialOptions {
	return DialOptions{
		Bootstrap:   []netip.AddrPort{u.DNS},
		Timeout:     2 * time.Second,
		IdleTimeout: 30 * time.Second,
		RootCAs:     u.CA.Pool,
		Logger:      stDiscard,
	}
}

// stMargin is how late past its deadline a failure may come in the tests:
// timers and goroutines under the race detector on a loaded machine.
const stMargin = 500 * time.Millisecond

// stDiscard keeps the transports' failure logs out of the test output.
var stDiscard = slog.New(slog.DiscardHandler)

// stResult is one callback.
type stResult struct {
	id     uint16
	msg    *dns.Msg // an answer
	err    error    // a failure
	failed bool
	at     time.Time
}

// stCollector records the callbacks of one Exchanger.
type stCollector struct{ ch chan stResult }

func newSTCollector() *stCollector { return &stCollector{ch: make(chan stResult, 4096)} }

func (c *stCollector) answer(b []byte) {
	m := new(dns.Msg)
	err := m.Unpack(b)
	c.ch <- stResult{id: binary.BigEndian.Uint16(b), msg: m, err: err, at: time.Now()}
}

func (c *stCollector) fail(id uint16, err error) {
	c.ch <- stResult{id: id, err: err, failed: true, at: time.Now()}
}

// wait returns the results for n queries, within limit, and fails t on a
// second callback for an ID.
func (c *stCollector) wait(t testing.TB, n int, limit time.Duration) map[uint16]stResult {
	t.Helper()
	got := map[uint16]stResult{}
	timer := time.NewTimer(limit)
	defer timer.Stop()
	for len(got) < n {
		select {
		case r := <-c.ch:
			if prev, dup := got[r.id]; dup {
				t.Fatalf("two callbacks for ID %d: %+v and %+v", r.id, prev, r)
			}
			got[r.id] = r
		case <-timer.C:
			t.Fatalf("%d of %d callbacks within %v", len(got), n, limit)
		}
	}
	return got
}

// quiet fails t if a callback comes within d.
func (c *stCollector) quiet(t testing.TB, d time.Duration) {
	t.Helper()
	select {
	case r := <-c.ch:
		t.Fatalf("unexpected callback: %+v", r)
	case <-time.After(d):
	}
}

func stQuery(t testing.TB, id uint16, name string, qtype uint16) []byte {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.Id = id
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func stExchanger(t testing.TB, spec Spec, opt DialOptions) (Exchanger, *stCollector) {
	t.Helper()
	c := newSTCollector()
	x, err := NewExchanger(spec, opt, c.answer, c.fail)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Close() })
	return x, c
}

// TestTransportsAnswer asks unbound over TCP, DoT and DoH for A, AAAA, TXT
// and a 6.5 KB answer, and checks each answer with miekg/dns.
func TestTransportsAnswer(t *testing.T) {
	u := stUnbound(t)
	for name, spec := range stSpecs(t, u) {
		t.Run(name, func(t *testing.T) {
			x, c := stExchanger(t, spec, stOptions(u))
			if x.String() != spec.String() {
				t.Errorf("String() = %q, want %q", x, spec)
			}
			asks := []struct {
				id    uint16
				name  string
				qtype uint16
				check func(*dns.Msg) error
			}{
				{0x1001, "a.test.", dns.TypeA, stWantRR(1, func(rr dns.RR) bool { a, ok := rr.(*dns.A); return ok && a.A.String() == "192.0.2.1" })},
				{0x1002, "a.test.", dns.TypeAAAA, stWantRR(1, func(rr dns.RR) bool { a, ok := rr.(*dns.AAAA); return ok && a.AAAA.String() == "2001:db8::1" })},
				{0x1003, "txt.test.", dns.TypeTXT, stWantRR(1, func(rr dns.RR) bool {
					x, ok := rr.(*dns.TXT)
					return ok && strings.Join(x.Txt, "|") == "hello|world"
				})},
				{0x1004, "big.test.", dns.TypeTXT, stWantRR(24, func(rr dns.RR) bool { x, ok := rr.(*dns.TXT); return ok && len(x.Txt) == 1 && len(x.Txt[0]) == 242 })},
			}
			for _, a := range asks {
				if err := x.Send(stQuery(t, a.id, a.name, a.qtype)); err != nil {
					t.Fatal(err)
				}
			}
			got := c.wait(t, len(asks), 5*time.Second)
			for _, a := range asks {
				r := got[a.id]
				if r.failed || r.err != nil {
					t.Errorf("%s %s: %v", a.name, dns.TypeToString[a.qtype], r.err)
					continue
				}
				if r.msg.Id != a.id || !r.msg.Response || len(r.msg.Question) != 1 || r.msg.Question[0].Name != a.name || r.msg.Question[0].Qtype != a.qtype {
					t.Errorf("%s %s: answer to another question:\n%v", a.name, dns.TypeToString[a.qtype], r.msg)
					continue
				}
				if err := a.check(r.msg); err != nil {
					t.Errorf("%s %s: %v\n%v", a.name, dns.TypeToString[a.qtype], err, r.msg)
				}
			}
			if m := got[0x1004].msg; m != nil && m.Len() < 4096 {
				t.Errorf("the large answer is %d bytes, want more than 4096", m.Len())
			}
		})
	}
}

func stWantRR(n int, ok func(dns.RR) bool) func(*dns.Msg) error {
	return func(m *dns.Msg) error {
		if m.Rcode != dns.RcodeSuccess || len(m.Answer) != n {
			return fmt.Errorf("rcode %s, %d records; want NOERROR, %d", dns.RcodeToString[m.Rcode], len(m.Answer), n)
		}
		for _, rr := range m.Answer {
			if !ok(rr) {
				return fmt.Errorf("unexpected record %v", rr)
			}
		}
		return nil
	}
}

// stProxy forwards TCP connections to target and counts them: how many
// were accepted, and how many the client closed.
type stProxy struct {
	ln       net.Listener
	accepted atomic.Int32
	closed   chan struct{} // one value per connection the client closed
}

func startSTProxy(t testing.TB, target netip.AddrPort) *stProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &stProxy{ln: ln, closed: make(chan struct{}, 1024)}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.accepted.Add(1)
			s, err := net.DialTimeout("tcp", target.String(), 2*time.Second)
			if err != nil {
				c.Close()
				continue
			}
			go func() {
				io.Copy(c, s)
				c.Close()
			}()
			go func() {
				io.Copy(s, c)
				p.closed <- struct{}{}
				s.Close()
			}()
		}
	}()
	return p
}

func (p *stProxy) port() uint16 { return netip.MustParseAddrPort(p.ln.Addr().String()).Port() }

// via returns spec with its port replaced by the proxy's.
func (p *stProxy) via(spec Spec) Spec {
	spec.Port = p.port()
	return spec
}

// TestPipelining sends 100 queries at once to a cold transport and wants
// all answered over one connection (RFC 7766 §6.2.1.1 pipelining; HTTP/2 streams for DoH).
func TestPipelining(t *testing.T) {
	u := stUnbound(t)
	for name, spec := range stSpecs(t, u) {
		t.Run(name, func(t *testing.T) {
			target := u.DNS
			switch spec.Proto {
			case ProtoTLS:
				target = u.TLS
			case ProtoHTTPS:
				target = u.HTTPS
			}
			p := startSTProxy(t, target)
			x, c := stExchanger(t, p.via(spec), stOptions(u))
			// The burst comes before any connection: the first dial serves
			// every query (for DoH, see doh.gate).
			const n = 100
			for i := range n {
				name := []string{"a.test.", "txt.test.", "big.test."}[i%3]
				if err := x.Send(stQuery(t, uint16(1000+i), name, dns.TypeTXT)); err != nil {
					t.Fatal(err)
				}
			}
			for id, r := range c.wait(t, n, 10*time.Second) {
				if r.failed || r.err != nil || r.msg.Id != id {
					t.Errorf("query %d: %+v", id, r)
				}
			}
			if got := p.accepted.Load(); got != 1 {
				t.Errorf("%d connections, want 1", got)
			}
		})
	}
}

// TestIdleRedial closes a connection nothing was sent on for IdleTimeout,
// and dials again for the next query.
func TestIdleRedial(t *testing.T) {
	u := stUnbound(t)
	for name, spec := range stSpecs(t, u) {
		t.Run(name, func(t *testing.T) {
			target := map[Proto]netip.AddrPort{ProtoTCP: u.DNS, ProtoTLS: u.TLS, ProtoHTTPS: u.HTTPS}[spec.Proto]
			p := startSTProxy(t, target)
			opt := stOptions(u)
			opt.IdleTimeout = 200 * time.Millisecond
			x, c := stExchanger(t, p.via(spec), opt)
			for round := range 2 {
				start := time.Now()
				if err := x.Send(stQuery(t, uint16(round+1), "a.test.", dns.TypeA)); err != nil {
					t.Fatal(err)
				}
				if r := c.wait(t, 1, 5*time.Second)[uint16(round+1)]; r.failed {
					t.Fatalf("round %d: %v", round, r.err)
				}
				select {
				case <-p.closed:
					if d := time.Since(start); d < opt.IdleTimeout {
						t.Errorf("round %d: closed after %v, before the idle timeout %v", round, d, opt.IdleTimeout)
					}
				case <-time.After(3 * time.Second):
					t.Fatalf("round %d: the idle connection is still open after 3s", round)
				}
			}
			if got := p.accepted.Load(); got != 2 {
				t.Errorf("%d connections, want 2 (one per round)", got)
			}
		})
	}
}

// TestBootstrap resolves the server's name through the bootstrap resolver
// and refuses a name without one.
func TestBootstrap(t *testing.T) {
	u := stUnbound(t)
	spec := stSpecs(t, u)["tls"]
	if spec.Addr.IsValid() {
		t.Fatalf("%v: want a name", spec)
	}
	x, c := stExchanger(t, spec, stOptions(u))
	x.Send(stQuery(t, 7, "a.test.", dns.TypeA))
	if r := c.wait(t, 1, 5*time.Second)[7]; r.failed {
		t.Fatalf("through bootstrap %v: %v", u.DNS, r.err)
	}
	opt := stOptions(u)
	opt.Bootstrap = nil
	if _, err := NewExchanger(spec, opt, func([]byte) {}, func(uint16, error) {}); err == nil || !strings.Contains(err.Error(), "bootstrap") {
		t.Errorf("a name without bootstrap resolvers: %v, want an error naming --bootstrap", err)
	}
	// A bootstrap resolver that fails (SERVFAIL) is passed over for the
	// next.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetRcode(r, dns.RcodeServerFailure)
		w.WriteMsg(m)
	})}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	opt = stOptions(u)
	opt.Bootstrap = []netip.AddrPort{netip.MustParseAddrPort(pc.LocalAddr().String()), u.DNS}
	x, c = stExchanger(t, spec, opt)
	x.Send(stQuery(t, 9, "a.test.", dns.TypeA))
	if r := c.wait(t, 1, 5*time.Second)[9]; r.failed {
		t.Fatalf("bootstrap %v after one that fails: %v", opt.Bootstrap, r.err)
	}

	// A name the bootstrap resolver does not know: each query fails, and
	// says why.
	spec.Host = "nowhere.test"
	x, c = stExchanger(t, spec, stOptions(u))
	x.Send(stQuery(t, 8, "a.test.", dns.TypeA))
	if r := c.wait(t, 1, 5*time.Second)[8]; !r.failed || !strings.Contains(r.err.Error(), `resolve "nowhere.test"`) {
		t.Errorf("unknown server name: %+v", r)
	}
}

func (l *syncBuffer) logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

// TestCertificateRefused presents a certificate for another name, and one
// from another CA, to DoT and DoH: every query fails with an error saying
// the certificate was refused, for which name, why and what to do, and
// the log says it once.
func TestCertificateRefused(t *testing.T) {
	u := stUnbound(t)
	other, err := tlstest.NewCA(t.TempDir(), "other-ca")
	if err != nil {
		t.Fatal(err)
	}
	for name, spec := range stSpecs(t, u) {
		if !spec.Proto.Encrypted() {
			continue
		}
		for _, tc := range []struct {
			what  string
			host  string
			roots *tlstest.CA
			want  []string
		}{
			{"name", "wrong.test", u.CA, []string{`refused for server name "wrong.test"`, "x509: certificate is valid for dns.test", "the certificate names dns.test, 127.0.0.1"}},
			{"CA", "dns.test", other, []string{`refused for server name "dns.test"`, "x509: certificate signed by unknown authority", "SSL_CERT_FILE"}},
		} {
			t.Run(name+"/"+tc.what, func(t *testing.T) {
				var log syncBuffer
				opt := stOptions(u)
				opt.RootCAs, opt.Logger = tc.roots.Pool, log.logger()
				spec := spec
				spec.Host = tc.host
				x, c := stExchanger(t, spec, opt)
				for i := range 5 {
					x.Send(stQuery(t, uint16(i+1), "a.test.", dns.TypeA))
					r := c.wait(t, 1, 5*time.Second)[uint16(i+1)]
					if !r.failed {
						t.Fatalf("answered: %v", r.msg)
					}
					var cerr *certRefusedError
					if !errors.As(r.err, &cerr) {
						t.Fatalf("error %v is not a certificate refusal", r.err)
					}
					for _, w := range tc.want {
						if !strings.Contains(r.err.Error(), w) {
							t.Errorf("error %q does not say %q", r.err, w)
						}
					}
				}
				if n := strings.Count(log.String(), "upstream certificate refused"); n != 1 {
					t.Errorf("%d log lines for 5 refusals, want 1:\n%s", n, log.String())
				}
				// The text handler quotes the error: look for its words.
				if l := log.String(); !strings.Contains(l, "level=ERROR") || !strings.Contains(l, "refused for server name") || !strings.Contains(l, tc.host) || !strings.Contains(l, tc.want[2]) {
					t.Errorf("log does not explain the refusal:\n%s", log.String())
				}
			})
		}
	}
}

// TestPins accepts a server whose key is pinned and refuses one whose key
// is not, saying which key it has.
func TestPins(t *testing.T) {
	u := stUnbound(t)
	for name, spec := range stSpecs(t, u) {
		if !spec.Proto.Encrypted() {
			continue
		}
		t.Run(name, func(t *testing.T) {
			spec := spec
			spec.Pins = [][32]byte{stPinA, u.Leaf.Pin}
			x, c := stExchanger(t, spec, stOptions(u))
			x.Send(stQuery(t, 1, "a.test.", dns.TypeA))
			if r := c.wait(t, 1, 5*time.Second)[1]; r.failed {
				t.Fatalf("pinned key refused: %v", r.err)
			}
			// The CA's key is in the verified chain too: a pin on it holds.
			caPin := sha256.Sum256(u.CA.Cert.RawSubjectPublicKeyInfo)
			spec.Pins = [][32]byte{caPin}
			x, c = stExchanger(t, spec, stOptions(u))
			x.Send(stQuery(t, 2, "a.test.", dns.TypeA))
			if r := c.wait(t, 1, 5*time.Second)[2]; r.failed {
				t.Fatalf("pinned CA key refused: %v", r.err)
			}
			spec.Pins = [][32]byte{stPinA, stPinB}
			x, c = stExchanger(t, spec, stOptions(u))
			x.Send(stQuery(t, 3, "a.test.", dns.TypeA))
			r := c.wait(t, 1, 5*time.Second)[3]
			if !r.failed || !errors.Is(r.err, errPinMismatch) {
				t.Fatalf("unpinned key: %+v, want a pin mismatch", r)
			}
			for _, w := range []string{"certificate of the server at 127.0.0.1:", "refused", "pin-sha256=" + u.Leaf.PinBase64, "put its new pin in the URL"} {
				if !strings.Contains(r.err.Error(), w) {
					t.Errorf("error %q does not say %q", r.err, w)
				}
			}
		})
	}
}

// TestSSLCertFile checks that with RootCAs nil the system's roots are used,
// and that they come from SSL_CERT_FILE. Go loads the system pool once per
// process, so each case runs in a child process (TestSSLCertFileChild).
func TestSSLCertFile(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("Go reads SSL_CERT_FILE on Linux; macOS verifies through its keychain")
	}
	u := stUnbound(t)
	other, err := tlstest.NewCA(t.TempDir(), "other-ca")
	if err != nil {
		t.Fatal(err)
	}
	emptyDir := t.TempDir()
	for _, tc := range []struct {
		name, certFile, want string
	}{
		{"trusted", u.CA.File, "answer"},
		{"untrusted", other.File, "refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestSSLCertFileChild$", "-test.v", "-test.count=1")
			cmd.Env = append(os.Environ(),
				"SSL_CERT_FILE="+tc.certFile,
				"SSL_CERT_DIR="+emptyDir,
				"DNSTUN_TEST_CHILD_SPEC="+fmt.Sprintf("tls://127.0.0.1:%d", u.TLS.Port()),
				"DNSTUN_TEST_CHILD_WANT="+tc.want,
			)
			out, err := cmd.CombinedOutput()
			if err != nil || !strings.Contains(string(out), "--- PASS: TestSSLCertFileChild") {
				t.Fatalf("child: %v\n%s", err, out)
			}
		})
	}
}

// TestSSLCertFileChild is TestSSLCertFile's child; it runs only there.
func TestSSLCertFileChild(t *testing.T) {
	specText, want := os.Getenv("DNSTUN_TEST_CHILD_SPEC"), os.Getenv("DNSTUN_TEST_CHILD_WANT")
	if specText == "" {
		t.Skip("runs as TestSSLCertFile's child process")
	}
	spec, err := ParseSpec(specText)
	if err != nil {
		t.Fatal(err)
	}
	x, c := stExchanger(t, spec, DialOptions{Timeout: 2 * time.Second, Logger: stDiscard})
	x.Send(stQuery(t, 1, "a.test.", dns.TypeA))
	r := c.wait(t, 1, 5*time.Second)[1]
	switch want {
	case "answer":
		if r.failed {
			t.Fatalf("SSL_CERT_FILE=%s: %v", os.Getenv("SSL_CERT_FILE"), r.err)
		}
	case "refused":
		var cerr *certRefusedError
		if !r.failed || !errors.As(r.err, &cerr) {
			t.Fatalf("SSL_CERT_FILE=%s: %+v, want a refusal", os.Getenv("SSL_CERT_FILE"), r)
		}
	default:
		t.Fatalf("DNSTUN_TEST_CHILD_WANT=%q", want)
	}
}

// stListen starts a TCP listener on loopback whose connections serve runs.
func stListen(t testing.TB, serve func(n int, c net.Conn)) (netip.AddrPort, *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var conns []net.Conn
	var mu sync.Mutex
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	accepted := new(atomic.Int32)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n := int(accepted.Add(1))
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				serve(n, c)
			}()
		}
	}()
	return netip.MustParseAddrPort(ln.Addr().String()), accepted
}

func stSpec(t testing.TB, s string) Spec {
	t.Helper()
	spec, err := ParseSpec(s)
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

// TestHandshakeStall: a server that accepts the connection and never
// completes the handshake; every query fails within Timeout.
func TestHandshakeStall(t *testing.T) {
	addr, _ := stListen(t, func(_ int, c net.Conn) {
		io.Copy(io.Discard, c) // read the ClientHello, answer nothing
	})
	const timeout = 300 * time.Millisecond
	for _, s := range []string{"tls://" + addr.String(), "https://" + addr.String()} {
		t.Run(strings.Split(s, ":")[0], func(t *testing.T) {
			x, c := stExchanger(t, stSpec(t, s), DialOptions{Timeout: timeout, Logger: stDiscard})
			start := time.Now()
			for i := range 3 {
				if err := x.Send(stQuery(t, uint16(i+1), "a.test.", dns.TypeA)); err != nil {
					t.Fatal(err)
				}
			}
			for id, r := range c.wait(t, 3, timeout+time.Second) {
				if !r.failed || !errors.Is(r.err, ErrTimeout) {
					t.Errorf("query %d: %v, want a timeout", id, r.err)
				}
				if d := r.at.Sub(start); d > timeout+stMargin {
					t.Errorf("query %d failed after %v, want within %v", id, d, timeout)
				}
			}
		})
	}
}

// stReadQuery reads one framed query from c.
func stReadQuery(c net.Conn) (*dns.Msg, error) {
	var l [2]byte
	if _, err := io.ReadFull(c, l[:]); err != nil {
		return nil, err
	}
	b := make([]byte, binary.BigEndian.Uint16(l[:]))
	if _, err := io.ReadFull(c, b); err != nil {
		return nil, err
	}
	m := new(dns.Msg)
	return m, m.Unpack(b)
}

func stWriteAnswer(c net.Conn, q *dns.Msg) error {
	m := new(dns.Msg)
	m.SetReply(q)
	m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.IPv4(192, 0, 2, 9)})
	b, err := m.Pack()
	if err != nil {
		return err
	}
	_, err = c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(b))), b...))
	return err
}

// TestResetMidStream: a server that reads a query and resets the
// connection (RST); every query in flight fails, once.
func TestResetMidStream(t *testing.T) {
	addr, _ := stListen(t, func(_ int, c net.Conn) {
		stReadQuery(c)
		time.Sleep(50 * time.Millisecond) // let the rest of the burst arrive
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
	})
	x, c := stExchanger(t, stSpec(t, "tcp://"+addr.String()), DialOptions{Timeout: 2 * time.Second, Logger: stDiscard})
	const n = 10
	start := time.Now()
	for i := range n {
		if err := x.Send(stQuery(t, uint16(i+1), "a.test.", dns.TypeA)); err != nil {
			t.Fatal(err)
		}
	}
	for id, r := range c.wait(t, n, 3*time.Second) {
		if !r.failed {
			t.Errorf("query %d answered", id)
		} else if errors.Is(r.err, ErrTimeout) {
			t.Errorf("query %d timed out (%v), want the reset reported at once", id, r.err)
		}
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("failures took %v, want them at the reset", d)
	}
	c.quiet(t, 100*time.Millisecond)
}

// TestServerCloseRetries: a server that closes the connection cleanly
// (FIN) after reading a query without answering it, as at its idle
// timeout; the query goes again on a new connection, once.
func TestServerCloseRetries(t *testing.T) {
	addr, accepted := stListen(t, func(n int, c net.Conn) {
		for {
			q, err := stReadQuery(c)
			if err != nil {
				return
			}
			if n == 1 {
				c.Close()
				return
			}
			stWriteAnswer(c, q)
		}
	})
	x, c := stExchanger(t, stSpec(t, "tcp://"+addr.String()), DialOptions{Timeout: 2 * time.Second, Logger: stDiscard})
	x.Send(stQuery(t, 1, "a.test.", dns.TypeA))
	if r := c.wait(t, 1, 3*time.Second)[1]; r.failed {
		t.Fatalf("not retried: %v", r.err)
	}
	if n := accepted.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}

	// A server that always closes: the second close fails the query.
	addr, _ = stListen(t, func(_ int, c net.Conn) {
		stReadQuery(c)
		c.Close()
	})
	x, c = stExchanger(t, stSpec(t, "tcp://"+addr.String()), DialOptions{Timeout: 2 * time.Second, Logger: stDiscard})
	x.Send(stQuery(t, 2, "a.test.", dns.TypeA))
	if r := c.wait(t, 1, 3*time.Second)[2]; !r.failed || !errors.Is(r.err, io.EOF) {
		t.Fatalf("%+v, want a failure at the second EOF", r)
	}
}

// TestStalledConnection: a server that reads and never answers. The query
// fails at Timeout, the connection is taken for dead and closed, and the
// next query dials again.
func TestStalledConnection(t *testing.T) {
	closed := make(chan int, 4)
	addr, accepted := stListen(t, func(n int, c net.Conn) {
		for {
			if _, err := stReadQuery(c); err != nil {
				closed <- n
				return
			}
		}
	})
	const timeout = 300 * time.Millisecond
	x, c := stExchanger(t, stSpec(t, "tcp://"+addr.String()), DialOptions{Timeout: timeout, Logger: stDiscard})
	start := time.Now()
	x.Send(stQuery(t, 1, "a.test.", dns.TypeA))
	r := c.wait(t, 1, timeout+time.Second)[1]
	if !r.failed || !errors.Is(r.err, ErrTimeout) {
		t.Fatalf("%+v, want a timeout", r)
	}
	if d := r.at.Sub(start); d < timeout || d > timeout+stMargin {
		t.Errorf("failed after %v, want at %v", d, timeout)
	}
	select {
	case n := <-closed:
		if n != 1 {
			t.Errorf("connection %d closed, want 1", n)
		}
	case <-time.After(time.Second):
		t.Fatal("the stalled connection is still open")
	}
	x.Send(stQuery(t, 2, "a.test.", dns.TypeA))
	c.wait(t, 1, timeout+time.Second)
	if n := accepted.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

// TestSendRefuses: a second query with an ID in flight, a message that
// is not one, and anything after Close; Close stops the callbacks.
func TestSendRefuses(t *testing.T) {
	addr, _ := stListen(t, func(_ int, c net.Conn) { io.Copy(io.Discard, c) })
	for _, s := range []string{"tcp://" + addr.String(), "https://" + addr.String()} {
		t.Run(strings.Split(s, ":")[0], func(t *testing.T) {
			x, c := stExchanger(t, stSpec(t, s), DialOptions{Timeout: 300 * time.Millisecond, Logger: stDiscard})
			if err := x.Send(stQuery(t, 1, "a.test.", dns.TypeA)); err != nil {
				t.Fatal(err)
			}
			if err := x.Send(make([]byte, 11)); err == nil {
				t.Error("an 11-byte message accepted")
			}
			if s[:3] == "tcp" {
				if err := x.Send(stQuery(t, 1, "b.test.", dns.TypeA)); err == nil || !strings.Contains(err.Error(), "ID 1 is already in flight") {
					t.Errorf("second query with ID 1: %v", err)
				}
			}
			x.Close()
			if err := x.Send(stQuery(t, 2, "a.test.", dns.TypeA)); !errors.Is(err, net.ErrClosed) {
				t.Errorf("Send after Close: %v", err)
			}
			x.Close()
			c.quiet(t, 600*time.Millisecond)
		})
	}
}

// TestQueueFull: Send never blocks; past the bound it fails at once.
func TestQueueFull(t *testing.T) {
	addr, _ := stListen(t, func(_ int, c net.Conn) { io.Copy(io.Discard, c) })
	x, _ := stExchanger(t, stSpec(t, "tcp://"+addr.String()), DialOptions{Timeout: 10 * time.Second, Logger: stDiscard})
	start := time.Now()
	var err error
	for i := 0; i <= streamMaxInFlight && err == nil; i++ {
		err = x.Send(stQuery(t, uint16(i), "a.test.", dns.TypeA))
	}
	if err == nil || !strings.Contains(err.Error(), strconv.Itoa(streamMaxInFlight)) {
		t.Errorf("query %d: %v, want refused as too many", streamMaxInFlight+1, err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("%d Sends took %v", streamMaxInFlight+1, d)
	}
}

// BenchmarkExchange measures one query's round trip to unbound over TCP,
// DoT and DoH: one at a time (serial), and with 64 in flight.
func BenchmarkExchange(b *testing.B) {
	u := stUnbound(b)
	for _, name := range []string{"tcp", "tls", "https"} {
		spec := stSpecs(b, u)[name]
		for _, inflight := range []int{1, 64} {
			b.Run(fmt.Sprintf("%s/inflight=%d", name, inflight), func(b *testing.B) {
				done := make(chan uint16, 4096)
				x, err := NewExchanger(spec, stOptions(u), func(m []byte) { done <- binary.BigEndian.Uint16(m) }, func(id uint16, err error) {
					b.Errorf("query %d: %v", id, err)
					done <- id
				})
				if err != nil {
					b.Fatal(err)
				}
				defer x.Close()
				msgs := make([][]byte, 65536)
				for i := range msgs {
					msgs[i] = stQuery(b, uint16(i), "a.test.", dns.TypeA)
				}
				// Connect before the clock starts.
				x.Send(msgs[0])
				<-done
				b.ReportAllocs()
				b.ResetTimer()
				sent := 0
				send := func() {
					sent++
					if err := x.Send(msgs[sent%len(msgs)]); err != nil {
						b.Fatal(err)
					}
				}
				for sent < inflight && sent < b.N {
					send()
				}
				for got := 0; got < b.N; got++ {
					<-done
					if sent < b.N {
						send()
					}
				}
			})
		}
	}
}

// TestUnreachable: nothing listens; every query queued fails at once,
// saying the connection was refused.
func TestUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	for _, s := range []string{"tcp://" + addr, "tls://" + addr, "https://" + addr} {
		t.Run(strings.Split(s, ":")[0], func(t *testing.T) {
			x, c := stExchanger(t, stSpec(t, s), DialOptions{Timeout: 2 * time.Second, Logger: stDiscard})
			for i := range 5 {
				x.Send(stQuery(t, uint16(i+1), "a.test.", dns.TypeA))
			}
			for id, r := range c.wait(t, 5, time.Second) {
				if !r.failed || !strings.Contains(r.err.Error(), "connection refused") || !strings.Contains(r.err.Error(), s) {
					t.Errorf("query %d: %v, want a refused connection to %s", id, r.err, s)
				}
			}
		})
	}
}

// TestCloseEndsGoroutines: after Close, the transports' goroutines end.
func TestCloseEndsGoroutines(t *testing.T) {
	u := stUnbound(t)
	for name, spec := range stSpecs(t, u) {
		t.Run(name, func(t *testing.T) {
			before := runtime.NumGoroutine()
			c := newSTCollector()
			x, err := NewExchanger(spec, stOptions(u), c.answer, c.fail)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 10 {
				x.Send(stQuery(t, uint16(i+1), "a.test.", dns.TypeA))
			}
			c.wait(t, 10, 5*time.Second)
			x.Close()
			deadline := time.Now().Add(3 * time.Second)
			for runtime.NumGoroutine() > before {
				if time.Now().After(deadline) {
					t.Fatalf("%d goroutines 3s after Close, %d before the transport", runtime.NumGoroutine(), before)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}

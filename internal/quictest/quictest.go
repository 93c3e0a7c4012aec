// SPDX-License-Identifier: MIT

// Package quictest is a DNS-over-QUIC (RFC 9250) and DNS-over-HTTP/3
// (RFC 8484 over HTTP/3) server on quic-go, for tests, and the throwaway
// certificate authority that signs its certificate.
//
// It is ours because no real DoQ or DoH3 server is packaged for the OS the
// tests run on (Debian 12): unbound 1.17 and dnsdist 1.7 serve neither,
// knot-resolver 5.6 serves DoH over HTTP/2 only, and nginx 1.22 has no
// HTTP/3. It answers from a small zone (dnstest.Zone) and can misbehave on
// demand (SetMode): stall after the handshake, reset streams mid-answer,
// answer with a wrong HTTP status or content type. Blackhole is an address
// where a QUIC handshake never completes. It counts connections, streams and
// protocol violations, so tests can prove connection reuse and the wire
// format (DoQ queries carry ID 0 and end with a STREAM FIN).
//
// A server listens on the address or the socket it is given, so end-to-end
// tests can open it inside a network namespace.
package quictest

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"github.com/dnstun/dnstun/internal/dnstest"
	"github.com/dnstun/dnstun/internal/tlstest"
)

// ServerName is the name the server's certificate is issued for (with the
// IP addresses 127.0.0.1 and ::1), and the zone's origin.
const ServerName = "dns.test"

// Names in Zone.
const (
	NameA   = "a.dns.test."   // A 192.0.2.1, AAAA 2001:db8::1
	NameTXT = "txt.dns.test." // one short TXT record
	NameBig = "big.dns.test." // one TXT record of BigTXTLen bytes of text
)

// BigTXTLen is the text length of NameBig's record: more than 4 KB, so the
// answer spans several QUIC packets.
const BigTXTLen = 20 * 250

// Zone returns the test zone: NameA, NameTXT, NameBig and ServerName
// itself (A 127.0.0.1, AAAA ::1, for a bootstrap resolver).
func Zone() dnstest.Zone {
	var big strings.Builder
	for i := range BigTXTLen / 250 {
		fmt.Fprintf(&big, " \"%s\"", strings.Repeat(string(rune('a'+i%26)), 250))
	}
	z, err := dnstest.ParseZone(
		NameA+" 300 IN A 192.0.2.1",
		NameA+" 300 IN AAAA 2001:db8::1",
		NameTXT+` 300 IN TXT "hello over QUIC"`,
		NameBig+" 300 IN TXT"+big.String(),
		ServerName+". 300 IN A 127.0.0.1",
		ServerName+". 300 IN AAAA ::1",
	)
	if err != nil {
		panic(err) // the records above are constants
	}
	return z
}

// CA is a throwaway certificate authority: tlstest's, in memory.
type CA struct{ *tlstest.CA }

// NewCA makes a CA whose certificate is valid for a day.
func NewCA(name string) (*CA, error) {
	ca, err := tlstest.NewCA("", name)
	if err != nil {
		return nil, fmt.Errorf("quictest: %w", err)
	}
	return &CA{ca}, nil
}

// WritePEM writes the CA's certificate to path (for SSL_CERT_FILE).
func (ca *CA) WritePEM(path string) error { return os.WriteFile(path, ca.PEM, 0o644) }

// Issue returns a server certificate signed by ca for names: host names
// or IP addresses in text.
func (ca *CA) Issue(names ...string) (tls.Certificate, error) {
	var hosts []string
	var ips []netip.Addr
	for _, n := range names {
		if a, err := netip.ParseAddr(n); err == nil {
			ips = append(ips, a)
		} else {
			hosts = append(hosts, n)
		}
	}
	l, err := ca.CA.Issue("", names[0], hosts, ips)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("quictest: %w", err)
	}
	return l.TLS, nil
}

// IssueDefault issues the usual server certificate: ServerName, 127.0.0.1
// and ::1.
func (ca *CA) IssueDefault() (tls.Certificate, error) {
	return ca.Issue(ServerName, "127.0.0.1", "::1")
}

// Mode is how the server treats the queries it receives.
type Mode int32

const (
	// Answer answers every query from the zone.
	Answer Mode = iota
	// Stall completes handshakes and reads queries but never answers
	// (until the client gives up on the stream or the connection).
	Stall
	// Reset sends the first half of each answer, then resets the stream
	// (DoQ: RESET_STREAM with DOQ_INTERNAL_ERROR; DoH3: the handler aborts).
	Reset
	// BadStatus answers DoH3 requests with HTTP 500 (DoQ: as Answer).
	BadStatus
	// BadType answers DoH3 requests with the DNS answer labelled
	// text/plain (DoQ: as Answer).
	BadType
)

// Config is what a server serves and where.
type Config struct {
	// PacketConn is the UDP socket to serve on. Nil: listen on Addr.
	PacketConn net.PacketConn
	// Addr is where to listen when PacketConn is nil; empty means
	// 127.0.0.1 on a free port.
	Addr string
	// Cert is the server's certificate (CA.Issue).
	Cert tls.Certificate
	// Zone is what the server answers from; nil means Zone().
	Zone dnstest.Zone
	// MaxStreams is how many streams a client may have open at once; 0
	// keeps quic-go's default (100), as real servers built on it do.
	MaxStreams int64
	// Path is the DoH3 request path; empty means "/dns-query".
	Path string
}

// Server is a DoQ or DoH3 server (ServeDoQ, ServeDoH3).
type Server struct {
	zone dnstest.Zone
	pc   net.PacketConn
	tr   *quic.Transport
	ln   *quic.EarlyListener
	h3   *http3.Server
	path string
	done chan struct{} // closed when the accept loop returns

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc

	mode       atomic.Int32
	conns      atomic.Int64
	closed     atomic.Int64
	streams    atomic.Int64
	nonZeroIDs atomic.Int64
	protoErrs  atomic.Int64

	mu       sync.Mutex
	live     []*quic.Conn
	gate     int           // answers wait until this many are waiting; 0: no gate
	held     int           // answers waiting at the gate
	gateOpen chan struct{} // closed when the gate opens
}

func listen(cfg Config) (net.PacketConn, error) {
	if cfg.PacketConn != nil {
		return cfg.PacketConn, nil
	}
	addr := cfg.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("quictest: listen on %s: %w", addr, err)
	}
	return pc, nil
}

func newServer(cfg Config, alpn string) (*Server, error) {
	if len(cfg.Cert.Certificate) == 0 {
		return nil, errors.New("quictest: Config.Cert is empty: issue one with CA.Issue")
	}
	pc, err := listen(cfg)
	if err != nil {
		return nil, err
	}
	s := &Server{zone: cfg.Zone, pc: pc, path: cfg.Path, done: make(chan struct{})}
	if s.zone == nil {
		s.zone = Zone()
	}
	if s.path == "" {
		s.path = "/dns-query"
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	tlsConf := &tls.Config{Certificates: []tls.Certificate{cfg.Cert}, NextProtos: []string{alpn}, MinVersion: tls.VersionTLS13}
	qconf := &quic.Config{MaxIncomingStreams: cfg.MaxStreams}
	s.tr = &quic.Transport{Conn: pc}
	if s.ln, err = s.tr.ListenEarly(tlsConf, qconf); err != nil {
		s.tr.Close()
		pc.Close()
		return nil, fmt.Errorf("quictest: listen for QUIC on %v: %w", pc.LocalAddr(), err)
	}
	return s, nil
}

// ServeDoQ starts a DNS-over-QUIC server (ALPN "doq").
func ServeDoQ(cfg Config) (*Server, error) {
	s, err := newServer(cfg, "doq")
	if err != nil {
		return nil, err
	}
	go func() {
		defer close(s.done)
		for {
			c, err := s.accept(s.ctx)
			if err != nil {
				return
			}
			go s.serveDoQConn(c)
		}
	}()
	return s, nil
}

// ServeDoH3 starts a DNS-over-HTTPS server over HTTP/3 (ALPN "h3"),
// answering POST requests to Config.Path.
func ServeDoH3(cfg Config) (*Server, error) {
	s, err := newServer(cfg, http3.NextProtoH3)
	if err != nil {
		return nil, err
	}
	s.h3 = &http3.Server{Handler: http.HandlerFunc(s.serveHTTP)}
	go func() {
		defer close(s.done)
		s.h3.ServeListener(countingListener{s})
	}()
	return s, nil
}

// countingListener hands the server's connections to http3, counting them.
type countingListener struct{ s *Server }

func (l countingListener) Accept(ctx context.Context) (*quic.Conn, error) { return l.s.accept(ctx) }
func (l countingListener) Addr() net.Addr                                 { return l.s.ln.Addr() }
func (l countingListener) Close() error                                   { return l.s.ln.Close() }

func (s *Server) accept(ctx context.Context) (*quic.Conn, error) {
	c, err := s.ln.Accept(ctx)
	if err != nil {
		return nil, err
	}
	s.conns.Add(1)
	s.mu.Lock()
	s.live = append(s.live, c)
	s.mu.Unlock()
	go func() {
		<-c.Context().Done()
		s.closed.Add(1)
		s.mu.Lock()
		for i, l := range s.live {
			if l == c {
				s.live = append(s.live[:i], s.live[i+1:]...)
				break
			}
		}
		s.mu.Unlock()
	}()
	return c, nil
}

// DoQ error codes, RFC 9250 §4.3.
const (
	doqInternalError = 0x1
	doqProtocolError = 0x2
)

func (s *Server) serveDoQConn(c *quic.Conn) {
	for {
		str, err := c.AcceptStream(s.ctx)
		if err != nil {
			return
		}
		go s.serveDoQStream(c, str)
	}
}

func (s *Server) serveDoQStream(c *quic.Conn, str *quic.Stream) {
	s.streams.Add(1)
	str.SetReadDeadline(time.Now().Add(5 * time.Second))
	var l [2]byte
	if _, err := io.ReadFull(str, l[:]); err != nil {
		s.protoErr(str)
		return
	}
	q := make([]byte, binary.BigEndian.Uint16(l[:]))
	if _, err := io.ReadFull(str, q); err != nil {
		s.protoErr(str)
		return
	}
	// RFC 9250 §4.2: the client ends its side after one query (STREAM
	// FIN); a second message, or no FIN, is a protocol error.
	if n, err := str.Read(l[:1]); n != 0 || err != io.EOF {
		s.protoErr(str)
		return
	}
	// RFC 9250 §4.2.1: the ID is 0 on DoQ.
	if len(q) >= 2 && binary.BigEndian.Uint16(q) != 0 {
		s.nonZeroIDs.Add(1)
		s.protoErr(str)
		return
	}
	ans, ok := s.reply(q)
	if !ok {
		s.protoErr(str)
		return
	}
	if !s.wait(c.Context(), str.Context()) {
		return
	}
	out := binary.BigEndian.AppendUint16(nil, uint16(len(ans)))
	out = append(out, ans...)
	switch Mode(s.mode.Load()) {
	case Stall:
		select { // until the client cancels or the connection ends
		case <-str.Context().Done():
		case <-c.Context().Done():
		case <-s.ctx.Done():
		}
		str.CancelWrite(doqInternalError)
		return
	case Reset:
		str.Write(out[:len(out)/2])
		str.CancelWrite(doqInternalError)
		return
	}
	str.Write(out)
	str.Close()
}

func (s *Server) protoErr(str *quic.Stream) {
	s.protoErrs.Add(1)
	str.CancelRead(doqProtocolError)
	str.CancelWrite(doqProtocolError)
}

// reply answers the query q from the zone.
func (s *Server) reply(q []byte) ([]byte, bool) {
	var m dns.Msg
	if err := m.Unpack(q); err != nil || len(m.Question) != 1 {
		return nil, false
	}
	r := new(dns.Msg)
	r.SetReply(&m)
	r.Authoritative = true
	qq := m.Question[0]
	rrs, ok := s.zone[strings.ToLower(qq.Name)]
	if !ok {
		r.Rcode = dns.RcodeNameError
	}
	for _, rr := range rrs {
		if rr.Header().Rrtype == qq.Qtype {
			c := dns.Copy(rr)
			c.Header().Name = qq.Name
			r.Answer = append(r.Answer, c)
		}
	}
	if opt := m.IsEdns0(); opt != nil {
		r.SetEdns0(opt.UDPSize(), opt.Do())
	}
	b, err := r.Pack()
	return b, err == nil
}

const dohType = "application/dns-message"

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != s.path {
		http.Error(w, "not a DoH endpoint", http.StatusNotFound)
		return
	}
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != dohType {
		http.Error(w, "want "+dohType, http.StatusUnsupportedMediaType)
		return
	}
	q, err := io.ReadAll(io.LimitReader(r.Body, 65536))
	if err != nil {
		return
	}
	s.streams.Add(1)
	// RFC 8484 §4.1: clients SHOULD send ID 0.
	if len(q) >= 2 && binary.BigEndian.Uint16(q) != 0 {
		s.nonZeroIDs.Add(1)
	}
	ans, ok := s.reply(q)
	if !ok {
		s.protoErrs.Add(1)
		http.Error(w, "not a DNS query", http.StatusBadRequest)
		return
	}
	if !s.wait(r.Context(), s.ctx) {
		return
	}
	w.Header().Set("Content-Type", dohType)
	switch Mode(s.mode.Load()) {
	case Stall:
		select {
		case <-r.Context().Done():
		case <-s.ctx.Done():
		}
		panic(http.ErrAbortHandler) // resets the stream
	case Reset:
		w.Header().Set("Content-Length", fmt.Sprint(len(ans)))
		w.WriteHeader(http.StatusOK)
		w.Write(ans[:len(ans)/2])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	case BadStatus:
		http.Error(w, "server failure", http.StatusInternalServerError)
		return
	case BadType:
		w.Header().Set("Content-Type", "text/plain")
	}
	w.Write(ans)
}

// Gate makes the next n answers wait until n queries are waiting, then
// releases them all at once: proof that n queries were in flight together.
func (s *Server) Gate(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gate, s.held, s.gateOpen = n, 0, make(chan struct{})
}

// wait holds an answer at the gate; false when a or b ended first.
func (s *Server) wait(a, b context.Context) bool {
	s.mu.Lock()
	if s.gate == 0 {
		s.mu.Unlock()
		return true
	}
	open := s.gateOpen
	s.held++
	if s.held == s.gate {
		s.gate = 0
		close(open)
	}
	s.mu.Unlock()
	select {
	case <-open:
		return true
	case <-a.Done():
	case <-b.Done():
	}
	return false
}

// SetMode changes how the server treats queries from now on.
func (s *Server) SetMode(m Mode) { s.mode.Store(int32(m)) }

// Addr returns the address the server listens on.
func (s *Server) Addr() netip.AddrPort {
	ap, _ := netip.ParseAddrPort(s.pc.LocalAddr().String())
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// Conns returns how many connections the server has accepted.
func (s *Server) Conns() int64 { return s.conns.Load() }

// ClosedConns returns how many of them have ended.
func (s *Server) ClosedConns() int64 { return s.closed.Load() }

// Streams returns how many queries the server has read (DoQ streams, DoH3
// requests).
func (s *Server) Streams() int64 { return s.streams.Load() }

// NonZeroIDs returns how many queries carried a DNS ID other than 0 (RFC
// 9250 §4.2.1 requires 0 on DoQ, where the server refuses them; RFC 8484
// §4.1 recommends it for DoH).
func (s *Server) NonZeroIDs() int64 { return s.nonZeroIDs.Load() }

// ProtocolErrors returns how many DoQ streams broke the framing (no
// length, short message, no STREAM FIN after the query, extra data) or
// carried a query that does not parse.
func (s *Server) ProtocolErrors() int64 { return s.protoErrs.Load() }

// CloseConns closes every open connection with the application error
// code, as a server that restarts or drops idle clients does.
func (s *Server) CloseConns(code uint64) {
	s.mu.Lock()
	live := append([]*quic.Conn(nil), s.live...)
	s.mu.Unlock()
	for _, c := range live {
		c.CloseWithError(quic.ApplicationErrorCode(code), "closed by the test")
	}
}

// Close stops the server, closes its connections and its socket.
func (s *Server) Close() error {
	s.cancel()
	if s.h3 != nil {
		s.h3.Close()
	}
	s.CloseConns(0)
	s.ln.Close()
	<-s.done
	s.tr.Close()
	return s.pc.Close()
}

// Blackhole returns a UDP socket on addr that never reads: a QUIC
// handshake with it never completes, as with a server behind a firewall
// that drops packets. Close it when done.
func Blackhole(addr string) (net.PacketConn, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	return net.ListenPacket("udp", addr)
}

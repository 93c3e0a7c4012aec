// SPDX-License-Identifier: MIT

package upstream

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"
)

// streamMaxInFlight bounds the queries a stream transport holds, queued or
// sent and not yet answered: Send refuses more at once. The engine's own
// pending table is the real limit; this one only keeps a stuck upstream
// from holding memory without bound.
const streamMaxInFlight = 1024

// streamBatch is how many queued queries the writer gathers into one
// write (one TLS record, one segment when they fit).
const streamBatch = 64

// stream is the Exchanger for DNS over TCP (RFC 7766) and DNS over TLS
// (RFC 7858): one connection, dialled on first use and reused, with every
// query pipelined on it and answers taken in any order.
//
// Goroutines: the writer (writeLoop) owns dialling and writing and closes
// the connection when idle; a reader per connection delivers answers; one
// timer (expire) fails the queries past their deadline. Every query lives
// in inflight from Send until exactly one of them removes it: the reader
// (answer), the timer (timeout), a broken connection or a failed dial
// (fail), or Close (no callback).
type stream struct {
	spec   Spec
	opt    DialOptions
	tls    *tls.Config // nil for plain TCP
	answer func([]byte)
	fail   func(uint16, error)
	log    *slog.Logger
	queue  chan *streamQuery
	ctx    context.Context // ends with Close: stops the writer and a dial
	cancel context.CancelFunc
	rl     rateLog

	mu       sync.Mutex
	closed   bool
	inflight map[uint16]*streamQuery
	conn     *streamConn // the live connection, nil when none
	timer    *time.Timer // runs expire; armed while inflight is not empty
	timerOn  bool
}

// streamQuery is one query, from Send to its answer or failure.
type streamQuery struct {
	id       uint16
	frame    []byte // the two-byte length and the message
	deadline time.Time
	// Set under stream.mu:
	conn    *streamConn // the connection it was written on; nil while queued
	sent    time.Time
	retried bool // written again after its first connection ended
}

// streamConn is one connection. Its fields but c are guarded by stream.mu.
type streamConn struct {
	c        net.Conn      // the TLS connection over raw, or raw
	raw      net.Conn      // the TCP connection
	w        *bufio.Writer // the writer goroutine's only
	addr     netip.AddrPort
	dead     bool
	pending  int       // queries written on it, not yet answered
	lastRead time.Time // the last answer read
}

func newStream(spec Spec, opt DialOptions, answer func([]byte), fail func(uint16, error)) (Exchanger, error) {
	if spec.Proto != ProtoTCP && spec.Proto != ProtoTLS {
		return nil, fmt.Errorf("upstream %s: not a TCP or TLS upstream", spec)
	}
	s := &stream{
		spec: spec, opt: opt, answer: answer, fail: fail,
		log:      opt.Logger,
		queue:    make(chan *streamQuery, streamMaxInFlight),
		inflight: make(map[uint16]*streamQuery),
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if spec.Proto == ProtoTLS {
		// No ALPN: RFC 7858 defines none and some servers refuse an
		// unknown one.
		s.tls = tlsConfig(spec, opt)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	go s.writeLoop()
	return s, nil
}

func (s *stream) String() string { return s.spec.String() }

// Send queues msg for the writer. It refuses a query whose ID is already
// in flight: answers are matched by ID (RFC 7766 §6.2.1.1).
func (s *stream) Send(msg []byte) error {
	if len(msg) < 12 || len(msg) > 65535 {
		return fmt.Errorf("upstream %s: a %d-byte message is not a DNS query (12 to 65535 bytes)", s.spec, len(msg))
	}
	q := &streamQuery{
		id:       binary.BigEndian.Uint16(msg),
		frame:    make([]byte, 2+len(msg)),
		deadline: time.Now().Add(s.opt.Timeout),
	}
	binary.BigEndian.PutUint16(q.frame, uint16(len(msg)))
	copy(q.frame[2:], msg)
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return fmt.Errorf("upstream %s: %w", s.spec, net.ErrClosed)
	case s.inflight[q.id] != nil:
		return fmt.Errorf("upstream %s: query ID %d is already in flight; IDs must differ on one connection", s.spec, q.id)
	case len(s.inflight) >= streamMaxInFlight:
		return fmt.Errorf("upstream %s: %d queries in flight, the most one connection takes", s.spec, streamMaxInFlight)
	}
	select {
	case s.queue <- q:
	default:
		return fmt.Errorf("upstream %s: send queue full (%d)", s.spec, cap(s.queue))
	}
	s.inflight[q.id] = q
	if !s.timerOn {
		s.armLocked(q.deadline)
	}
	return nil
}

// armLocked sets the timer to fire at t.
func (s *stream) armLocked(t time.Time) {
	s.timerOn = true
	if s.timer == nil {
		s.timer = time.AfterFunc(time.Until(t), s.expire)
		return
	}
	s.timer.Reset(time.Until(t))
}

// Close closes the connection; queries in flight get no callback.
func (s *stream) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	c := s.conn
	s.conn = nil
	clear(s.inflight)
	if s.timer != nil {
		s.timer.Stop()
	}
	s.mu.Unlock()
	s.cancel()
	if c != nil {
		c.raw.Close() // the reader ends; closed: no callbacks
	}
	return nil
}

// writeLoop gathers queued queries into batches and writes them, dialling
// when there is no live connection, and closes a connection nothing was
// sent on for IdleTimeout.
func (s *stream) writeLoop() {
	idle := time.NewTimer(s.opt.IdleTimeout)
	defer idle.Stop()
	batch := make([]*streamQuery, 0, streamBatch)
	for {
		select {
		case <-s.ctx.Done():
			return
		case q := <-s.queue:
			batch = append(batch[:0], q)
		gather:
			for len(batch) < cap(batch) {
				select {
				case q := <-s.queue:
					batch = append(batch, q)
				default:
					break gather
				}
			}
			s.write(batch)
			idle.Reset(s.opt.IdleTimeout)
		case <-idle.C:
			if !s.closeIdle() {
				// Answers are still due: look again once they are
				// answered or have timed out.
				idle.Reset(s.opt.Timeout)
			}
		}
	}
}

// write sends the batch's queries that are still waiting, on the live
// connection or a new one.
func (s *stream) write(batch []*streamQuery) {
	s.mu.Lock()
	live := batch[:0]
	for _, q := range batch {
		// A query failed or timed out while queued is gone from inflight.
		if s.inflight[q.id] == q && q.conn == nil {
			live = append(live, q)
		}
	}
	c := s.conn
	s.mu.Unlock()
	if len(live) == 0 {
		return
	}
	// At most two rounds: the connection found, or a dial, then a dial.
	var now time.Time
	for fresh := false; ; fresh = true {
		if c == nil {
			var err error
			if c, err = s.dial(); err != nil {
				s.failQueued(live, err)
				return
			}
		}
		s.mu.Lock()
		if c.dead {
			// It broke since it was looked up (the server closed it):
			// dial once more; a new one that is closed at once is a
			// failure.
			s.mu.Unlock()
			if fresh {
				s.failQueued(live, fmt.Errorf("upstream %s: the connection to %v was closed as soon as it opened", s.spec, c.addr))
				return
			}
			c = nil
			continue
		}
		now = time.Now()
		n := 0
		for _, q := range live {
			if s.inflight[q.id] == q && q.conn == nil {
				q.conn, q.sent = c, now
				c.pending++
				live[n] = q
				n++
			}
		}
		live = live[:n]
		s.mu.Unlock()
		break
	}
	if len(live) == 0 {
		return
	}
	// From here a broken connection (broken, from the reader) fails or
	// requeues these queries with the others on it.
	c.c.SetWriteDeadline(now.Add(s.opt.Timeout))
	for _, q := range live {
		c.w.Write(q.frame) // a bufio.Writer: its error comes back from Flush
	}
	if err := c.w.Flush(); err != nil {
		s.broken(c, fmt.Errorf("upstream %s: write to %v: %w", s.spec, c.addr, err), false)
	}
}

// dial connects (and for DoT completes the TLS handshake) within Timeout,
// trying each of the server's addresses in turn, and starts the reader.
func (s *stream) dial() (*streamConn, error) {
	ctx, cancel := context.WithTimeout(s.ctx, s.opt.Timeout)
	defer cancel()
	addrs, err := resolve(ctx, s.spec, s.opt)
	if err != nil {
		return nil, err
	}
	raw, addr, err := dialTCP(ctx, s.opt, addrs)
	if err != nil {
		return nil, fmt.Errorf("upstream %s: connect: %w", s.spec, err)
	}
	c := &streamConn{c: raw, raw: raw, addr: addr}
	if s.tls != nil {
		tc := tls.Client(raw, s.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			raw.Close()
			return nil, tlsHandshakeError(s.spec, addr, s.opt.Timeout, err)
		}
		c.c = tc
	}
	c.w = bufio.NewWriterSize(c.c, 16<<10)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		raw.Close()
		return nil, fmt.Errorf("upstream %s: %w", s.spec, net.ErrClosed)
	}
	s.conn = c
	s.mu.Unlock()
	s.log.Debug("upstream connected", "upstream", s.spec.String(), "addr", addr)
	go s.readLoop(c)
	return c, nil
}

// readLoop delivers the answers read on c until it breaks.
func (s *stream) readLoop(c *streamConn) {
	r := bufio.NewReaderSize(c.c, 16<<10)
	buf := make([]byte, 65535)
	for {
		if _, err := io.ReadFull(r, buf[:2]); err != nil {
			// EOF at a message boundary is the server closing the
			// connection (idle, or done with it): what was sent after its
			// last answer may never have been read, so it is sent again
			// on a new connection, once.
			s.broken(c, fmt.Errorf("upstream %s: connection to %v: %w", s.spec, c.addr, err), errors.Is(err, io.EOF))
			return
		}
		n := int(binary.BigEndian.Uint16(buf))
		if _, err := io.ReadFull(r, buf[:n]); err != nil {
			s.broken(c, fmt.Errorf("upstream %s: connection to %v: in a %d-byte answer: %w", s.spec, c.addr, n, err), false)
			return
		}
		if n < 12 {
			continue // not a DNS message: nothing to match it to
		}
		id := binary.BigEndian.Uint16(buf)
		s.mu.Lock()
		c.lastRead = time.Now()
		q := s.inflight[id]
		if q == nil || q.conn != c {
			// Already timed out (or never asked here): the caller has
			// been told.
			s.mu.Unlock()
			continue
		}
		delete(s.inflight, id)
		c.pending--
		s.mu.Unlock()
		s.answer(buf[:n])
	}
}

// broken ends c once: it closes it and fails the queries written on it,
// or with retry queues those not yet retried for a new connection.
func (s *stream) broken(c *streamConn, err error, retry bool) {
	s.mu.Lock()
	if c.dead {
		s.mu.Unlock()
		return
	}
	c.dead = true
	if s.conn == c {
		s.conn = nil
	}
	closed := s.closed
	var failed []uint16
	for id, q := range s.inflight {
		if q.conn != c {
			continue
		}
		if retry && !q.retried {
			q.conn, q.retried = nil, true
			select {
			case s.queue <- q:
				continue
			default:
			}
		}
		delete(s.inflight, id)
		failed = append(failed, id)
	}
	c.pending = 0
	s.mu.Unlock()
	// The TCP connection, not the TLS one: a TLS close_notify may wait
	// 5 s for a peer that does not read, and this may run on the timer.
	c.raw.Close()
	if closed {
		return
	}
	if len(failed) > 0 {
		s.logf(slog.LevelWarn, "upstream connection failed", err, "queries", len(failed))
	} else {
		s.log.Debug("upstream connection ended", "upstream", s.spec.String(), "err", err)
	}
	for _, id := range failed {
		s.fail(id, err)
	}
}

// failQueued fails the batch and everything queued behind it: they would
// go to the same server that could not be reached just now.
func (s *stream) failQueued(batch []*streamQuery, err error) {
	var failed []uint16
	s.mu.Lock()
	take := func(q *streamQuery) {
		if s.inflight[q.id] == q && q.conn == nil {
			delete(s.inflight, q.id)
			failed = append(failed, q.id)
		}
	}
	for _, q := range batch {
		take(q)
	}
	for range cap(s.queue) {
		select {
		case q := <-s.queue:
			take(q)
			continue
		default:
		}
		break
	}
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return
	}
	s.logf(slog.LevelWarn, "upstream unreachable", err, "queries", len(failed))
	for _, id := range failed {
		s.fail(id, err)
	}
}

// closeIdle closes the connection if nothing is awaited on it, and
// reports false when answers are still due.
func (s *stream) closeIdle() bool {
	s.mu.Lock()
	c := s.conn
	if c == nil {
		s.mu.Unlock()
		return true
	}
	if c.pending > 0 {
		s.mu.Unlock()
		return false
	}
	c.dead = true
	s.conn = nil
	s.mu.Unlock()
	// A TLS connection says goodbye (close_notify), which
	// may block for a peer that does not read: not on the writer.
	go c.c.Close()
	s.log.Debug("upstream connection idle, closed", "upstream", s.spec.String(), "idle", s.opt.IdleTimeout)
	return true
}

// expire fails the queries past their deadline and re-arms the timer for
// the next. A connection that has read nothing since such a query was
// written on it is taken for dead (a silent peer, a NAT that forgot us):
// it is closed and the other queries on it go to a new connection.
func (s *stream) expire() {
	now := time.Now()
	var expired []uint16
	var stalled []*streamConn
	var next time.Time
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	for id, q := range s.inflight {
		if q.deadline.After(now) {
			if next.IsZero() || q.deadline.Before(next) {
				next = q.deadline
			}
			continue
		}
		delete(s.inflight, id)
		expired = append(expired, id)
		if c := q.conn; c != nil {
			c.pending--
			if !c.dead && c.lastRead.Before(q.sent) && !slices.Contains(stalled, c) {
				stalled = append(stalled, c)
			}
		}
	}
	s.timerOn = false
	if !next.IsZero() {
		s.armLocked(next)
	}
	s.mu.Unlock()
	for _, c := range stalled {
		s.broken(c, fmt.Errorf("upstream %s: connection to %v stalled: no answer within %v: %w", s.spec, c.addr, s.opt.Timeout, ErrTimeout), true)
	}
	if len(expired) == 0 {
		return
	}
	err := fmt.Errorf("upstream %s: no answer within %v: %w", s.spec, s.opt.Timeout, ErrTimeout)
	for _, id := range expired {
		s.fail(id, err)
	}
}

// logf logs a transport failure, at most once per rateLogEvery per
// transport; a refused certificate is an error, the rest warnings.
func (s *stream) logf(level slog.Level, msg string, err error, args ...any) {
	logFailure(s.log, &s.rl, s.spec, level, msg, err, args...)
}

// dialTCP connects to the first of addrs that answers, over marked
// sockets. Each address but the last gets its share of ctx's time, so one
// that drops packets does not use up the time of the others.
func dialTCP(ctx context.Context, opt DialOptions, addrs []netip.AddrPort) (net.Conn, netip.AddrPort, error) {
	d := dialer(opt)
	var errs []error
	for i, a := range addrs {
		actx, cancel := ctx, context.CancelFunc(func() {})
		if dl, ok := ctx.Deadline(); ok && i < len(addrs)-1 {
			actx, cancel = context.WithTimeout(ctx, time.Until(dl)/time.Duration(len(addrs)-i))
		}
		c, err := d.DialContext(actx, "tcp", a.String())
		cancel()
		if err == nil {
			return c, a, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, netip.AddrPort{}, errors.Join(errs...)
}

// tlsHandshakeError says why a handshake with addr failed: for a refused
// certificate, which name was checked, why it failed, and what to do.
func tlsHandshakeError(spec Spec, addr netip.AddrPort, timeout time.Duration, err error) error {
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("upstream %s: TLS handshake with %v did not complete within %v: %w", spec, addr, timeout, ErrTimeout)
	}
	if cerr := certRefusal(spec, addr, err); cerr != nil {
		return cerr
	}
	return fmt.Errorf("upstream %s: TLS handshake with %v: %w", spec, addr, err)
}

// certRefusedError is a transport's failure when it refused the server's
// certificate (verification against the roots, the name, or the pins).
type certRefusedError struct {
	Spec       Spec
	Addr       netip.AddrPort // the address connected to, when known
	ServerName string         // the name the certificate was checked for
	Err        error          // the x509 or pin error
	Hint       string         // what to do
}

func (e *certRefusedError) Error() string {
	at := ""
	if e.Addr.IsValid() {
		at = " at " + e.Addr.String()
	}
	return fmt.Sprintf("upstream %s: certificate of the server%s refused for server name %q: %v; %s", e.Spec, at, e.ServerName, e.Err, e.Hint)
}

func (e *certRefusedError) Unwrap() error { return e.Err }

// certRefusal returns a *certRefusedError when err is a certificate refusal,
// nil otherwise.
func certRefusal(spec Spec, addr netip.AddrPort, err error) error {
	var (
		hostErr    x509.HostnameError
		authErr    x509.UnknownAuthorityError
		invalidErr x509.CertificateInvalidError
		verifyErr  *tls.CertificateVerificationError
	)
	e := &certRefusedError{Spec: spec, Addr: addr, ServerName: spec.Host, Err: err}
	roots := "add the CA that issued it to the roots: SSL_CERT_FILE=/path/ca.pem (or a file in SSL_CERT_DIR), or the RootCAs dnstun is given"
	if runtime.GOOS == "darwin" {
		roots = "add the CA that issued it to the System keychain (security add-trusted-cert), or to the RootCAs dnstun is given"
	}
	switch {
	case errors.Is(err, errPinMismatch):
		e.Hint = "if the server's key changed on purpose, put its new pin in the URL (#pin-sha256=...)"
	case errors.As(err, &hostErr):
		e.Hint = fmt.Sprintf("the certificate names %s: write one of these as the host of the URL", certSANs(hostErr.Certificate))
	case errors.As(err, &authErr):
		e.Hint = "if this server is the right one, " + roots + "; a pin (#pin-sha256=) is checked in addition to the roots, not instead"
	case errors.As(err, &invalidErr):
		e.Hint = "check the server's certificate chain (dates, usage) and this machine's clock"
	case errors.As(err, &verifyErr):
		e.Hint = "check the server's certificate chain, or " + roots
	default:
		return nil
	}
	return e
}

func certSANs(c *x509.Certificate) string {
	var names []string
	if c != nil {
		names = append(names, c.DNSNames...)
		for _, ip := range c.IPAddresses {
			names = append(names, ip.String())
		}
	}
	if len(names) == 0 {
		return "no name (no subjectAltName)"
	}
	return strings.Join(names, ", ")
}

// rateLogEvery is how often a transport logs its failures at most: an
// upstream that is down fails every query, and the log must not follow.
const rateLogEvery = 10 * time.Second

// rateLog lets one line through per rateLogEvery and counts the rest.
type rateLog struct {
	mu      sync.Mutex
	next    time.Time
	dropped int
}

func (r *rateLog) allow() (ok bool, dropped int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	if now.Before(r.next) {
		r.dropped++
		return false, 0
	}
	r.next = now.Add(rateLogEvery)
	dropped, r.dropped = r.dropped, 0
	return true, dropped
}

// logFailure logs a transport's failure through rl; a refused certificate
// is an error (a setup to fix), the rest warnings.
func logFailure(log *slog.Logger, rl *rateLog, spec Spec, level slog.Level, msg string, err error, args ...any) {
	ok, dropped := rl.allow()
	if !ok {
		return
	}
	var cerr *certRefusedError
	if errors.As(err, &cerr) {
		level, msg = slog.LevelError, "upstream certificate refused"
	}
	args = append(args, "upstream", spec.String(), "err", err)
	if dropped > 0 {
		args = append(args, "similar_lines_dropped", dropped)
	}
	log.Log(context.Background(), level, msg, args...)
}

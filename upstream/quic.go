// SPDX-License-Identifier: MIT

package upstream

// DNS over QUIC (RFC 9250), and what it shares with DNS over HTTP/3
// (doh3.go): the query runner, the connection (dialled from a marked
// socket, reused, dialled again when it ends), and the errors.

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

// DoQ error codes, RFC 9250 §4.3.
const (
	doqNoError          = 0x0
	doqProtocolError    = 0x2
	doqRequestCancelled = 0x3
)

const (
	// quicMaxInFlight bounds the queries of one QUIC upstream waiting for
	// their answers, each on a goroutine of its own: a query past it is
	// refused at once (Send's error) and the caller fails over.
	quicMaxInFlight = 1024
	// quicMaxMsg is the largest DNS message: the two-byte length prefix of
	// DoQ (RFC 9250 §4.2) and of DNS over TCP.
	quicMaxMsg = 65535
	// quicHeaderLen is a DNS header's length (RFC 1035 §4.1.1).
	quicHeaderLen = 12
)

// quicExchanger carries the queries of one DoQ or DoH3 upstream over one
// QUIC connection, dialled on the first query and again after it ended.
// Each query runs on a goroutine of its own, because a QUIC stream's
// reader waits for its answer: at most quicMaxInFlight at once, each
// within opt.Timeout from Send. The protocols differ in exchange, which
// carries one query on a connection, and in the connection's settings.
type quicExchanger struct {
	spec   Spec
	name   string // spec.String(), for errors and logs
	opt    DialOptions
	log    *slog.Logger
	answer func([]byte)
	fail   func(uint16, error)

	tls   *tls.Config
	qconf *quic.Config
	// h3, for DoH3, makes the HTTP/3 client of each connection.
	h3 *http3.Transport
	// closeCode closes a connection without an error (DOQ_NO_ERROR,
	// H3_NO_ERROR).
	closeCode quic.ApplicationErrorCode
	// exchange sends the query q (its ID already 0) on c and returns the
	// answer, at least a header long.
	exchange func(ctx context.Context, c *quicConn, q []byte) ([]byte, error)
	// listen opens the UDP socket of a connection (listenUDP: marked).
	listen func(opt DialOptions, v6 bool) (*net.UDPConn, error)

	ctx    context.Context // cancelled by Close: ends dials and queries
	cancel context.CancelFunc
	slots  chan struct{} // one per query in flight

	// mu orders wg.Add against Close's wg.Wait; closed is also read
	// without it, before each callback.
	mu        sync.Mutex
	closed    atomic.Bool
	wg        sync.WaitGroup
	closeOnce sync.Once

	cmu     sync.Mutex
	conn    *quicConn              // new queries go here; nil or ended: dial
	dialing *quicDialCall          // the dial in progress, which queries share
	live    map[*quicConn]struct{} // every connection not yet ended, for Close

	epoch      time.Time
	lastAnswer atomic.Int64 // since epoch: the latest answer, on any connection
	logs       rateLog
}

// quicConn is one connection to the upstream.
type quicConn struct {
	*quic.Conn
	h3 *http3.ClientConn // DoH3's HTTP/3 client on it; nil for DoQ
}

// quicDialCall is one dial and its outcome, set before done closes.
type quicDialCall struct {
	done chan struct{}
	conn *quicConn
	err  error
}

func newQUICExchanger(spec Spec, opt DialOptions, answer func([]byte), fail func(uint16, error)) *quicExchanger {
	x := &quicExchanger{
		spec:   spec,
		name:   spec.String(),
		opt:    opt,
		log:    opt.Logger,
		answer: answer,
		fail:   fail,
		listen: listenUDP,
		slots:  make(chan struct{}, quicMaxInFlight),
		live:   make(map[*quicConn]struct{}),
		epoch:  time.Now(),
	}
	if x.log == nil {
		x.log = slog.Default()
	}
	x.ctx, x.cancel = context.WithCancel(context.Background())
	// Idle connections close after opt.IdleTimeout by QUIC's own idle
	// timeout (MaxIdleTimeout, RFC 9000 §10.1): a connection without
	// queries carries no packets, so it ends that long after the last
	// answer, silently (the peer's shorter timeout wins; quic-go takes
	// a peer's timeout under 5s for 5s, so a server keeps its side that
	// long at least). There are no keep-alives (KeepAlivePeriod 0): they
	// would hold an unused connection open forever (quic-go pings every
	// half idle timeout), keeping state at the server and waking a
	// sleeping laptop's radio. The price is a handshake, one round trip
	// (TLS resumed), before the first query after a quiet spell.
	x.qconf = &quic.Config{
		HandshakeIdleTimeout: opt.Timeout,
		MaxIdleTimeout:       opt.IdleTimeout,
		// Neither protocol has the server open bidirectional streams:
		// DoQ's queries go on the client's (RFC 9250 §4.2), and HTTP/3
		// uses none of the server's (RFC 9114 §6.1).
		MaxIncomingStreams: -1,
		// A server that asks for address validation (Retry) gives a
		// token for the next connection, saving that round trip.
		TokenStore: quic.NewLRUTokenStore(1, 4),
	}
	return x
}

func newDoQ(spec Spec, opt DialOptions, answer func([]byte), fail func(uint16, error)) (Exchanger, error) {
	x := newQUICExchanger(spec, opt, answer, fail)
	x.tls = tlsConfig(spec, opt, "doq")
	// Nor has DoQ a use for unidirectional streams (HTTP/3 has: its
	// control and QPACK streams).
	x.qconf.MaxIncomingUniStreams = -1
	x.closeCode = doqNoError
	x.exchange = doqExchange
	return x, nil
}

// Send implements Exchanger.
func (x *quicExchanger) Send(msg []byte) error {
	if len(msg) < quicHeaderLen || len(msg) > quicMaxMsg {
		return fmt.Errorf("upstream %s: a %d-byte message is not a DNS query (%d to %d bytes)", x.name, len(msg), quicHeaderLen, quicMaxMsg)
	}
	select {
	case x.slots <- struct{}{}:
	default:
		return fmt.Errorf("upstream %s: %d queries already wait for an answer; query refused, the upstream is slower than the load", x.name, quicMaxInFlight)
	}
	q := make([]byte, len(msg))
	copy(q, msg)
	if !x.spawn(func() { x.run(q) }) {
		<-x.slots
		return fmt.Errorf("upstream %s: %w", x.name, net.ErrClosed)
	}
	return nil
}

// spawn runs f on a goroutine Close waits for; false once Close began.
func (x *quicExchanger) spawn(f func()) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.closed.Load() {
		return false
	}
	x.wg.Add(1)
	go func() {
		defer x.wg.Done()
		f()
	}()
	return true
}

// Close implements Exchanger. It returns when every goroutine of the
// upstream has ended, so no callback runs after it; a callback must not
// call it.
func (x *quicExchanger) Close() error {
	x.closeOnce.Do(func() {
		x.mu.Lock()
		x.closed.Store(true)
		x.mu.Unlock()
		x.cancel()
		x.cmu.Lock()
		x.conn = nil
		live := make([]*quicConn, 0, len(x.live))
		for c := range x.live {
			live = append(live, c)
		}
		x.cmu.Unlock()
		for _, c := range live {
			c.CloseWithError(x.closeCode, "")
		}
		x.wg.Wait()
	})
	return nil
}

// String implements Exchanger.
func (x *quicExchanger) String() string { return x.name }

func (x *quicExchanger) since() int64 { return int64(time.Since(x.epoch)) }

// run carries the query q to its answer or its failure: one callback.
func (x *quicExchanger) run(q []byte) {
	defer func() { <-x.slots }()
	id := binary.BigEndian.Uint16(q)
	// DoQ queries carry ID 0 (RFC 9250 §4.2.1), as DoH's should (RFC 8484
	// §4.1); the stream or the request pairs the answer with its query.
	binary.BigEndian.PutUint16(q, 0)
	start := x.since()
	ctx, cancel := context.WithTimeout(x.ctx, x.opt.Timeout)
	defer cancel()
	ans, err := x.try(ctx, q)
	if err != nil && quicRetryable(err) && ctx.Err() == nil {
		// The server closed the connection cleanly (idle, restarted,
		// connection too old) and the query went with it: once more, on
		// a new connection. DNS queries are idempotent.
		ans, err = x.try(ctx, q)
	}
	if err == nil {
		x.lastAnswer.Store(x.since())
		binary.BigEndian.PutUint16(ans, id)
		if !x.closed.Load() {
			x.answer(ans)
		}
		return
	}
	if x.closed.Load() {
		return
	}
	x.fail(id, x.explain(ctx, err, start))
}

// try carries q on the connection, dialling it if need be.
func (x *quicExchanger) try(ctx context.Context, q []byte) ([]byte, error) {
	c, err := x.connect(ctx)
	if err != nil {
		return nil, err
	}
	ans, err := x.exchange(ctx, c, q)
	if err != nil && quicRetryable(err) {
		// The connection has ended (or takes no more queries), though
		// its context may not say so yet: the retry must not pick it.
		x.forget(c)
	}
	return ans, err
}

// explain turns a failed exchange into the error the fail callback gets,
// logs it (rate-limited; a refused certificate as an error to fix), and
// drops a connection gone silent.
func (x *quicExchanger) explain(ctx context.Context, err error, start int64) error {
	var cerr *certRefusedError
	var ne net.Error
	switch {
	case errors.As(err, &cerr):
		err = cerr
	case ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout():
		if x.lastAnswer.Load() < start {
			// Nothing answered since this query was sent: the server
			// or the path is gone (restarted without a reset, address
			// changed, firewall). Rather than wait out the idle timeout
			// on a dead connection, the next query dials anew.
			x.dropConn(fmt.Sprintf("no answer within %v", x.opt.Timeout))
		}
		// Timeouts are the caller's to count, not to log one by one.
		return fmt.Errorf("upstream %s: %w (%v): %v", x.name, ErrTimeout, x.opt.Timeout, err)
	default:
		err = fmt.Errorf("upstream %s: %w", x.name, err)
	}
	logFailure(x.log, &x.logs, x.spec, slog.LevelWarn, "upstream query failed", err)
	return err
}

// connGoneError is a connection that takes no new queries though it has
// not ended (an HTTP/3 server's GOAWAY).
type connGoneError struct{ err error }

func (e *connGoneError) Error() string { return e.err.Error() }
func (e *connGoneError) Unwrap() error { return e.err }

// quicRetryable reports whether err is a connection the server closed
// cleanly, forgot or stopped taking queries on, which a new connection
// cures.
func quicRetryable(err error) bool {
	var gone *connGoneError
	if errors.As(err, &gone) {
		return true
	}
	var app *quic.ApplicationError
	if errors.As(err, &app) {
		return app.Remote && (app.ErrorCode == doqNoError || app.ErrorCode == quic.ApplicationErrorCode(http3.ErrCodeNoError))
	}
	var te *quic.TransportError
	if errors.As(err, &te) {
		// Some servers retire old connections with NO_ERROR.
		return te.Remote && te.ErrorCode == quic.NoError
	}
	var idle *quic.IdleTimeoutError
	var reset *quic.StatelessResetError
	return errors.As(err, &idle) || errors.As(err, &reset)
}

// connect returns the connection, dialling it if there is none: one dial
// at a time, which every query arriving meanwhile waits for.
func (x *quicExchanger) connect(ctx context.Context) (*quicConn, error) {
	x.cmu.Lock()
	if c := x.conn; c != nil && c.Context().Err() == nil {
		x.cmu.Unlock()
		return c, nil
	}
	x.conn = nil
	call := x.dialing
	if call == nil {
		call = &quicDialCall{done: make(chan struct{})}
		if !x.spawn(func() { x.dial(call) }) {
			x.cmu.Unlock()
			return nil, net.ErrClosed
		}
		x.dialing = call
	}
	x.cmu.Unlock()
	select {
	case <-call.done:
		return call.conn, call.err
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for the QUIC handshake: %w", ctx.Err())
	}
}

// dial makes the connection for call. Its time is its own, opt.Timeout,
// not that of the query that started it, which others may share.
func (x *quicExchanger) dial(call *quicDialCall) {
	ctx, cancel := context.WithTimeout(x.ctx, x.opt.Timeout)
	defer cancel()
	c, err := x.dialQUIC(ctx)
	x.cmu.Lock()
	x.dialing = nil
	if err == nil {
		x.conn = c
	}
	x.cmu.Unlock()
	call.conn, call.err = c, err
	close(call.done)
}

// forget makes c no longer the connection new queries go on.
func (x *quicExchanger) forget(c *quicConn) {
	x.cmu.Lock()
	if x.conn == c {
		x.conn = nil
	}
	x.cmu.Unlock()
}

// dropConn closes the current connection.
func (x *quicExchanger) dropConn(reason string) {
	x.cmu.Lock()
	c := x.conn
	x.conn = nil
	x.cmu.Unlock()
	if c != nil {
		c.CloseWithError(x.closeCode, reason)
	}
}

// dialQUIC resolves the server (resolve: the URL's address or the
// bootstrap resolvers) and dials its addresses in turn until one completes
// a handshake, each from a marked UDP socket of its own.
func (x *quicExchanger) dialQUIC(ctx context.Context) (*quicConn, error) {
	addrs, err := resolve(ctx, x.spec, x.opt)
	if err != nil {
		return nil, err
	}
	var errs []error
	for i, ap := range addrs {
		c, err := x.dialShare(ctx, ap, len(addrs)-i)
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
		var cerr *certRefusedError
		if ctx.Err() != nil || errors.As(err, &cerr) {
			break // no time left, or the same certificate elsewhere
		}
	}
	return nil, errors.Join(errs...)
}

// dialShare dials ap with a 1/left share of the time left, so that an
// address that swallows packets leaves time for the next.
func (x *quicExchanger) dialShare(ctx context.Context, ap netip.AddrPort, left int) (*quicConn, error) {
	if dl, ok := ctx.Deadline(); ok && left > 1 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Until(dl)/time.Duration(left))
		defer cancel()
	}
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	udp, err := x.listen(x.opt, ap.Addr().Is6())
	if err != nil {
		return nil, err
	}
	// The transport reads the socket; both live as long as the one
	// connection, so a new connection also gets a new socket (and the
	// route of the moment).
	tr := &quic.Transport{Conn: udp}
	qc, err := tr.Dial(ctx, net.UDPAddrFromAddrPort(ap), x.tls, x.qconf)
	if err != nil {
		tr.Close()
		udp.Close()
		if cerr := certRefusal(x.spec, ap, tlsCause(err)); cerr != nil {
			return nil, cerr
		}
		if ctx.Err() != nil {
			err = fmt.Errorf("no handshake within %v: %w", x.opt.Timeout, err)
		}
		return nil, fmt.Errorf("QUIC handshake with %v: %w", ap, err)
	}
	c := &quicConn{Conn: qc}
	if x.h3 != nil {
		c.h3 = x.h3.NewClientConn(qc)
	}
	x.cmu.Lock()
	x.live[c] = struct{}{}
	x.cmu.Unlock()
	release := func() {
		<-qc.Context().Done()
		x.cmu.Lock()
		delete(x.live, c)
		x.cmu.Unlock()
		tr.Close()
		udp.Close()
	}
	if !x.spawn(release) {
		qc.CloseWithError(x.closeCode, "")
		release()
		return nil, fmt.Errorf("QUIC handshake with %v: %w", ap, net.ErrClosed)
	}
	x.log.Debug("upstream connected", "upstream", x.name, "addr", ap, "tls_resumed", qc.ConnectionState().TLS.DidResume)
	return c, nil
}

// tlsCause returns the TLS error inside a QUIC handshake's CRYPTO_ERROR,
// which reads better without it; other errors as they are.
func tlsCause(err error) error {
	var te *quic.TransportError
	if !errors.As(err, &te) || te.Remote || !te.ErrorCode.IsCryptoError() {
		return err
	}
	for _, e := range te.Unwrap() {
		if e != nil && e != net.ErrClosed {
			return e
		}
	}
	return err
}

// doqExchange sends q on a new stream of c and reads its answer (RFC 9250
// §4.2).
func doqExchange(ctx context.Context, c *quicConn, q []byte) ([]byte, error) {
	// Waits while the server's stream limit is reached.
	s, err := c.OpenStreamSync(ctx)
	if err != nil {
		return nil, fmt.Errorf("open a QUIC stream: %w", err)
	}
	if dl, ok := ctx.Deadline(); ok {
		s.SetDeadline(dl)
	}
	frame := make([]byte, 2+len(q))
	binary.BigEndian.PutUint16(frame, uint16(len(q)))
	copy(frame[2:], q)
	if _, err := s.Write(frame); err != nil {
		doqCancel(s, doqRequestCancelled)
		return nil, fmt.Errorf("send the query: %w", err)
	}
	// One query per stream, and the client says so with STREAM FIN.
	s.Close()
	var l [2]byte
	if _, err := io.ReadFull(s, l[:]); err != nil {
		doqCancel(s, doqRequestCancelled)
		return nil, doqReadError(err)
	}
	n := int(binary.BigEndian.Uint16(l[:]))
	if n < quicHeaderLen {
		doqCancel(s, doqProtocolError)
		return nil, fmt.Errorf("the server sent a %d-byte answer, shorter than a DNS header (a DoQ server?)", n)
	}
	ans := make([]byte, n)
	if _, err := io.ReadFull(s, ans); err != nil {
		doqCancel(s, doqRequestCancelled)
		return nil, fmt.Errorf("%w (%d bytes announced)", doqReadError(err), n)
	}
	// The server ends its side after the answer, usually in the same
	// packet, and reading it finished the stream; if its FIN is late this
	// stops it rather than wait, so the stream's state goes now.
	s.CancelRead(doqNoError)
	return ans, nil
}

func doqReadError(err error) error {
	var se *quic.StreamError
	if errors.As(err, &se) && se.Remote {
		return fmt.Errorf("read the answer: the server reset the query's stream: %w", err)
	}
	return fmt.Errorf("read the answer: %w", err)
}

// doqCancel gives up on a query (RFC 9250 §4.3.1: STOP_SENDING and
// RESET_STREAM), so that the server stops working on it.
func doqCancel(s *quic.Stream, code quic.StreamErrorCode) {
	s.CancelRead(code)
	s.CancelWrite(code)
}

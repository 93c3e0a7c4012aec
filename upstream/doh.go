// SPDX-License-Identifier: MIT

package upstream

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// dohWorkers bounds the requests one DoH upstream has in flight: an
	// HTTP/2 server takes 100 streams per connection by default
	// (SETTINGS_MAX_CONCURRENT_STREAMS; unbound's http-max-streams), so
	// they share one connection.
	dohWorkers = 64
	// dohQueueLen bounds the queries waiting for a worker.
	dohQueueLen = 1024
	// dohMaxMessage is the largest DNS message (RFC 8484 §6: the body is
	// one message, which has a 16-bit length on every other transport).
	dohMaxMessage = 65535
	// dnsMessageType is the media type of a DNS message (RFC 8484 §6).
	dnsMessageType = "application/dns-message"
)

// doh is the Exchanger for DNS over HTTPS over HTTP/2 (RFC 8484): each
// query is a POST on a connection net/http keeps and multiplexes, sent by
// one of a bounded set of workers.
//
// The query goes with its own ID, not 0: RFC 8484 §4.1 asks for 0 so that
// HTTP caches can share answers, but responses to POST are not cached, so
// 0 would buy nothing and cost a rewrite. The answer's ID is set to the
// query's all the same: the HTTP exchange, not the ID, pairs them, and a
// server that answers with ID 0 is then still understood.
type doh struct {
	spec   Spec
	opt    DialOptions
	url    string
	rt     *http.Transport
	answer func([]byte)
	fail   func(uint16, error)
	log    *slog.Logger
	queue  chan dohQuery
	ctx    context.Context // ends with Close: cancels requests, stops workers
	cancel context.CancelFunc
	rl     rateLog

	mu      sync.Mutex
	started bool           // the workers
	closed  bool           // no worker starts after Close
	wg      sync.WaitGroup // the workers
	// addr is the address last connected to, for error messages.
	addr atomic.Pointer[netip.AddrPort]

	// While no connection is up, gate lets one request through at a time:
	// net/http dials for every request that finds no connection, before it
	// knows the server speaks HTTP/2, so a burst on a cold transport would
	// open MaxConnsPerHost connections and keep one. warm is set once a
	// request got a response, and cleared when conns, the connections
	// open, falls to 0.
	gate  chan struct{}
	warm  atomic.Bool
	conns atomic.Int32
}

type dohQuery struct {
	msg      []byte
	deadline time.Time
}

func newDoH(spec Spec, opt DialOptions, answer func([]byte), fail func(uint16, error)) (Exchanger, error) {
	if spec.Proto != ProtoHTTPS {
		return nil, fmt.Errorf("upstream %s: not an https:// upstream", spec)
	}
	path := spec.Path
	if path == "" {
		path = "/dns-query"
	}
	h := &doh{
		spec: spec, opt: opt, answer: answer, fail: fail,
		log:   opt.Logger,
		url:   "https://" + net.JoinHostPort(spec.Host, strconv.Itoa(int(spec.Port))) + path,
		queue: make(chan dohQuery, dohQueueLen),
		gate:  make(chan struct{}, 1),
	}
	if h.log == nil {
		h.log = slog.Default()
	}
	if _, err := http.NewRequest(http.MethodPost, h.url, nil); err != nil {
		return nil, fmt.Errorf("upstream %s: request URL %s: %w", spec, h.url, err)
	}
	h.rt = &http.Transport{
		// DNS goes to the server itself, never through a proxy named by
		// the environment.
		Proxy:       nil,
		DialContext: h.dial,
		// h2 first; HTTP/1.1 only for a server without HTTP/2, where
		// MaxConnsPerHost bounds the connections instead.
		TLSClientConfig:     tlsConfig(spec, opt, "h2", "http/1.1"),
		TLSHandshakeTimeout: opt.Timeout,
		ForceAttemptHTTP2:   true,
		MaxIdleConns:        2,
		MaxIdleConnsPerHost: 2,
		MaxConnsPerHost:     8,
		IdleConnTimeout:     opt.IdleTimeout,
		// Every request has its deadline; this bounds a server that takes
		// the request and never answers, also for HTTP/1.1.
		ResponseHeaderTimeout: opt.Timeout,
		// A DNS answer's headers are a few dozen bytes.
		MaxResponseHeaderBytes: 16 << 10,
		// DNS messages are not worth compressing, and a gzip reader would
		// hide the answer's size from the bound below.
		DisableCompression: true,
		HTTP2: &http.HTTP2Config{
			// A connection that went silent (a NAT that forgot it, a
			// server gone) is found by a PING after Timeout without a
			// frame and closed after another Timeout, so requests move
			// to a new one instead of timing out one after the other.
			SendPingTimeout: opt.Timeout,
			PingTimeout:     opt.Timeout,
		},
	}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	return h, nil
}

func (h *doh) String() string { return h.spec.String() }

// Send queues a copy of msg for a worker; the workers start on the first.
// A query queued as Close runs gets no callback, as one in flight.
func (h *doh) Send(msg []byte) error {
	if len(msg) < 12 || len(msg) > dohMaxMessage {
		return fmt.Errorf("upstream %s: a %d-byte message is not a DNS query (12 to 65535 bytes)", h.spec, len(msg))
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return fmt.Errorf("upstream %s: %w", h.spec, net.ErrClosed)
	}
	if !h.started {
		h.started = true
		h.wg.Add(dohWorkers)
		for range dohWorkers {
			go h.work()
		}
	}
	h.mu.Unlock()
	select {
	case h.queue <- dohQuery{msg: bytes.Clone(msg), deadline: time.Now().Add(h.opt.Timeout)}:
		return nil
	default:
		return fmt.Errorf("upstream %s: send queue full (%d queries wait for %d HTTP requests in flight)", h.spec, cap(h.queue), dohWorkers)
	}
}

// Close cancels the requests in flight (no callbacks) and closes the
// connections.
func (h *doh) Close() error {
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	h.cancel()
	h.rt.CloseIdleConnections()
	// The requests cancelled leave their connections idle: close them
	// once the workers are out. Not here: Close may run in a callback, on
	// a worker.
	go func() {
		h.wg.Wait()
		h.rt.CloseIdleConnections()
	}()
	return nil
}

func (h *doh) work() {
	defer h.wg.Done()
	var buf []byte // the answer; reused, as the callback's msg is valid only during the call
	for {
		select {
		case <-h.ctx.Done():
			return
		case q := <-h.queue:
			buf = h.exchange(q, buf)
		}
	}
}

// exchange makes one request and hands its answer or failure to the
// callbacks. It returns buf, grown, for the next.
func (h *doh) exchange(q dohQuery, buf []byte) []byte {
	id := binary.BigEndian.Uint16(q.msg)
	ans, err := h.roundTrip(q, buf[:0])
	if h.ctx.Err() != nil {
		return ans // closed: no callbacks
	}
	if err != nil {
		logFailure(h.log, &h.rl, h.spec, slog.LevelWarn, "upstream request failed", err)
		h.fail(id, err)
		return ans
	}
	binary.BigEndian.PutUint16(ans, id)
	h.answer(ans)
	return ans
}

func (h *doh) roundTrip(q dohQuery, buf []byte) ([]byte, error) {
	if time.Now().After(q.deadline) {
		return buf, fmt.Errorf("upstream %s: no answer within %v: waited for one of %d HTTP requests in flight: %w", h.spec, h.opt.Timeout, dohWorkers, ErrTimeout)
	}
	ctx, cancel := context.WithDeadline(h.ctx, q.deadline)
	defer cancel()
	if !h.warm.Load() {
		select {
		case h.gate <- struct{}{}:
		case <-ctx.Done():
			return buf, h.explain(ctx, fmt.Errorf("waited for the first connection: %w", ctx.Err()))
		}
		if h.warm.Load() {
			<-h.gate // another request got through meanwhile
		} else {
			defer func() { <-h.gate }()
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader(q.msg))
	if err != nil {
		return buf, fmt.Errorf("upstream %s: %w", h.spec, err)
	}
	req.Header.Set("Content-Type", dnsMessageType)
	req.Header.Set("Accept", dnsMessageType)
	// RoundTrip, not a Client: no redirects (a 3xx is an error), no
	// cookies.
	resp, err := h.rt.RoundTrip(req)
	if err != nil {
		return buf, h.explain(ctx, err)
	}
	h.warm.Store(true)
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
		return buf, fmt.Errorf("upstream %s: HTTP status %q from %s (body %q): the server refused the query; check the URL's path", h.spec, resp.Status, h.url, b)
	}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || mt != dnsMessageType {
		return buf, fmt.Errorf("upstream %s: answer of type %q from %s, want %s: is the URL a DoH endpoint?", h.spec, resp.Header.Get("Content-Type"), h.url, dnsMessageType)
	}
	if resp.ContentLength > dohMaxMessage {
		return buf, fmt.Errorf("upstream %s: a %d-byte answer, larger than a DNS message can be (%d)", h.spec, resp.ContentLength, dohMaxMessage)
	}
	b := bytes.NewBuffer(buf)
	if _, err := b.ReadFrom(io.LimitReader(resp.Body, dohMaxMessage+1)); err != nil {
		return b.Bytes()[:0], h.explain(ctx, fmt.Errorf("read the answer: %w", err))
	}
	ans := b.Bytes()
	switch {
	case len(ans) > dohMaxMessage:
		return ans[:0], fmt.Errorf("upstream %s: an answer longer than a DNS message can be (%d bytes)", h.spec, dohMaxMessage)
	case len(ans) < 12:
		return ans[:0], fmt.Errorf("upstream %s: a %d-byte answer is not a DNS message", h.spec, len(ans))
	}
	return ans, nil
}

// explain turns a request's error into one that says what failed.
func (h *doh) explain(ctx context.Context, err error) error {
	var addr netip.AddrPort
	if a := h.addr.Load(); a != nil {
		addr = *a
	}
	if cerr := certRefusal(h.spec, addr, err); cerr != nil {
		return cerr
	}
	// The request's deadline, or one of net/http's (TLS handshake,
	// response header), which are as long and may come first.
	var ne net.Error
	if errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("upstream %s: no answer within %v: %v: %w", h.spec, h.opt.Timeout, err, ErrTimeout)
	}
	return fmt.Errorf("upstream %s: %w", h.spec, err)
}

// dial connects to the server's addresses, from the URL or the bootstrap
// resolvers (never the system's resolver, which may be dnstun itself),
// over marked sockets. net/http does the TLS handshake.
func (h *doh) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, h.opt.Timeout)
	defer cancel()
	addrs, err := resolve(ctx, h.spec, h.opt)
	if err != nil {
		return nil, err
	}
	c, addr, err := dialTCP(ctx, h.opt, addrs)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	h.addr.Store(&addr)
	h.conns.Add(1)
	h.log.Debug("upstream connected", "upstream", h.spec.String(), "addr", addr)
	return &dohConn{Conn: c, h: h}, nil
}

// dohConn counts the connections open (doh.conns).
type dohConn struct {
	net.Conn
	h    *doh
	once sync.Once
}

func (c *dohConn) Close() error {
	c.once.Do(func() {
		if c.h.conns.Add(-1) == 0 {
			c.h.warm.Store(false)
		}
	})
	return c.Conn.Close()
}

// SPDX-License-Identifier: MIT

package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dnstun/dnstun/filter"
	"github.com/dnstun/dnstun/packet"
	"github.com/dnstun/dnstun/querylog"
	"github.com/dnstun/dnstun/tun"
	"github.com/dnstun/dnstun/upstream"
)

// Defaults for Config's zero values.
const (
	DefaultUpstreamTimeout = 2 * time.Second
	DefaultTotalTimeout    = 5 * time.Second
	DefaultMaxPending      = 4096
	DefaultBlockTTL        = 10
	DefaultLocalTTL        = 60
	// MaxPendingLimit is the most forwarded queries that can wait: half
	// the 16-bit ID space, so that picking a free random ID takes two
	// tries on average even when the table is full.
	MaxPendingLimit = 1 << 15
)

// Config configures an Engine.
type Config struct {
	// Upstreams are tried in order; a query that gets no answer within
	// UpstreamTimeout moves to the next one (cycling) until TotalTimeout,
	// then the client gets SERVFAIL.
	Upstreams       []netip.AddrPort
	UpstreamTimeout time.Duration
	TotalTimeout    time.Duration
	// BlockMode answers blocked names whose rule names no mode; with
	// filter.ModeCustom, BlockAddrs are the addresses answered.
	BlockMode  filter.BlockMode
	BlockAddrs []netip.Addr
	// BlockTTL is the TTL of block answers (null addresses), LocalTTL the
	// TTL of local records.
	BlockTTL, LocalTTL uint32
	// MaxPending bounds the forwarded queries waiting for an answer.
	MaxPending int
	// PassThrough forwards each query to the resolver the client asked (the
	// packet's destination), as capture needs; queries to one of Resolvers
	// (dnstun's own virtual resolver) still go to Upstreams. Without it
	// every query goes to Upstreams ("override").
	PassThrough bool
	// Resolvers are dnstun's own virtual resolver addresses.
	Resolvers []netip.Addr
	// HealthName is answered locally (NOERROR, no records) whatever the
	// filter says, so a watchdog can probe the data path without an
	// upstream. Empty: none.
	HealthName string
	// QueryLog, if set, records every query answered (decision, rcode,
	// upstream, latency) without allocating.
	QueryLog *querylog.Ring
	// Mark is the SO_MARK of upstream sockets (Linux); see upstream.Mark.
	Mark uint32
	// TCP serves DNS over TCP on the TUN (RFC 7766) through a userspace
	// TCP stack: connections to port 53 are answered, any other port is
	// reset; queries that arrived over TCP are forwarded over TCP. TUN
	// mode only.
	TCP bool
	// TCPIdleTimeout closes a client connection without a query for this
	// long; 0 means DefaultTCPIdleTimeout.
	TCPIdleTimeout time.Duration
	// MTU is the TUN's MTU, which the TCP stack sizes its segments to; 0
	// means tun.DefaultMTU.
	MTU int
	// Logger for the engine; nil means slog.Default().
	Logger *slog.Logger
}

func (c *Config) setDefaults() error {
	if len(c.Upstreams) == 0 && !c.PassThrough {
		return errors.New("engine: no upstream resolvers: give at least one (--upstream IP:PORT)")
	}
	if len(c.Upstreams) > MaxUpstreams {
		return fmt.Errorf("engine: %d upstreams given, at most %d are supported", len(c.Upstreams), MaxUpstreams)
	}
	if c.UpstreamTimeout <= 0 {
		c.UpstreamTimeout = DefaultUpstreamTimeout
	}
	if c.TotalTimeout <= 0 {
		c.TotalTimeout = DefaultTotalTimeout
	}
	if c.TotalTimeout < c.UpstreamTimeout {
		return fmt.Errorf("engine: upstream timeout %v is longer than the total timeout %v: clients would get SERVFAIL before the first upstream had its turn", c.UpstreamTimeout, c.TotalTimeout)
	}
	if c.BlockMode == filter.ModeDefault {
		c.BlockMode = filter.ModeNXDomain
	}
	if c.BlockTTL == 0 {
		c.BlockTTL = DefaultBlockTTL
	}
	if c.LocalTTL == 0 {
		c.LocalTTL = DefaultLocalTTL
	}
	if c.MaxPending <= 0 {
		c.MaxPending = DefaultMaxPending
	}
	if c.TCPIdleTimeout <= 0 {
		c.TCPIdleTimeout = DefaultTCPIdleTimeout
	}
	if c.MTU <= 0 {
		c.MTU = tun.DefaultMTU
	}
	if c.MaxPending > MaxPendingLimit {
		return fmt.Errorf("engine: max pending %d is more than %d (half the 16-bit ID space)", c.MaxPending, MaxPendingLimit)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// Engine is the data path over one TUN device.
type Engine struct {
	cfg    Config
	dev    tun.Device   // the TUN front-end, or nil in flow mode
	flow   *net.UDPConn // the flow-mode front-end, or nil
	filter filter.Filter
	log    *slog.Logger
	// ups holds the upstream sockets, up to MaxUpstreams: the configured
	// ones and those pass-through opened for the resolvers clients asked.
	// Entries are only ever added; a socket is reused for its address.
	ups  [MaxUpstreams]atomic.Pointer[upstream.Conn]
	nUps atomic.Int32
	// cfgUps lists, in order, the indexes in ups of the configured
	// upstreams; SetUpstreams swaps it whole.
	cfgUps     atomic.Pointer[upList]
	dialMu     sync.Mutex
	health     [MaxUpstreams]upHealth
	healthName []byte
	pending    *pending
	stats      stats
	epoch      time.Time
	// epochUnix is epoch in Unix nanoseconds: epochUnix+now() is the wall
	// clock, from one monotonic clock read.
	epochUnix int64
	// coarse is now(), refreshed by the sweeper every tick (at most 100 ms
	// old): the query log's time for locally answered queries.
	coarse atomic.Int64
	kick   chan struct{} // wakes the sweeper early

	// tcp is the DNS-over-TCP front-end (nil without Config.TCP), streams
	// the TCP connections to upstreams its queries are forwarded on.
	tcp     *tcpFront
	streams [MaxUpstreams]streamSlot

	running   bool // receivers started (under dialMu)
	closing   atomic.Bool
	closeOnce sync.Once
	closed    chan struct{}
	wg        sync.WaitGroup
	recvWG    sync.WaitGroup
	logLimit  rateLimiter
}

// upHealth tracks whether an upstream answers, so that new queries start at
// one that does.
type upHealth struct {
	downUntil atomic.Int64 // engine clock; 0 = healthy
	timeouts  atomic.Int32 // consecutive attempts that timed out
}

// New makes an engine reading from dev and deciding with f. It opens the
// upstream sockets; Run starts the work. The engine owns dev from here on:
// Close (or the end of Run) closes it.
func New(cfg Config, dev tun.Device, f filter.Filter) (*Engine, error) {
	e, err := newEngine(cfg, f)
	if err != nil {
		return nil, err
	}
	e.dev = dev
	if cfg.TCP {
		if e.tcp, err = newTCPFront(e, e.cfg.MTU); err != nil {
			e.closeUpstreams()
			return nil, fmt.Errorf("engine: TCP stack: %w", err)
		}
	}
	return e, nil
}

func newEngine(cfg Config, f filter.Filter) (*Engine, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	start := time.Now()
	e := &Engine{
		cfg:        cfg,
		filter:     f,
		log:        cfg.Logger,
		healthName: []byte(strings.ToLower(cfg.HealthName)),
		pending:    newPending(cfg.MaxPending),
		epoch:      start,
		epochUnix:  start.UnixNano(),
		kick:       make(chan struct{}, 1),
		closed:     make(chan struct{}),
	}
	var list upList
	for i, a := range cfg.Upstreams {
		c, err := e.dialOrWait(a)
		if err != nil {
			for j := range i {
				e.ups[j].Load().Close()
			}
			return nil, err
		}
		e.ups[i].Store(c)
		list.idx = append(list.idx, i)
		list.mask |= 1 << i
	}
	e.nUps.Store(int32(len(cfg.Upstreams)))
	e.cfgUps.Store(&list)
	return e, nil
}

// now is the engine's monotonic clock in nanoseconds.
func (e *Engine) now() int64 { return int64(time.Since(e.epoch)) }

// Run serves until ctx ends or Close is called, then shuts down: queries in
// flight are answered SERVFAIL, sockets and the device are closed. It
// returns nil after a requested stop, or the error that stopped the reader.
func (e *Engine) Run(ctx context.Context) error {
	e.dialMu.Lock()
	e.running = true
	for i := range int(e.nUps.Load()) {
		e.startReceiver(i)
	}
	e.dialMu.Unlock()
	e.wg.Add(1)
	go e.routineSweep()
	if e.tcp != nil {
		e.wg.Add(1 + len(e.tcp.lns))
		go e.tcp.routineOut()
		for _, ln := range e.tcp.lns {
			go e.tcp.routineAccept(ln)
		}
	}
	stop := context.AfterFunc(ctx, func() { e.Close() })
	defer stop()
	var err error
	if e.flow != nil {
		err = e.routineFlowRead()
	} else {
		err = e.routineRead()
	}
	e.Close()
	e.wg.Wait()
	if e.closing.Load() && (err == nil || errors.Is(err, os.ErrClosed) || errors.Is(err, net.ErrClosed)) {
		return nil
	}
	return err
}

// Close stops the engine: new queries are refused, upstream sockets close,
// every query still waiting is answered SERVFAIL, then the device closes.
// It is idempotent and safe to call from any goroutine.
func (e *Engine) Close() error {
	e.closeOnce.Do(func() {
		e.closing.Store(true)
		e.closeUpstreams()
		e.recvWG.Wait()
		close(e.closed)
		e.failAll()
		if e.tcp != nil {
			e.tcp.close()
		}
		if e.dev != nil {
			e.dev.Close()
		} else {
			e.flow.Close()
		}
	})
	return nil
}

// closeUpstreams closes the upstream sockets, UDP and TCP; no new ones are
// opened once closing is set.
func (e *Engine) closeUpstreams() {
	e.dialMu.Lock() // no new upstreams from here on
	for i := range int(e.nUps.Load()) {
		e.ups[i].Load().Close()
	}
	e.dialMu.Unlock()
	for i := range e.streams {
		sl := &e.streams[i]
		sl.mu.Lock()
		if sl.c != nil {
			sl.c.Close()
			sl.c = nil
		}
		sl.mu.Unlock()
	}
}

// streamSlot is the TCP connection to one upstream, dialled on first use.
type streamSlot struct {
	mu sync.Mutex
	c  *upstream.StreamConn
}

// sendStream sends msg to upstream up over its TCP connection, dialling it
// first if needed (with the upstream timeout); answers come back through
// routineReceiveStream and the same delivery as UDP answers.
func (e *Engine) sendStream(up int, msg []byte) error {
	sl := &e.streams[up]
	sl.mu.Lock()
	c := sl.c
	if c == nil {
		if e.closing.Load() {
			sl.mu.Unlock()
			return net.ErrClosed
		}
		ctx, cancel := context.WithTimeout(context.Background(), e.cfg.UpstreamTimeout)
		var err error
		c, err = upstream.DialStream(ctx, e.ups[up].Load().Addr, upstream.Options{Mark: e.cfg.Mark}, upstreamStreamIdle)
		cancel()
		if err != nil {
			sl.mu.Unlock()
			return err
		}
		sl.c = c
		e.wg.Add(1)
		go e.routineReceiveStream(up, c)
	}
	sl.mu.Unlock()
	if err := c.Send(msg, e.cfg.UpstreamTimeout); err != nil {
		e.dropStream(up, c)
		return err
	}
	return nil
}

// dropStream closes c and forgets it, if it is still upstream up's.
func (e *Engine) dropStream(up int, c *upstream.StreamConn) {
	sl := &e.streams[up]
	sl.mu.Lock()
	if sl.c == c {
		sl.c = nil
	}
	sl.mu.Unlock()
	c.Close()
}

// routineReceiveStream delivers the answers of upstream up's TCP
// connection until it closes or idles out.
func (e *Engine) routineReceiveStream(up int, c *upstream.StreamConn) {
	defer e.wg.Done()
	defer e.dropStream(up, c)
	r := &receiver{e: e, up: up, buf: make([]byte, replyOff+packet.StreamLimit)}
	for {
		n, err := c.Recv(r.buf[replyOff:])
		if err != nil {
			return
		}
		r.deliver(n)
	}
}

// Stats returns a snapshot of the counters.
func (e *Engine) Stats() Stats {
	var s Stats
	for i := range s.Counters {
		s.Counters[i] = e.stats.c[i].Load()
	}
	for i := range s.Drops {
		s.Drops[i] = e.stats.drops[i].Load()
	}
	s.Pending = e.pending.len()
	return s
}

func (e *Engine) count(c Counter) { e.stats.c[c].Add(1) }

// rateLimiter lets one log line through per interval.
type rateLimiter struct{ next atomic.Int64 }

func (r *rateLimiter) allow(now int64) bool {
	const interval = int64(5 * time.Second)
	next := r.next.Load()
	return now >= next && r.next.CompareAndSwap(next, now+interval)
}

func (e *Engine) dial(a netip.AddrPort) (*upstream.Conn, error) {
	return upstream.Dial(context.Background(), a, upstream.Options{Mark: e.cfg.Mark, RecvBuffer: 4 << 20})
}

// dialOrWait dials a configured upstream; one that cannot be reached yet
// (no route, as at boot) gets a placeholder that redialUnreachable
// replaces once it can: dnstun serves from the start, queries go to the
// other upstreams or get SERVFAIL meanwhile.
func (e *Engine) dialOrWait(a netip.AddrPort) (*upstream.Conn, error) {
	c, err := e.dial(a)
	if err != nil && upstream.IsNoRoute(err) {
		e.log.Warn("upstream cannot be reached yet; it is used as soon as it can be", "upstream", a, "err", err)
		return upstream.Unreachable(a), nil
	}
	return c, err
}

// redialUnreachable dials again the upstreams that could not be reached,
// and starts receiving on those that now can. The sweeper calls it every
// redialEvery.
func (e *Engine) redialUnreachable() {
	e.dialMu.Lock()
	defer e.dialMu.Unlock()
	if e.closing.Load() {
		return
	}
	for i := range int(e.nUps.Load()) {
		old := e.ups[i].Load()
		if old.Connected() {
			continue
		}
		c, err := e.dial(old.Addr)
		if err != nil {
			continue
		}
		e.ups[i].Store(c)
		if e.running {
			e.startReceiver(i)
		}
		e.log.Info("upstream reachable now", "upstream", old.Addr)
	}
}

// redialEvery is how often unreachable upstreams are dialled again.
const redialEvery = 2 * time.Second

// startReceiver starts the receive loop of upstream i, if its socket is
// open (a placeholder gets one when redialled); e.dialMu is held.
func (e *Engine) startReceiver(i int) {
	if !e.ups[i].Load().Connected() {
		return
	}
	e.wg.Add(1)
	e.recvWG.Add(1)
	go e.routineReceive(i, e.ups[i].Load())
}

// upList is the ordered list of configured upstreams, as indexes into ups,
// with the same set as a bit mask.
type upList struct {
	idx  []int
	mask uint32
}

// next returns the upstream after up in the list (cycling); the first one
// if up is not in it (the list changed).
func (l *upList) next(up int) int {
	for i, u := range l.idx {
		if u == up {
			return l.idx[(i+1)%len(l.idx)]
		}
	}
	return l.idx[0]
}

// SetUpstreams replaces the configured upstreams (the system's resolvers
// changed, or a reload). Queries in flight finish on the sockets they use;
// a socket is kept for reuse if its address comes back.
func (e *Engine) SetUpstreams(addrs []netip.AddrPort) error {
	if len(addrs) > MaxUpstreams {
		return fmt.Errorf("engine: %d upstreams given, at most %d are supported", len(addrs), MaxUpstreams)
	}
	var list upList
	for _, a := range addrs {
		i := e.upstreamFor(a)
		if i < 0 {
			return fmt.Errorf("engine: cannot use upstream %v (socket table full or socket error)", a)
		}
		list.idx = append(list.idx, i)
		list.mask |= 1 << i
	}
	e.cfgUps.Store(&list)
	return nil
}

// Upstreams returns the configured upstreams.
func (e *Engine) Upstreams() []netip.AddrPort {
	l := e.cfgUps.Load()
	out := make([]netip.AddrPort, len(l.idx))
	for i, u := range l.idx {
		out[i] = e.ups[u].Load().Addr
	}
	return out
}

// upstreamFor returns the index of the upstream socket for addr, opening it
// on first use. It returns -1 when the table of upstreams is full or the
// socket cannot be opened.
func (e *Engine) upstreamFor(addr netip.AddrPort) int {
	n := int(e.nUps.Load())
	for i := range n {
		if e.ups[i].Load().Addr == addr {
			return i
		}
	}
	e.dialMu.Lock()
	defer e.dialMu.Unlock()
	n = int(e.nUps.Load())
	for i := range n {
		if e.ups[i].Load().Addr == addr {
			return i
		}
	}
	if n == MaxUpstreams || e.closing.Load() {
		return -1
	}
	c, err := e.dialOrWait(addr)
	if err != nil {
		if e.logLimit.allow(e.now()) {
			e.log.Warn("pass-through: cannot open a socket to the resolver the client asked", "resolver", addr, "err", err)
		}
		return -1
	}
	e.ups[n].Store(c)
	e.nUps.Store(int32(n + 1))
	if e.running {
		e.startReceiver(n)
	}
	e.log.Debug("pass-through: new upstream", "resolver", addr)
	return n
}

// UpstreamState is one configured upstream and whether it is answering.
type UpstreamState struct {
	Addr    netip.AddrPort
	Healthy bool
}

// UpstreamStates returns the configured upstreams in the order they are
// tried, each marked healthy unless it is being skipped (timeouts in a row
// or refusals).
func (e *Engine) UpstreamStates() []UpstreamState {
	now := e.now()
	l := e.cfgUps.Load()
	out := make([]UpstreamState, len(l.idx))
	for i, u := range l.idx {
		c := e.ups[u].Load()
		out[i] = UpstreamState{Addr: c.Addr, Healthy: c.Connected() && e.health[u].downUntil.Load() <= now}
	}
	return out
}

// logQuery records one answered query in the query log, if there is one.
// It allocates nothing and reads the clock once.
func (e *Engine) logQuery(client netip.AddrPort, name []byte, qtype uint16, d querylog.Decision, rcode uint8, up netip.AddrPort, start int64) {
	if e.cfg.QueryLog == nil {
		return
	}
	// Answers decided locally take the sweeper's coarse clock (a clock
	// read is a sizeable part of the whole block path); forwarded ones
	// read it for their latency anyway.
	now, lat := e.coarse.Load(), uint32(0)
	if start > 0 {
		now = e.now()
		lat = uint32(max(now-start, 0) / 1000)
	}
	e.cfg.QueryLog.Record(e.epochUnix+now, client, up, lat, qtype, rcode, d, name)
}

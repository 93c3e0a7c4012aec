// SPDX-License-Identifier: MIT

package engine

import (
	"cmp"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dnstun/dnstun/attrib"
	"github.com/dnstun/dnstun/cache"
	"github.com/dnstun/dnstun/filter"
	"github.com/dnstun/dnstun/querylog"
	"github.com/dnstun/dnstun/tap"
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
	// DefaultSocketLife bounds how long a plain UDP upstream socket (one
	// source port) takes queries: a port an off-path attacker has found
	// is then of use to them for about as long as one unanswered query's
	// port is anyway (TotalTimeout, while it lingers).
	DefaultSocketLife = time.Second
	// MaxPendingLimit is the most forwarded queries that can wait: half
	// the 16-bit ID space, so that picking a free random ID takes two
	// tries on average even when the table is full.
	MaxPendingLimit = 1 << 15
)

// Config configures an Engine.
type Config struct {
	// Upstreams are the default upstreams, asked by Strategy: a query
	// that gets no answer within UpstreamTimeout moves to the next one
	// (cycling) until TotalTimeout, then the client gets SERVFAIL.
	Upstreams []upstream.Spec
	// Domains route the queries for some domains to other upstreams
	// (split DNS).
	Domains  []DomainUpstreams
	Strategy Strategy
	// Bootstrap resolves the host names of upstream URLs.
	Bootstrap []netip.AddrPort
	// RootCAs verify encrypted upstreams; nil: the system's roots.
	RootCAs *x509.CertPool
	// Case0x20 randomises the case of the name in each query sent
	// upstream and accepts only answers that repeat it (draft-vixie-dnsext-dns0x20).
	Case0x20 bool
	// QueriesPerSocket is how many queries a plain UDP socket carries
	// before a fresh one (a new random source port) takes over; 0 means
	// upstream.PoolOptions' default (1).
	QueriesPerSocket int
	// SocketsPerUpstream is how many plain UDP sockets of an upstream are
	// in service at once, each query on one picked at random; 0 means
	// upstream.PoolOptions' default (1). A socket in service is retired
	// after QueriesPerSocket queries or SocketLife, whichever comes first.
	SocketsPerUpstream int
	// SocketLife bounds how long a plain UDP socket stays in service; 0
	// means DefaultSocketLife.
	SocketLife      time.Duration
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
	// Cache, if set, answers forwarded queries it holds a fresh answer
	// for, and takes every upstream answer (but pass-through ones) as the
	// upstream gave it. The rules decide before the cache is asked, and
	// answer inspection runs on every hit, for its client: a rule change
	// applies to cached names at once. The caller owns it (it outlives
	// the engine).
	Cache *cache.Cache
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
	// ClientRate bounds the queries a second of each client (source
	// address), with a burst of one second's worth; beyond it, REFUSED.
	// 0: no bound. Each client may also have at most MaxPending /
	// ClientShareDiv queries waiting (clients.go).
	ClientRate int
	// Metrics counts answers by decision and rcode, queries by front-end,
	// and the latency dnstun adds (Engine.Metrics); off, none of it costs
	// anything on the step.
	Metrics bool
	// Attrib, if set, finds the process behind each query (the query log
	// shows it; $process rules need it; see attrib.go). The caller owns it
	// and calls OwnerResolved from its OnResolved hook.
	Attrib *attrib.Table
	// Tap, if set, receives every client and upstream message (dnstap);
	// the caller owns it. Off, no message is copied.
	Tap *tap.Tap
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
	// slots are the upstreams in use, configured and pass-through; a
	// nil entry is free. They change under slotMu.
	slots      [MaxUpstreams]atomic.Pointer[slot]
	slotMu     sync.Mutex
	route      atomic.Pointer[routing]
	pool       *upstream.Pool
	explore    atomic.Uint32 // the fastest strategy's query counter
	healthName []byte
	pending    *pendingTable
	clients    *clients
	stats      stats
	metrics    metrics
	epoch      time.Time

	// workers counts the workers made: one that is not a TUN reader
	// inserts into the pending table's shard of its number (a reader, into
	// its queue's).
	workers atomic.Int32

	// epochUnix is epoch in Unix nanoseconds: epochUnix+now() is the wall
	// clock, from one monotonic clock read.
	epochUnix int64
	// coarse is now(), refreshed by the sweeper every tick (at most 100 ms
	// old): the query log's time for locally answered queries.
	coarse atomic.Int64
	kick   chan struct{} // wakes the sweeper early

	// held are the queries waiting for their process (nil without
	// Config.Attrib).
	held *holder
	// lookups bounds the attribution lookups queued per second.
	lookups budget

	// tcp is the DNS-over-TCP front-end (nil without Config.TCP).
	tcp *tcpFront

	// queues are the TUN's queues, each read by a reader of its own (the
	// device itself when it has one queue; none in flow mode); reads
	// counts each one's packets.
	queues []tun.Device
	reads  []queueCount

	closing   atomic.Bool
	startMu   sync.Mutex // Run's start of its goroutines against Close
	closeOnce sync.Once
	closed    chan struct{}
	wg        sync.WaitGroup
	recvWG    sync.WaitGroup
	relWG     sync.WaitGroup // the releaser of held queries
	logLimit  rateLimiter
}

// New makes an engine reading from dev and deciding with f. It opens the
// upstream sockets; Run starts the work. The engine owns dev from here on:
// Close (or the end of Run) closes it.
func New(cfg Config, dev tun.Device, f filter.Filter) (*Engine, error) {
	qs := queuesOf(dev)
	e, err := newEngine(cfg, f, pendingShardsFor(len(qs)))
	if err != nil {
		return nil, err
	}
	e.dev = dev
	e.queues = qs
	e.reads = make([]queueCount, len(e.queues))
	if cfg.TCP {
		if e.tcp, err = newTCPFront(e, e.cfg.MTU); err != nil {
			e.closeUpstreams()
			return nil, fmt.Errorf("engine: TCP stack: %w", err)
		}
	}
	return e, nil
}

// newEngine builds the engine around cfg and f, its table of forwarded
// queries in shards shards (pendingShardsFor the number of TUN readers).
func newEngine(cfg Config, f filter.Filter, shards int) (*Engine, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	start := time.Now()
	e := &Engine{
		cfg:        cfg,
		filter:     f,
		log:        cfg.Logger,
		healthName: []byte(strings.ToLower(cfg.HealthName)),
		pending:    newPendingTable(cfg.MaxPending, shards),
		epoch:      start,
		epochUnix:  start.UnixNano(),
		kick:       make(chan struct{}, 1),
		closed:     make(chan struct{}),
	}
	if cfg.Attrib != nil {
		e.held = newHolder()
	}
	e.clients = newClients(cfg.ClientRate, cfg.MaxPending)
	e.pending.setClients(e.clients)
	var err error
	e.pool, err = upstream.NewPool(upstream.PoolOptions{
		Mark:             cfg.Mark,
		QueriesPerSocket: cfg.QueriesPerSocket,
		SocketsPerDest:   cfg.SocketsPerUpstream,
		SocketLife:       cmp.Or(cfg.SocketLife, DefaultSocketLife),
		Linger:           cfg.TotalTimeout,
	})
	if err != nil {
		return nil, fmt.Errorf("engine: upstream sockets: %w", err)
	}
	e.route.Store(&routing{groups: make([]upList, 1)})
	if err := e.SetUpstreams(cfg.Upstreams, cfg.Domains); err != nil {
		e.closeUpstreams()
		return nil, err
	}
	return e, nil
}

// now is the engine's monotonic clock in nanoseconds.
func (e *Engine) now() int64 { return int64(time.Since(e.epoch)) }

// Run serves until ctx ends or Close is called, then shuts down: queries in
// flight are answered SERVFAIL, sockets and the device are closed. It
// returns nil after a requested stop, or the error that stopped the reader
// (the first of them to end, with a multi-queue TUN), once every reader has
// ended.
func (e *Engine) Run(ctx context.Context) error {
	// The goroutines start under startMu, so that Close either sees them
	// counted in its wait groups or finds Run not started (then Run does
	// not start them): a Close racing Run's start would otherwise wait on
	// groups that Run adds to after the wait.
	e.startMu.Lock()
	if e.closing.Load() {
		e.startMu.Unlock()
		return nil // closed before it ran
	}
	e.wg.Add(2)
	e.recvWG.Add(1)
	go e.routineReceive()
	go e.routineSweep()
	if e.held != nil {
		e.wg.Add(1)
		e.relWG.Add(1)
		go e.routineRelease()
	}
	if e.tcp != nil {
		e.wg.Add(1 + len(e.tcp.lns))
		go e.tcp.routineOut()
		for _, ln := range e.tcp.lns {
			go e.tcp.routineAccept(ln)
		}
	}
	// One reader per TUN queue. The first to end ends the engine: a queue
	// nobody reads would swallow the flows the kernel steers to it. The
	// others end when Close closes the device; wg counts them.
	ended := make(chan error, len(e.queues))
	e.wg.Add(len(e.queues))
	for i, q := range e.queues {
		go func() {
			defer e.wg.Done()
			err := e.routineRead(q, &e.reads[i], i)
			if len(e.queues) > 1 {
				err = fmt.Errorf("queue %d of %d: %w", i+1, len(e.queues), err)
			}
			ended <- err
		}()
	}
	e.startMu.Unlock()
	stop := context.AfterFunc(ctx, func() { e.Close() })
	defer stop()
	var err error
	if e.flow != nil {
		err = e.routineFlowRead()
	} else {
		err = <-ended
	}
	// Whether a stop was asked for before the reader ended, not after:
	// Close below sets closing either way. A reader that ends on a stop
	// may report whatever its device said as it closed (wireguard-go's
	// netlink listener reports its closed socket); one that ends on its
	// own lost its device (a TUN deleted from under the process).
	asked := e.closing.Load()
	e.Close()
	e.wg.Wait() // the other readers too
	if asked {
		return nil
	}
	if e.flow != nil {
		return fmt.Errorf("engine: the flow socket stopped reading: %w", err)
	}
	return fmt.Errorf("engine: the TUN stopped reading (deleted from under dnstun?): %w", err)
}

// Close stops the engine: new queries are refused, upstream sockets close,
// every query still waiting is answered SERVFAIL, then the device closes.
// It is idempotent and safe to call from any goroutine.
func (e *Engine) Close() error {
	e.closeOnce.Do(func() {
		e.closing.Store(true)
		// Run has started its goroutines, or will not (see Run).
		e.startMu.Lock()
		e.startMu.Unlock()
		e.closeUpstreams()
		e.recvWG.Wait()
		close(e.closed)
		// The releaser answers the queries still held for their process
		// (SERVFAIL: closing) while the device can still carry them.
		e.relWG.Wait()
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

// closeUpstreams closes every upstream socket and connection; no new
// ones are opened once closing is set.
func (e *Engine) closeUpstreams() {
	e.slotMu.Lock()
	defer e.slotMu.Unlock()
	for i := range e.slots {
		if s := e.slots[i].Swap(nil); s != nil {
			e.closeSlot(s)
		}
	}
	e.pool.Close()
}

// Stats returns a snapshot of the counters.
func (e *Engine) Stats() Stats {
	var s Stats
	for i := range s.Counters {
		s.Counters[i] = e.stats.get(Counter(i))
	}
	for i := range e.reads {
		s.Counters[Packets] += e.reads[i].n.Load() // the TUN readers' own
	}
	for i := range s.Drops {
		s.Drops[i] = e.stats.drops[i].Load()
	}
	s.Pending = e.pending.len()
	s.Sockets = e.pool.Stats()
	if e.cfg.Cache != nil {
		s.Cache = e.cfg.Cache.Stats()
	}
	return s
}

func (e *Engine) count(c Counter) { e.stats.lanes[0].add(c) }

// rateLimiter lets one log line through per interval.
type rateLimiter struct{ next atomic.Int64 }

func (r *rateLimiter) allow(now int64) bool {
	const interval = int64(5 * time.Second)
	next := r.next.Load()
	return now >= next && r.next.CompareAndSwap(next, now+interval)
}

// logQuery records one answered query in the query log, if there is one,
// and counts it for the metrics. owner is the process that sent it, if
// known (else attribution's cache is asked now). It allocates nothing and
// reads the clock once.
func (e *Engine) logQuery(from via, client, resolver netip.AddrPort, owner *attrib.Owner, name []byte, qtype uint16, d querylog.Decision, rcode uint8, up netip.AddrPort, start int64) {
	if e.cfg.Metrics {
		e.metrics.answers[d][rcode&0xf].Add(1)
	}
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
	if owner == nil && e.cfg.Attrib != nil && client.IsValid() {
		owner = e.cfg.Attrib.Lookup(keyOf(from, client, resolver))
	}
	q := querylog.Q{Time: e.epochUnix + now, Client: client, Resolver: resolver, Upstream: up, LatencyMicros: lat,
		QType: qtype, Rcode: rcode, Decision: d, Proto: protoOf(from), Name: name, Owner: owner}
	e.cfg.QueryLog.Record(&q)
}

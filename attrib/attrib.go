// SPDX-License-Identifier: MIT

package attrib

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Protocol numbers of Key.Proto.
const (
	ProtoTCP = 6
	ProtoUDP = 17
)

// Defaults of Config's zero fields.
const (
	DefaultEntries     = 4096
	DefaultTTL         = 10 * time.Second
	DefaultNegativeTTL = 2 * time.Second
	DefaultQueueLen    = 1024
	DefaultTimeout     = 500 * time.Millisecond
	DefaultWorkers     = 1
	DefaultResolvers   = 2
	DefaultMaxScan     = 10000
)

// ErrNotFound says that no process owns the socket of a Key: it is closed
// already, belongs to another network namespace, or its process is not
// visible (another PID namespace, or not readable: then the error also
// wraps fs.ErrPermission).
var ErrNotFound = errors.New("attrib: no process owns the socket")

// Key identifies the asking socket.
type Key struct {
	Proto  uint8          // ProtoUDP or ProtoTCP
	Local  netip.AddrPort // the client's socket (the query's source)
	Remote netip.AddrPort // where it sent the query (the query's destination)
}

func (k Key) String() string {
	p := "udp"
	switch k.Proto {
	case ProtoTCP:
		p = "tcp"
	case ProtoUDP:
	default:
		p = fmt.Sprintf("proto %d", k.Proto)
	}
	return fmt.Sprintf("%s %v -> %v", p, k.Local, k.Remote)
}

func (k Key) check() error {
	if k.Proto != ProtoUDP && k.Proto != ProtoTCP {
		return fmt.Errorf("attrib: key %v: protocol %d is neither UDP (17) nor TCP (6)", k, k.Proto)
	}
	if !k.Local.IsValid() || k.Local.Port() == 0 {
		return fmt.Errorf("attrib: key %v: the local (source) address and port must be set", k)
	}
	return nil
}

// Owner is a process that owned the socket of a Key. The Table shares
// one Owner between callers: it must not be modified.
type Owner struct {
	PID int32
	// UID owns the socket (Linux: the socket's uid from sock_diag, the
	// creator's; macOS: xsocket_n so_uid).
	UID uint32
	// Name is the process's short name (Linux: /proc/PID/comm; macOS:
	// kinfo_proc p_comm); "" if the process exited before it was read.
	Name string
	// Exe is the executable's full path (Linux: readlink /proc/PID/exe;
	// macOS: proc_pidpath); "" where it cannot be read.
	Exe string
	// SigningID is the macOS code-signing identifier
	// (csops CS_OPS_IDENTITY); "" elsewhere or for unsigned programs.
	SigningID string
	// EffectivePID is macOS's so_e_pid where it differs from PID: the
	// process on whose behalf PID used a delegated socket. 0 otherwise.
	EffectivePID int32
}

func (o *Owner) String() string {
	if o == nil {
		return "<unknown>"
	}
	return fmt.Sprintf("pid %d (%s) uid %d", o.PID, o.Name, o.UID)
}

// Config tunes a Table; zero fields take the defaults above.
type Config struct {
	// Entries bounds the cache (sockets); rounded up to a power of two.
	Entries int
	// TTL is how long an owner is kept after it was resolved. A hit past
	// TTL/2 queues a background refresh, so a port that another process
	// reuses is attributed to its new owner within TTL.
	TTL time.Duration
	// NegativeTTL is how long "no owner" (or a failed lookup) is kept, so
	// that a burst of queries from a socket that cannot be attributed
	// does not repeat the lookup.
	NegativeTTL time.Duration
	// QueueLen bounds the requests waiting for Run.
	QueueLen int
	// Timeout bounds one lookup (sock_diag and the /proc scan, or the
	// macOS sysctl), within any deadline of Resolve's context.
	Timeout time.Duration
	// Workers is the number of lookup goroutines Run starts.
	Workers int
	// Resolvers bounds the lookups Resolve runs at once (each holds a
	// netlink socket on Linux).
	Resolvers int
	// MaxScan bounds the processes one Linux lookup examines.
	MaxScan int
	// OnResolved, if set, is called with the key and the owner found
	// (nil if none) after every lookup, and for every key Run takes from
	// the queue that the cache answers already (looked up meanwhile), so
	// that each accepted Request is answered once Run gets to it. It runs
	// on the goroutine that looked up (Run's or Resolve's caller), after
	// the cache was updated, and must not block.
	OnResolved func(k Key, o *Owner)
	// Logger receives warnings (once: missing privileges); nil means
	// slog.Default().
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.Entries <= 0 {
		c.Entries = DefaultEntries
	}
	if c.TTL <= 0 {
		c.TTL = DefaultTTL
	}
	if c.NegativeTTL <= 0 {
		c.NegativeTTL = DefaultNegativeTTL
	}
	if c.QueueLen <= 0 {
		c.QueueLen = DefaultQueueLen
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Workers <= 0 {
		c.Workers = DefaultWorkers
	}
	if c.Resolvers <= 0 {
		c.Resolvers = DefaultResolvers
	}
	if c.MaxScan <= 0 {
		c.MaxScan = DefaultMaxScan
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Stats are the Table's counters since New.
type Stats struct {
	Hits      uint64 // Lookup found a fresh owner
	Misses    uint64 // Lookup found none (absent, expired or negative)
	Requests  uint64 // Request queued a key
	Drops     uint64 // Request found the queue full
	Lookups   uint64 // lookups run (by Run or Resolve)
	Found     uint64 // lookups that found an owner
	NotFound  uint64 // lookups that found no owner (ErrNotFound)
	Failures  uint64 // lookups that failed otherwise (timeout, netlink, sysctl)
	ProcScans uint64 // Linux: lookups that had to scan /proc (inode not indexed)
	Procs     uint64 // Linux: processes whose fd tables were read
	// ScansCut: Linux: scans stopped after the recent owners because the
	// socket had closed meanwhile (no full walk of /proc for it).
	ScansCut uint64
	// LookupTime is the time all lookups took together.
	LookupTime time.Duration
}

// resolver looks up owners; one belongs to one goroutine at a time.
type resolver interface {
	resolve(ctx context.Context, k Key) (*Owner, error)
	close()
}

// Table attributes sockets to processes: a bounded cache in front of the
// operating system's lookups. Its methods are safe for concurrent use.
type Table struct {
	cfg   Config
	cache cache
	queue chan Key
	epoch time.Time

	newResolver func() (resolver, error)
	idle        chan resolver // Resolve's resolvers not in use
	slots       chan struct{} // one per resolver created for Resolve

	changed notifier

	lookups, found, notFound, failures atomic.Uint64
	lookupNanos                        atomic.Int64
	scans                              scanCounters

	// coarse is Table.now() as Run's ticker last stored it, the clock of
	// Lookup while a Run is ticking (reading the time costs more than the
	// rest of a hit).
	coarse  atomic.Int64
	ticking atomic.Int32

	permOnce sync.Once
	closed   atomic.Bool
}

// scanCounters are the Linux /proc scan counters, kept by the resolvers.
type scanCounters struct {
	scans, procs, gone atomic.Uint64
}

// New returns a Table. It checks that lookups can work here (Linux: a
// NETLINK_SOCK_DIAG socket opens); on other systems than Linux and macOS
// it returns an error wrapping errors.ErrUnsupported.
func New(cfg Config) (*Table, error) {
	cfg.setDefaults()
	t := newTable(cfg, nil)
	sys, err := newSys(cfg, &t.scans, t.warnPermission)
	if err != nil {
		return nil, err
	}
	t.newResolver = sys.newResolver
	r, err := t.newResolver()
	if err != nil {
		return nil, err
	}
	t.slots <- struct{}{}
	t.idle <- r
	return t, nil
}

func newTable(cfg Config, newResolver func() (resolver, error)) *Table {
	cfg.setDefaults()
	t := &Table{
		cfg:         cfg,
		queue:       make(chan Key, cfg.QueueLen),
		epoch:       time.Now(),
		newResolver: newResolver,
		idle:        make(chan resolver, cfg.Resolvers),
		slots:       make(chan struct{}, cfg.Resolvers),
	}
	t.cache.init(cfg.Entries)
	return t
}

// now is the monotonic time since New, the cache's clock.
func (t *Table) now() int64 { return int64(time.Since(t.epoch)) }

// clock is Lookup's now: Run's coarse clock (at most a tick behind) while
// Run ticks, else now.
func (t *Table) clock() int64 {
	if t.ticking.Load() > 0 {
		return t.coarse.Load()
	}
	return t.now()
}

// tick is the period of Run's coarse clock: a twentieth of the shorter
// TTL, within [1ms, 100ms].
func (t *Table) tick() time.Duration {
	return min(max(min(t.cfg.TTL, t.cfg.NegativeTTL)/20, time.Millisecond), 100*time.Millisecond)
}

// Lookup returns the cached owner of k's socket, or nil. It does not
// allocate, lock or make system calls. A hit on an entry older than
// TTL/2 queues one refresh (as Request does).
func (t *Table) Lookup(k Key) *Owner {
	o, _ := t.LookupKnown(k)
	return o
}

// LookupKnown is Lookup, and also tells a socket looked up lately with no
// owner found (o nil, known true: a negative entry, kept NegativeTTL) from
// one not looked up (known false). A caller that would wait for a lookup
// need not wait for one whose answer is already "none". It does not
// allocate, lock or make system calls.
func (t *Table) LookupKnown(k Key) (o *Owner, known bool) {
	h := t.cache.hash(k)
	now := t.clock()
	e := t.cache.get(h, k)
	c := t.cache.counters(h)
	if e == nil || now >= e.expires {
		c.misses.Add(1)
		return nil, false
	}
	if e.owner == nil {
		c.misses.Add(1)
		return nil, true
	}
	c.hits.Add(1)
	if now >= e.refresh && e.refreshing.CompareAndSwap(false, true) {
		t.Request(k)
	}
	return e.owner, true
}

// Request queues a lookup of k for Run, without blocking or allocating.
// It returns false (and counts a drop) when the queue is full.
func (t *Table) Request(k Key) bool {
	c := t.cache.counters(t.cache.hash(k))
	select {
	case t.queue <- k:
		c.requests.Add(1)
		return true
	default:
		c.drops.Add(1)
		return false
	}
}

// Resolve returns k's owner: from the cache if it is fresh, else by a
// lookup now, bounded by ctx and Config.Timeout. For TCP connection
// goroutines and the control plane; the packet path uses Lookup and
// Request. The error wraps ErrNotFound when no process owns the socket.
func (t *Table) Resolve(ctx context.Context, k Key) (*Owner, error) {
	if err := k.check(); err != nil {
		return nil, err
	}
	if e := t.cache.get(t.cache.hash(k), k); e != nil && t.now() < e.expires {
		if e.owner == nil {
			return nil, fmt.Errorf("%w: %v (looked up less than %v ago)", ErrNotFound, k, t.cfg.NegativeTTL)
		}
		return e.owner, nil
	}
	ctx, cancel := context.WithTimeout(ctx, t.cfg.Timeout)
	defer cancel()
	r, err := t.acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("attrib: resolving %v: waiting for a free resolver: %w", k, err)
	}
	defer t.release(r)
	o, err := t.lookup(ctx, r, k)
	t.changed.broadcast()
	return o, err
}

// Wait returns k's owner, waiting up to d for Run to look it up (it
// requests the lookup itself). It returns nil if none was found in time.
func (t *Table) Wait(k Key, d time.Duration) *Owner {
	if o := t.Lookup(k); o != nil {
		return o
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	requested := false
	for {
		ch := t.changed.wait()
		if e := t.cache.get(t.cache.hash(k), k); e != nil && t.now() < e.expires && (requested || e.owner != nil) {
			return e.owner
		}
		if !requested {
			t.Request(k)
			requested = true
		}
		select {
		case <-ch:
		case <-timer.C:
			return t.Lookup(k)
		}
	}
}

// Run serves Request: Config.Workers goroutines drain the queue, skip
// keys already fresh in the cache, look up the others and fill the cache
// (calling Config.OnResolved). It also keeps the coarse clock Lookup
// reads, so that a hit reads no time: entries expire up to a tick (a
// twentieth of the shorter TTL, at most 100ms) late. It returns when ctx
// is done.
func (t *Table) Run(ctx context.Context) {
	var wg sync.WaitGroup
	t.coarse.Store(t.now())
	t.ticking.Add(1)
	defer t.ticking.Add(-1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		tk := time.NewTicker(t.tick())
		defer tk.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tk.C:
				t.coarse.Store(t.now())
			}
		}
	}()
	for range t.cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.work(ctx)
		}()
	}
	wg.Wait()
}

const batchMax = 64

func (t *Table) work(ctx context.Context) {
	r, err := t.newResolver()
	if err != nil {
		t.cfg.Logger.Error("attrib: lookup goroutine cannot start; queries stay unattributed", "err", err)
		return
	}
	defer r.close()
	batch := make([]Key, 0, batchMax)
	seen := make(map[Key]struct{}, batchMax)
	for {
		select {
		case <-ctx.Done():
			return
		case k := <-t.queue:
			batch = append(batch[:0], k)
		}
	drain:
		for len(batch) < batchMax {
			select {
			case k := <-t.queue:
				batch = append(batch, k)
			default:
				break drain
			}
		}
		clear(seen)
		for _, k := range batch {
			if _, dup := seen[k]; dup {
				continue
			}
			seen[k] = struct{}{}
			if k.check() != nil {
				continue
			}
			if e := t.freshEntry(k); e != nil {
				if t.cfg.OnResolved != nil {
					t.cfg.OnResolved(k, e.owner)
				}
				continue
			}
			lctx, cancel := context.WithTimeout(ctx, t.cfg.Timeout)
			t.lookup(lctx, r, k)
			cancel()
			if ctx.Err() != nil {
				return
			}
		}
		t.changed.broadcast()
	}
}

// freshEntry returns k's entry if it needs no lookup: a positive one
// before its refresh time, a negative one before it expires.
func (t *Table) freshEntry(k Key) *entry {
	if e := t.cache.get(t.cache.hash(k), k); e != nil && t.now() < e.refresh {
		return e
	}
	return nil
}

// lookup runs one lookup, counts it, stores its result and calls
// OnResolved.
func (t *Table) lookup(ctx context.Context, r resolver, k Key) (*Owner, error) {
	start := time.Now()
	o, err := r.resolve(ctx, k)
	t.lookupNanos.Add(int64(time.Since(start)))
	t.lookups.Add(1)
	switch {
	case err == nil:
		t.found.Add(1)
	case errors.Is(err, ErrNotFound):
		t.notFound.Add(1)
	default:
		t.failures.Add(1)
	}
	now := t.now()
	e := &entry{key: k, owner: o, stored: now}
	if o != nil {
		e.expires = now + int64(t.cfg.TTL)
		e.refresh = now + int64(t.cfg.TTL/2)
	} else {
		e.expires = now + int64(t.cfg.NegativeTTL)
		e.refresh = e.expires
	}
	t.cache.put(k, e)
	if t.cfg.OnResolved != nil {
		t.cfg.OnResolved(k, o)
	}
	return o, err
}

func (t *Table) acquire(ctx context.Context) (resolver, error) {
	if t.closed.Load() {
		return nil, errors.New("the table is closed")
	}
	select {
	case r := <-t.idle:
		return r, nil
	default:
	}
	select {
	case r := <-t.idle:
		return r, nil
	case t.slots <- struct{}{}:
		r, err := t.newResolver()
		if err != nil {
			<-t.slots
			return nil, err
		}
		return r, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (t *Table) release(r resolver) {
	if t.closed.Load() {
		r.close()
		<-t.slots
		return
	}
	t.idle <- r // never blocks: idle holds as many as slots allows
}

// Close releases the resolvers Resolve kept (netlink sockets). Run's own
// are released when its context ends. Resolve fails after Close; Lookup
// and Request keep working on the cache.
func (t *Table) Close() error {
	t.closed.Store(true)
	for {
		select {
		case r := <-t.idle:
			r.close()
			<-t.slots
		default:
			return nil
		}
	}
}

// Stats returns the counters.
func (t *Table) Stats() Stats {
	s := Stats{
		Lookups:    t.lookups.Load(),
		Found:      t.found.Load(),
		NotFound:   t.notFound.Load(),
		Failures:   t.failures.Load(),
		ProcScans:  t.scans.scans.Load(),
		Procs:      t.scans.procs.Load(),
		ScansCut:   t.scans.gone.Load(),
		LookupTime: time.Duration(t.lookupNanos.Load()),
	}
	for i := range t.cache.stripes {
		c := &t.cache.stripes[i]
		s.Hits += c.hits.Load()
		s.Misses += c.misses.Load()
		s.Requests += c.requests.Load()
		s.Drops += c.drops.Load()
	}
	return s
}

// warnPermission logs, once, that lookups miss processes for want of
// privileges.
func (t *Table) warnPermission(err error) {
	t.permOnce.Do(func() {
		t.cfg.Logger.Warn("attrib: some processes cannot be attributed: their /proc/PID/fd is not readable; "+
			"the daemon needs CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH (or root)", "err", err)
	})
}

// errPermission marks a not-found error whose cause may be privileges.
var errPermission = fs.ErrPermission

// notifier wakes Wait callers when lookups finish.
type notifier struct {
	mu sync.Mutex
	ch chan struct{}
}

func (n *notifier) wait() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch == nil {
		n.ch = make(chan struct{})
	}
	return n.ch
}

func (n *notifier) broadcast() {
	n.mu.Lock()
	if n.ch != nil {
		close(n.ch)
		n.ch = nil
	}
	n.mu.Unlock()
}

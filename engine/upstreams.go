// SPDX-License-Identifier: MIT

package engine

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/dnstun/dnstun/tap"
	"github.com/dnstun/dnstun/upstream"
)

// Strategy is how a query's upstream is chosen among its group's.
type Strategy uint8

const (
	// Failover asks the first upstream that is not marked down, and the
	// next one (cycling) when an attempt times out or is refused.
	Failover Strategy = iota
	// Parallel asks every upstream of the group at once (at most
	// maxAttempts); the first answer wins, except that a SERVFAIL or
	// REFUSED is held back while another upstream may still answer.
	Parallel
	// Fastest asks the upstream with the lowest recent round-trip time
	// (an average over its last answers); an upstream without a sample
	// yet is asked first, and one query in fastestExplore goes to another
	// upstream, so that the others' times stay current.
	Fastest
)

var strategyNames = [...]string{"failover", "parallel", "fastest"}

func (s Strategy) String() string {
	if int(s) < len(strategyNames) {
		return strategyNames[s]
	}
	return "unknown"
}

// ParseStrategy reads a strategy name, as --upstream-mode takes it.
func ParseStrategy(s string) (Strategy, error) {
	for i, n := range strategyNames {
		if s == n {
			return Strategy(i), nil
		}
	}
	return 0, fmt.Errorf("upstream mode %q: want one of %s", s, strings.Join(strategyNames[:], ", "))
}

// fastestExplore: one query in this many goes to an upstream other than
// the fastest, to keep every upstream's time current.
const fastestExplore = 32

// DomainUpstreams sends the queries for Domain and its subdomains to
// Upstreams (split DNS); the most specific domain wins. A Domain written
// "*.example.org" takes the subdomains only, not example.org itself
// (dnsproxy's meaning). UseDefault sends them to the default upstreams
// instead (dnsproxy's "#"), to carve a subdomain out of a routed domain.
type DomainUpstreams struct {
	Domain     string // lower case, no trailing dot; "*." for subdomains only
	Upstreams  []upstream.Spec
	UseDefault bool
}

// slot is one upstream in the engine's table: how it is reached and how it
// is doing. A slot is replaced whole, never changed, except its counters.
type slot struct {
	spec upstream.Spec
	url  string
	// key tells upstreams apart: the URL with its pins, so that the
	// same URL pinned differently is another transport.
	key string
	// addr is a plain upstream's address (pass-through looks it up).
	addr netip.AddrPort
	dest *upstream.Dest     // plain UDP: the pool's destination
	ex   upstream.Exchanger // every other transport
	// tcp carries the queries of TCP clients to a plain UDP upstream,
	// dialled on first use; none once the slot is closed.
	tcpMu  sync.Mutex
	tcp    upstream.Exchanger
	closed bool
	// passThrough: opened for a resolver a captured client asked; it
	// leaves the table when idle.
	passThrough bool

	downUntil atomic.Int64 // engine clock; 0 = healthy
	timeouts  atomic.Int32 // consecutive attempts that timed out
	rtt       atomic.Int64 // average round trip, ns; 0 = no sample yet
	lastUse   atomic.Int64 // engine clock (coarse)
	sent      atomic.Uint64
	answers   atomic.Uint64
	expired   atomic.Uint64 // attempts that timed out
	errs      atomic.Uint64 // sends that failed, transport failures
	latency   histogram     // round trips (with Config.Metrics)
}

// healthy reports whether s is not being skipped.
func (s *slot) healthy(now int64) bool { return s.downUntil.Load() <= now }

// close releases what s holds.
func (e *Engine) closeSlot(s *slot) {
	if s.dest != nil {
		e.pool.Release(s.dest)
	}
	if s.ex != nil {
		s.ex.Close()
	}
	s.tcpMu.Lock()
	s.closed = true
	if s.tcp != nil {
		s.tcp.Close()
		s.tcp = nil
	}
	s.tcpMu.Unlock()
}

// upList is one group's upstreams in order, as indexes into the table,
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

// routing is where queries go: group 0 is the default upstreams; domains
// maps a routed domain to its group, subs a domain routed for its
// subdomains only ("*.domain"). It is replaced whole.
type routing struct {
	groups  []upList
	domains map[string]uint8
	subs    map[string]uint8
	// used is every upstream some group names: these stay in the table.
	used uint32
}

// group returns group g, or the default one if g is out of range (the
// routing changed under a waiting query).
func (r *routing) group(g uint8) *upList {
	if int(g) < len(r.groups) {
		return &r.groups[g]
	}
	return &r.groups[0]
}

// groupFor returns the group of name (lower case, dotted, no trailing
// dot): the longest routed suffix's, else the default. No allocation.
func (r *routing) groupFor(name []byte) uint8 {
	if len(r.domains)+len(r.subs) == 0 {
		return 0
	}
	for i := 0; ; {
		if i > 0 {
			// name is a proper subdomain here: "*.suffix" is the more
			// specific route.
			if g, ok := r.subs[string(name[i:])]; ok {
				return g
			}
		}
		if g, ok := r.domains[string(name[i:])]; ok {
			return g
		}
		j := indexByte(name[i:], '.')
		if j < 0 {
			return 0
		}
		i += j + 1
	}
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

// setRouting opens the upstreams def and domains name (reusing those
// already in the table) and makes them the routing. On error nothing
// changes but slots opened meanwhile, which idle out.
func (e *Engine) setRouting(def []upstream.Spec, domains []DomainUpstreams) error {
	if len(domains) > 254 {
		return fmt.Errorf("engine: %d routed domains; at most 254", len(domains))
	}
	rt := &routing{groups: make([]upList, 1, 1+len(domains))}
	group := func(specs []upstream.Spec) (upList, error) {
		var l upList
		for _, s := range specs {
			i, err := e.slotFor(s, false, rt.used)
			if err != nil {
				return l, err
			}
			if l.mask&(1<<i) == 0 {
				l.idx = append(l.idx, i)
				l.mask |= 1 << i
				rt.used |= 1 << i
			}
		}
		return l, nil
	}
	var err error
	if rt.groups[0], err = group(def); err != nil {
		return err
	}
	rt.domains, rt.subs = map[string]uint8{}, map[string]uint8{}
	for _, d := range domains {
		m, name := rt.domains, d.Domain
		if rest, ok := strings.CutPrefix(name, "*."); ok {
			m, name = rt.subs, rest
		}
		if d.UseDefault {
			m[name] = 0
			continue
		}
		l, err := group(d.Upstreams)
		if err != nil {
			return err
		}
		m[name] = uint8(len(rt.groups))
		rt.groups = append(rt.groups, l)
	}
	e.route.Store(rt)
	return nil
}

// SetUpstreams replaces the default upstreams and the routed domains (the
// system's resolvers changed, or a reload). Queries in flight finish on
// the upstreams they use; an upstream no longer named leaves the table
// once nothing waits on it.
func (e *Engine) SetUpstreams(def []upstream.Spec, domains []DomainUpstreams) error {
	e.slotMu.Lock()
	defer e.slotMu.Unlock()
	return e.setRouting(def, domains)
}

// slotFor returns the index of the slot for spec, opening it if it is not
// in the table; keep is the set that must not be evicted to make room.
// e.slotMu is held.
func (e *Engine) slotFor(spec upstream.Spec, passThrough bool, keep uint32) (int, error) {
	url, key := spec.String(), slotKey(spec)
	free := -1
	for i := range e.slots {
		s := e.slots[i].Load()
		if s == nil {
			if free < 0 {
				free = i
			}
			continue
		}
		if s.key == key {
			return i, nil
		}
	}
	if e.closing.Load() {
		return -1, errors.New("engine: closing")
	}
	if free < 0 {
		if free = e.evictable(keep | e.route.Load().used); free < 0 {
			return -1, fmt.Errorf("engine: cannot use upstream %s: %d upstreams are in use at once, each with queries waiting", url, MaxUpstreams)
		}
		e.closeSlot(e.slots[free].Swap(nil))
	}
	s := &slot{spec: spec, url: url, key: key, passThrough: passThrough}
	s.lastUse.Store(e.coarse.Load())
	if ap, ok := spec.AddrPort(); ok && spec.Proto == upstream.ProtoUDP {
		s.addr = ap
		s.dest = e.pool.Dest(ap)
	} else {
		i := free
		var err error
		s.ex, err = upstream.NewExchanger(spec, e.dialOptions(), func(msg []byte) { e.deliverExchanged(i, s, msg) },
			func(id uint16, err error) { e.exchangeFailed(i, s, id, err) })
		if err != nil {
			return -1, err
		}
	}
	e.slots[free].Store(s)
	e.log.Debug("upstream opened", "upstream", url, "pass_through", passThrough)
	return free, nil
}

// slotKey is the URL of spec with its pins.
func slotKey(spec upstream.Spec) string {
	k := spec.String()
	for i, p := range spec.Pins {
		if i == 0 {
			k += "#pin-sha256="
		} else {
			k += ","
		}
		k += upstream.PinString(p)
	}
	return k
}

// evictable returns the least recently used upstream outside keep that
// no query waits on, or -1. A query that chose it but is not yet in the
// pending table holds its slot, not its index: its send fails, it never
// goes to the upstream that takes the index.
func (e *Engine) evictable(keep uint32) int {
	best, bestUse := -1, int64(0)
	for i := range e.slots {
		s := e.slots[i].Load()
		if s == nil || keep&(1<<i) != 0 || e.pending.inflight(i) != 0 {
			continue
		}
		if u := s.lastUse.Load(); best < 0 || u < bestUse {
			best, bestUse = i, u
		}
	}
	return best
}

// reapIdle closes the upstreams no group names that have been idle for
// idleFor with no query waiting (pass-through resolvers, upstreams
// replaced by a reload), so their sockets and connections go.
func (e *Engine) reapIdle(now int64) {
	e.slotMu.Lock()
	defer e.slotMu.Unlock()
	used := e.route.Load().used
	for i := range e.slots {
		s := e.slots[i].Load()
		if s == nil || used&(1<<i) != 0 || e.pending.inflight(i) != 0 || now-s.lastUse.Load() < int64(idleFor) {
			continue
		}
		e.slots[i].Store(nil)
		e.closeSlot(s)
		e.log.Debug("idle upstream closed", "upstream", s.url)
	}
}

// idleFor is how long an upstream no group names stays open unused.
const idleFor = 30 * time.Second

// upstreamFor returns the plain upstream addr (a resolver a captured
// client asked) and its table index, opening it on first use; -1 when it
// cannot be opened. Finding it allocates nothing.
func (e *Engine) upstreamFor(addr netip.AddrPort) (int, *slot) {
	for i := range e.slots {
		if s := e.slots[i].Load(); s != nil && s.dest != nil && s.addr == addr {
			if now := e.coarse.Load(); s.lastUse.Load() != now {
				s.lastUse.Store(now) // for evictable's choice
			}
			return i, s
		}
	}
	e.slotMu.Lock()
	defer e.slotMu.Unlock()
	i, err := e.slotFor(upstream.Spec{Proto: upstream.ProtoUDP, Host: addr.Addr().String(), Addr: addr.Addr(), Port: addr.Port()}, true, 0)
	if err != nil {
		if e.logLimit.allow(e.now()) {
			e.log.Warn("pass-through: cannot use the resolver the client asked", "resolver", addr, "err", err)
		}
		return -1, nil
	}
	return i, e.slots[i].Load()
}

func (e *Engine) dialOptions() upstream.DialOptions {
	return upstream.DialOptions{
		Mark:      e.cfg.Mark,
		Bootstrap: e.cfg.Bootstrap,
		// A transport gives up on a query only when the client would
		// have its SERVFAIL anyway: an answer late for its attempt (the
		// next upstream was asked meanwhile) is still worth taking.
		Timeout:     e.cfg.TotalTimeout,
		IdleTimeout: upstreamStreamIdle,
		RootCAs:     e.cfg.RootCAs,
		Logger:      e.log,
	}
}

// pick chooses the upstream(s) for a new query of group g into r.att, by
// the strategy. It returns false when the group has no upstream.
func (e *Engine) pick(g *upList, now int64, r *request) bool {
	r.nAtt = 0
	if len(g.idx) == 0 {
		return false
	}
	switch e.cfg.Strategy {
	case Parallel:
		for _, i := range g.idx {
			if s := e.slots[i].Load(); s != nil && s.healthy(now) && r.nAtt < maxAttempts {
				r.att[r.nAtt], r.sl[r.nAtt] = attempt{up: uint8(i), at: now}, s
				r.nAtt++
			}
		}
		if r.nAtt > 0 {
			return true
		}
	case Fastest:
		if i := e.fastest(g, now); i >= 0 {
			r.att[0], r.sl[0] = attempt{up: uint8(i), at: now}, e.slots[i].Load()
			r.nAtt = 1
			return true
		}
	}
	i := e.firstHealthy(g, now)
	r.att[0], r.sl[0] = attempt{up: uint8(i), at: now}, e.slots[i].Load()
	r.nAtt = 1
	return true
}

// firstHealthy returns the first upstream of g not marked down, or, when
// all are down, the one that comes back soonest.
func (e *Engine) firstHealthy(g *upList, now int64) int {
	best, bestUntil := g.idx[0], int64(-1)
	for _, i := range g.idx {
		s := e.slots[i].Load()
		if s == nil {
			continue
		}
		until := s.downUntil.Load()
		if until <= now {
			return i
		}
		if bestUntil < 0 || until < bestUntil {
			best, bestUntil = i, until
		}
	}
	return best
}

// fastest returns the healthy upstream of g with the lowest average round
// trip (one without a sample first; another one now and then); -1 when
// none is healthy.
func (e *Engine) fastest(g *upList, now int64) int {
	best, bestRTT, healthy := -1, int64(0), 0
	for _, i := range g.idx {
		s := e.slots[i].Load()
		if s == nil || !s.healthy(now) {
			continue
		}
		healthy++
		rtt := s.rtt.Load()
		if rtt == 0 {
			return i
		}
		if best < 0 || rtt < bestRTT {
			best, bestRTT = i, rtt
		}
	}
	if healthy > 1 && e.explore.Add(1)%fastestExplore == 0 {
		k := rand.IntN(healthy - 1)
		for _, i := range g.idx {
			if s := e.slots[i].Load(); s == nil || !s.healthy(now) || i == best {
				continue
			}
			if k == 0 {
				return i
			}
			k--
		}
	}
	return best
}

// prepare picks the socket attempt a goes out on to upstream s (a pool
// socket for a plain UDP upstream asked over UDP; 0 otherwise), before the
// attempt is recorded, so that an answer arriving at once is accepted. s
// is the slot the query chose; if it left the table since, sending fails
// (never goes to whatever took its place).
func (e *Engine) prepare(s *slot, a *attempt, from via) error {
	if s == nil {
		return errSlotGone
	}
	if now := e.coarse.Load(); s.lastUse.Load() != now {
		s.lastUse.Store(now) // once per sweep tick, not a shared write per query
	}
	if s.dest == nil || from == viaTCP {
		a.sock = 0
		return nil
	}
	sock, err := e.pool.Pick(s.dest)
	a.sock = sock
	if err != nil {
		e.sendFailed(s, err)
	}
	return err
}

var errSlotGone = errors.New("upstream left the table")

// transmit sends the query msg to upstream s on attempt a, prepared and
// recorded.
func (e *Engine) transmit(s *slot, a attempt, from via, msg []byte) error {
	if s == nil {
		return errSlotGone
	}
	s.sent.Add(1)
	if e.cfg.Tap != nil {
		e.tapUpstream(tap.ForwarderQuery, s, from, msg)
	}
	var err error
	switch {
	case s.ex != nil:
		err = s.ex.Send(msg)
	case from == viaTCP:
		err = e.sendTCP(int(a.up), s, msg)
	default:
		err = e.pool.SendOn(a.sock, msg)
	}
	if err != nil {
		e.sendFailed(s, err)
	}
	return err
}

// sendFailed notes that a query could not be sent to s.
func (e *Engine) sendFailed(s *slot, err error) {
	s.errs.Add(1)
	e.count(SendErrors)
	now := e.now()
	if upstream.IsNoRoute(err) || errors.Is(err, syscall.ECONNREFUSED) {
		// Not reachable now (no route yet, as at boot, or the network
		// changed): skip it until it answers again; each new query still
		// tries it when every upstream is down, so it is used again as
		// soon as it can be reached.
		s.downUntil.Store(now + int64(downFor))
		if e.logLimit.allow(now) {
			e.log.Warn("upstream cannot be reached now; queries go to another upstream or get SERVFAIL until it can", "upstream", s.url, "err", err)
		}
		return
	}
	if e.logLimit.allow(now) {
		e.log.Warn("upstream send failed", "upstream", s.url, "err", err)
	}
}

// sendTCP sends msg to the plain upstream s (index up) over TCP, for a TCP
// client (so that answers larger than a datagram come whole).
func (e *Engine) sendTCP(up int, s *slot, msg []byte) error {
	s.tcpMu.Lock()
	if s.tcp == nil {
		if e.closing.Load() || s.closed {
			s.tcpMu.Unlock()
			return errSlotGone
		}
		spec := s.spec
		spec.Proto = upstream.ProtoTCP
		ex, err := upstream.NewExchanger(spec, e.dialOptions(), func(msg []byte) { e.deliverExchanged(up, s, msg) },
			func(id uint16, err error) { e.exchangeFailed(up, s, id, err) })
		if err != nil {
			s.tcpMu.Unlock()
			return err
		}
		s.tcp = ex
	}
	ex := s.tcp
	s.tcpMu.Unlock()
	return ex.Send(msg)
}

// receivers recycles the scratch state of answers from transports'
// goroutines (TCP, TLS, HTTPS, QUIC), which allocate anyway.
var receivers sync.Pool

// deliverExchanged delivers an answer that a transport of slot s (at
// index up) received.
func (e *Engine) deliverExchanged(up int, s *slot, msg []byte) {
	if e.slots[up].Load() != s || len(msg) > maxExchanged {
		e.count(Unmatched)
		return
	}
	r, _ := receivers.Get().(*receiver)
	if r == nil {
		r = &receiver{buf: make([]byte, replyOff+maxExchanged)}
	}
	r.e, r.lane = e, &e.stats.lanes[0] // transports' goroutines share lane 0
	n := copy(r.buf[replyOff:], msg)
	r.deliver(r.buf, n, up, 0)
	receivers.Put(r)
}

// maxExchanged is the largest answer a stream transport delivers.
const maxExchanged = 65535

// exchangeFailed moves the query with upstream ID id on at once when its
// attempt on slot s failed (connection refused or reset, bad certificate,
// HTTP error, timeout).
func (e *Engine) exchangeFailed(up int, s *slot, id uint16, err error) {
	if e.slots[up].Load() != s {
		return
	}
	if errors.Is(err, upstream.ErrTimeout) {
		// The engine's own deadlines move the query on (and count it);
		// a late answer on this attempt is still taken meanwhile.
		return
	}
	s.errs.Add(1)
	// As for timeouts: a few failures in a row (a refused certificate, a
	// dead server), not one reset stream, take it out of first choice.
	if s.timeouts.Add(1) >= downAfterTimeouts {
		s.downUntil.Store(e.now() + int64(downFor))
	}
	e.pending.expediteID(id, up)
	e.wakeSweeper()
	if e.logLimit.allow(e.now()) {
		e.log.Warn("upstream query failed", "upstream", s.url, "err", err)
	}
}

// UpstreamState is one upstream and how it is doing.
type UpstreamState struct {
	URL string
	// Domains the upstream serves (split DNS); empty for a default one.
	Domains  []string
	Healthy  bool
	RTT      time.Duration // average round trip; 0 = none measured yet
	Sent     uint64        // attempts sent
	Answers  uint64
	Timeouts uint64
	Errors   uint64
	// Latency are the round trips of its answers (with Config.Metrics).
	Latency Histogram
}

// UpstreamStates returns the configured upstreams: the default ones in the
// order they are tried, then those of routed domains.
func (e *Engine) UpstreamStates() []UpstreamState {
	now := e.now()
	rt := e.route.Load()
	var out []UpstreamState
	seen := map[int]int{}
	for gi, g := range rt.groups {
		var names []string
		for d, x := range rt.domains {
			if int(x) == gi && gi != 0 {
				names = append(names, d)
			}
		}
		for d, x := range rt.subs {
			if int(x) == gi && gi != 0 {
				names = append(names, "*."+d)
			}
		}
		slices.Sort(names)
		for _, i := range g.idx {
			if k, ok := seen[i]; ok {
				out[k].Domains = append(out[k].Domains, names...)
				continue
			}
			s := e.slots[i].Load()
			if s == nil {
				continue
			}
			seen[i] = len(out)
			out = append(out, UpstreamState{
				URL: s.url, Domains: names, Healthy: s.healthy(now), RTT: time.Duration(s.rtt.Load()),
				Sent: s.sent.Load(), Answers: s.answers.Load(), Timeouts: s.expired.Load(), Errors: s.errs.Load(),
				Latency: s.latency.snapshot(),
			})
		}
	}
	return out
}

// Upstreams returns the default upstreams.
func (e *Engine) Upstreams() []upstream.Spec {
	var out []upstream.Spec
	for _, i := range e.route.Load().groups[0].idx {
		if s := e.slots[i].Load(); s != nil {
			out = append(out, s.spec)
		}
	}
	return out
}

// slotsInUse returns how many upstreams are in the table.
func (e *Engine) slotsInUse() int {
	n := 0
	for i := range e.slots {
		if e.slots[i].Load() != nil {
			n++
		}
	}
	return n
}

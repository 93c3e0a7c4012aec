// SPDX-License-Identifier: MIT

package engine

import (
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/dnstun/dnstun/packet"
)

// MaxQuery is the largest query the engine forwards. 1232 bytes is the EDNS
// buffer size of DNS Flag Day 2020; real queries, even padded (RFC 8467),
// are far smaller. Larger ones are refused rather than stored.
const MaxQuery = 1232

// MaxUpstreams bounds the upstreams in use at once (configured and
// pass-through together): each query remembers the ones it was sent to in
// a 32-bit mask. Idle pass-through upstreams leave the table, so a
// machine may use any number of resolvers over its life.
const MaxUpstreams = 32

// maxAttempts is how many attempts (upstream and socket) a query
// remembers; an answer is accepted only on one of them. It also bounds the
// fan-out of the parallel strategy.
const maxAttempts = 8

// attempt is one sending of a query: to upstream up, on the pool socket
// sock (0 for a transport without per-query sockets), at engine time at.
type attempt struct {
	up   uint8
	sock uint32
	at   int64
}

// entry is one forwarded query waiting for its answer.
type entry struct {
	used     bool
	id       uint16 // the ID we sent upstream
	origID   uint16 // the client's ID
	up       uint8  // upstream of the current attempt
	group    uint8  // the routing group whose upstreams it cycles through
	sent     uint32 // upstreams this query was sent to, as a bit mask
	failed   uint32 // upstreams that refused it, failed it, or (parallel) answered SERVFAIL or REFUSED
	parallel bool
	via      via  // where the answer goes
	fixed    bool // pass-through: every attempt goes to the same upstream
	hasFlip  bool // the name's case was randomised (0x20)
	nAtt     uint8
	limit    uint16 // the largest answer the client may receive
	att      [maxAttempts]attempt
	client   netip.AddrPort
	resolver netip.AddrPort // the address the client asked; the answer comes from it
	qtype    uint16
	qclass   uint16
	nameLen  uint8
	name     [packet.MaxName]byte
	flip     [32]byte // 0x20: bit i set when byte 12+i of the query had its case flipped
	deadline int64    // end of the current attempt (engine clock, ns)
	hpos     int32    // the entry's index in pending.heap
	cb       int32    // the client's counter (clients.go); -1: none
	final    int64    // when the client gets SERVFAIL
	start    int64
	// A CNAME rewrite: the client asked for alias (wire format), the query
	// went out for the target; the reply gets a CNAME with aliasTTL.
	aliasLen uint8
	alias    [packet.MaxName]byte
	aliasTTL uint32
	qlen     uint16
	query    [MaxQuery]byte // the query as sent upstream (our ID in it)
}

// request is what the forward path stores with a query; it belongs to the
// worker that fills it.
type request struct {
	client, resolver netip.AddrPort
	from             via
	fixed            bool
	parallel         bool
	group            uint8
	alias            []byte
	aliasTTL         uint32
	att              [maxAttempts]attempt
	sl               [maxAttempts]*slot // the upstream of each attempt, as chosen
	nAtt             int
	hasFlip          bool
	flip             [32]byte
	now              int64
	perTry, total    int64
	cb               int32 // the client's counter, held for the query; -1: none
}

// pending is the fixed-capacity table of forwarded queries, keyed by a
// random 16-bit upstream ID. It never grows and never allocates after
// newPending.
//
// Two indexes keep the work of the sweeper and of the receivers
// proportional to what they touch, not to the table's size: a binary heap
// of the entries ordered by attempt deadline (a sweep pops what expired),
// and, per pool socket bucket, a list of the attempts sent on sockets of
// that bucket (an ICMP refusal on one socket walks only that list).
type pending struct {
	mu    sync.Mutex
	slots []entry
	free  []int32 // stack of free slot indexes
	// byID maps an upstream ID to its slot + 1 (0: free). A table alone
	// (ids nil) owns every ID, at byID[id]. A shard of a pendingTable owns
	// the IDs of its ids list, a secret random part of the ID space
	// (pendingTable), and keeps ID ids[i] at byID[i], i being the ID's
	// rank in the list.
	byID []int32
	ids  []uint16
	rank *[1 << 16]uint16
	n    int
	// closed: the engine has swept the table for the last time; nothing
	// more may be inserted (its client would never be answered).
	closed bool
	// heap holds the slot index of every entry, a min-heap by deadline.
	heap []int32
	// The attempt lists by socket: attempt i of slot s is node
	// s*maxAttempts+i; sockHead[b] is the first node of bucket b
	// (sock & sockMask), -1 when empty; sockNext and sockPrev link them.
	sockHead [sockBuckets]int32
	sockNext []int32
	sockPrev []int32
	// inflight counts, per upstream, the queries that were sent to it and
	// are still waiting: an upstream with none can leave the table. Each
	// shard of a pendingTable counts its own (pendingTable.inflight sums
	// them).
	inflight [MaxUpstreams]atomic.Int32
	// clients gets back each entry's share when it leaves (nil in tests
	// of the table alone).
	clients *clients
}

// sockBuckets is the number of socket lists: the pool's bound on open
// sockets, whose ids carry their slot in the low bits, so that a bucket
// usually holds one socket's attempts.
const (
	sockBuckets = 4096
	sockMask    = sockBuckets - 1
)

func newPending(capacity int) *pending {
	return newPendingShard(capacity, nil, nil)
}

// newPendingShard returns a table of up to capacity queries that owns the
// upstream IDs ids (nil: all of them), ids[i] having rank i in rank.
func newPendingShard(capacity int, ids []uint16, rank *[1 << 16]uint16) *pending {
	space := 1 << 16
	if ids != nil {
		space = len(ids)
	}
	// At most half of the IDs are taken, so that a fresh random one is
	// found in two tries on average (Config refuses more; a direct caller
	// gets the limit).
	capacity = min(max(capacity, 1), space/2)
	p := &pending{slots: make([]entry, capacity), free: make([]int32, capacity), byID: make([]int32, space), ids: ids, rank: rank,
		heap: make([]int32, 0, capacity), sockNext: make([]int32, capacity*maxAttempts), sockPrev: make([]int32, capacity*maxAttempts)}
	for i := range p.free {
		p.free[i] = int32(capacity - 1 - i)
	}
	for i := range p.sockHead {
		p.sockHead[i] = -1
	}
	return p
}

// insertResult says why insert did not store a query.
type insertResult uint8

const (
	insertOK     insertResult = iota
	insertFull                // the table is full: REFUSED
	insertClosed              // the engine has closed: SERVFAIL
)

// insert stores the query msg (already checked to be <= MaxQuery, read
// into q) with what r says of it, gives it a fresh random upstream ID, and
// writes that ID into msg. It returns false when the table is full.
func (p *pending) insert(q *packet.Question, msg []byte, r *request) (uint16, insertResult) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return 0, insertClosed
	}
	if len(p.free) == 0 {
		return 0, insertFull
	}
	slot := p.free[len(p.free)-1]
	p.free = p.free[:len(p.free)-1]
	i := p.freshID()
	p.byID[i] = slot + 1
	id := uint16(i)
	if p.ids != nil {
		id = p.ids[i]
	}
	p.n++
	e := &p.slots[slot]
	e.used = true
	e.id = id
	e.origID = q.ID
	e.up = r.att[0].up
	e.group = r.group
	e.parallel = r.parallel
	e.sent, e.failed = 0, 0
	e.nAtt = uint8(copy(e.att[:], r.att[:r.nAtt]))
	for i, a := range e.att[:e.nAtt] {
		if e.sent&(1<<a.up) == 0 {
			e.sent |= 1 << a.up
			p.inflight[a.up].Add(1)
		}
		p.linkSock(slot, i)
	}
	e.client = r.client
	e.resolver = r.resolver
	e.via = r.from
	e.fixed = r.fixed
	e.limit = uint16(packet.ClientLimit(q))
	if r.from == viaTCP {
		e.limit = packet.StreamLimit
	}
	e.hasFlip = r.hasFlip
	if r.hasFlip {
		e.flip = r.flip
	}
	e.aliasLen = uint8(copy(e.alias[:], r.alias))
	e.aliasTTL = r.aliasTTL
	e.qtype, e.qclass = q.QType, q.QClass
	e.nameLen = uint8(copy(e.name[:], q.Name()))
	e.start = r.now
	e.cb = r.cb
	e.final = r.now + r.total
	e.deadline = min(r.now+r.perTry, e.final)
	p.heapPush(slot)
	binary.BigEndian.PutUint16(msg, id)
	e.qlen = uint16(copy(e.query[:], msg))
	return id, insertOK
}

// freshID draws a free upstream ID at random among the table's and
// returns its index in byID. p.mu is held, and at most half the IDs are
// taken.
func (p *pending) freshID() int {
	mask := uint32(len(p.byID) - 1) // a power of two
	i := int(rand.Uint32() & mask)
	for p.byID[i] != 0 {
		i = int(rand.Uint32() & mask)
	}
	return i
}

// at is the index in byID of upstream ID id, which the table owns.
func (p *pending) at(id uint16) int {
	if p.rank == nil {
		return int(id)
	}
	return int(p.rank[id])
}

// addAttempt records that the query with upstream ID id is being sent to
// upstream up on socket sock, before it is sent, so that its answer is
// accepted. It returns false when the query is gone (answered meanwhile).
func (p *pending) addAttempt(id uint16, up int, sock uint32, now int64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.byID[p.at(id)]
	if s == 0 {
		return false
	}
	e := &p.slots[s-1]
	if e.sent&(1<<up) == 0 {
		e.sent |= 1 << up
		p.inflight[up].Add(1)
	}
	a := attempt{up: uint8(up), sock: sock, at: now}
	if int(e.nAtt) < maxAttempts {
		e.att[e.nAtt] = a
		p.linkSock(s-1, int(e.nAtt))
		e.nAtt++
	} else {
		// The oldest attempt gives way: its answer is long overdue. The
		// attempts stay in sending order (take and the tests read them
		// so), so every one moves down and is linked anew.
		for i := range e.att[:e.nAtt] {
			p.unlinkSock(s-1, i)
		}
		copy(e.att[:], e.att[1:])
		e.att[maxAttempts-1] = a
		for i := range e.att[:e.nAtt] {
			p.linkSock(s-1, i)
		}
	}
	return true
}

// match describes the client side of a query taken from the table.
type match struct {
	client, resolver netip.AddrPort
	origID           uint16
	via              via
	fixed            bool // pass-through: the client chose the resolver
	limit            uint16
	start            int64
	rtt              int64 // from the attempt's sending to now
	aliasLen         uint8
	alias            [packet.MaxName]byte
	aliasTTL         uint32
	hasFlip          bool
	flip             [32]byte
	// others are the pool sockets of the query's other attempts: no answer
	// will be taken on them now, so the pool may close them.
	others  [maxAttempts]uint32
	nOthers int
}

// takeResult says what take did with a reply.
type takeResult uint8

const (
	takeNone takeResult = iota // no query waits for this reply (late, forged, garbage)
	takeOK                     // the reply answers the query: m is filled, the query is gone
	takeHeld                   // parallel: a failure answer held back while other upstreams may answer
	takeCase                   // 0x20: the reply's question does not repeat the case sent
)

// take removes and returns the entry for a reply msg, read into q, that
// arrived from upstream up on socket sock (0: a transport without
// per-query sockets). The reply must carry an ID we sent, arrive on an
// attempt of this query (upstream and socket), and repeat the question
// (name compared case-insensitively, both sides lower-cased by the packet
// reader; exactly, when the case was randomised).
func (p *pending) take(q *packet.Question, msg []byte, up int, sock uint32, now int64, m *match) takeResult {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.byID[p.at(q.ID)]
	if s == 0 {
		return takeNone
	}
	e := &p.slots[s-1]
	if e.qtype != q.QType || e.qclass != q.QClass || string(e.name[:e.nameLen]) != string(q.Name()) {
		return takeNone
	}
	at := int64(-1)
	for _, a := range e.att[:e.nAtt] {
		if int(a.up) == up && a.sock == sock {
			at = a.at
		}
	}
	if at < 0 {
		return takeNone
	}
	if e.hasFlip {
		// The name in the reply must be the one sent, byte for byte.
		end := q.End - 4
		if end > len(msg) || end > int(e.qlen) || string(msg[dnsHeaderLen:end]) != string(e.query[dnsHeaderLen:end]) {
			return takeCase
		}
	}
	if e.parallel {
		if rc := q.Flags & 0xf; (rc == rcodeServFail || rc == rcodeRefused) && e.failed|1<<up != e.sent {
			// Another upstream may still give a real answer.
			e.failed |= 1 << up
			return takeHeld
		}
	}
	m.client, m.resolver, m.origID, m.via, m.start, m.limit = e.client, e.resolver, e.origID, e.via, e.start, e.limit
	m.fixed = e.fixed
	m.rtt = now - at
	m.aliasLen, m.aliasTTL = e.aliasLen, e.aliasTTL
	if e.aliasLen > 0 {
		copy(m.alias[:], e.alias[:e.aliasLen])
	}
	m.hasFlip = e.hasFlip
	if e.hasFlip {
		m.flip = e.flip
	}
	m.nOthers = 0
	for _, a := range e.att[:e.nAtt] {
		if a.sock != 0 && a.sock != sock {
			m.others[m.nOthers] = a.sock
			m.nOthers++
		}
	}
	p.release(s - 1)
	return takeOK
}

// release frees slot s; p.mu must be held.
func (p *pending) release(s int32) {
	e := &p.slots[s]
	p.byID[p.at(e.id)] = 0
	p.heapRemove(e.hpos)
	for i := range e.att[:e.nAtt] {
		p.unlinkSock(s, i)
	}
	if p.clients != nil {
		p.clients.releaseOf(e.cb)
	}
	for m := e.sent; m != 0; m &= m - 1 {
		p.inflight[bits.TrailingZeros32(m)].Add(-1)
	}
	e.used = false
	p.free = append(p.free, s)
	p.n--
}

// expired is a query whose attempt ran out, copied out of the table so that
// the sweeper can send it without holding the lock.
type expired struct {
	retry    bool  // true: send query to upstream up; false: answer SERVFAIL
	up       uint8 // the upstream of the next attempt
	prev     uint8 // the upstream whose attempt ran out
	id       uint16
	via      via
	fixed    bool // pass-through: the client chose the resolver
	client   netip.AddrPort
	resolver netip.AddrPort
	origID   uint16
	start    int64
	aliasLen uint8
	alias    [packet.MaxName]byte
	hasFlip  bool
	flip     [32]byte
	qlen     uint16
	query    [MaxQuery]byte
}

// sweep collects up to len(out) queries whose attempt deadline has passed
// (popped from the deadline heap: the cost is that of what expired, not of
// the table), and returns how many it filled; rt gives the upstreams of
// each query's group, which unfixed queries cycle through. A query still
// within its overall deadline moves to the next upstream (cycling) and
// stays in the table with its next deadline; one past it, or refused
// (expedited) after every upstream had it, is removed and reported for
// SERVFAIL. done is false when out filled up before the expired ran out:
// call again.
func (p *pending) sweep(now, perTry int64, rt *routing, out []expired) (n int, done bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.heap) > 0 {
		slot := p.heap[0]
		e := &p.slots[slot]
		if e.deadline > now {
			return n, true
		}
		if n == len(out) {
			return n, false
		}
		x := &out[n]
		n++
		x.client, x.resolver, x.origID, x.via, x.prev, x.start, x.id = e.client, e.resolver, e.origID, e.via, e.up, e.start, e.id
		x.fixed = e.fixed
		x.qlen = uint16(copy(x.query[:], e.query[:e.qlen]))
		x.aliasLen = uint8(copy(x.alias[:], e.alias[:e.aliasLen]))
		x.hasFlip = e.hasFlip
		if e.hasFlip {
			x.flip = e.flip
		}
		if !e.fixed {
			// The routing may have changed since: a retry goes where
			// the name is routed now.
			e.group = rt.groupFor(e.name[:e.nameLen])
		}
		ups := rt.group(e.group)
		all := ups.mask
		if e.fixed || len(ups.idx) == 0 {
			all = e.sent
		}
		if now >= e.final || perTry <= 0 || (e.failed != 0 && e.failed&all == all) {
			// Out of time, or refused by every upstream: SERVFAIL now
			// rather than cycling through dead upstreams.
			x.retry = false
			p.release(slot)
			continue
		}
		if !e.fixed && len(ups.idx) > 0 {
			e.up = uint8(ups.next(int(e.up)))
		}
		if e.sent&(1<<e.up) == 0 {
			e.sent |= 1 << e.up
			p.inflight[e.up].Add(1)
		}
		e.deadline = min(now+perTry, e.final) // later than now: final > now
		p.heapFix(e.hpos)
		x.retry, x.up = true, e.up
	}
	return n, true
}

// close marks the table closed: from now on insert refuses. The engine's
// last sweep comes after it, so that no query is left unanswered.
func (p *pending) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
}

// fail notes that upstream up refused or failed the entry in slot s, and
// ends its current attempt when nothing else can answer it now: a
// parallel query waits for its other upstreams. p.mu is held.
func (p *pending) fail(s int32, up int) {
	e := &p.slots[s]
	e.failed |= 1 << up
	if !e.parallel && int(e.up) == up || e.parallel && e.failed&e.sent == e.sent {
		e.deadline = 0
		p.heapFix(e.hpos)
	}
}

// expediteSock fails the queries with an attempt on upstream up's pool
// socket sock (it got an ICMP refusal), so the next sweep moves them on.
func (p *pending) expediteSock(up int, sock uint32) int {
	if p.inflight[up].Load() == 0 || sock == 0 {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	k := 0
	last := int32(-1) // a query with two attempts on the socket fails once
	for node := p.sockHead[sock&sockMask]; node >= 0; node = p.sockNext[node] {
		s, i := node/maxAttempts, node%maxAttempts
		if a := p.slots[s].att[i]; int(a.up) == up && a.sock == sock && s != last {
			p.fail(s, up)
			last = s
			k++
		}
	}
	return k
}

// expediteID fails the query with upstream ID id on upstream up (-1: its
// current one).
func (p *pending) expediteID(id uint16, up int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.byID[p.at(id)]
	if s == 0 {
		return
	}
	e := &p.slots[s-1]
	if up < 0 {
		up = int(e.up)
	}
	if e.sent&(1<<up) != 0 {
		p.fail(s-1, up)
	}
}

// detach makes the query with upstream ID id a cache refresh: its client
// was answered otherwise (a stale answer), so its answer only goes into
// the cache, and its end sends nothing.
func (p *pending) detach(id uint16) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s := p.byID[p.at(id)]; s != 0 {
		p.slots[s-1].via = viaNone
	}
}

// len returns the number of queries waiting.
func (p *pending) len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

// The deadline heap: p.heap is a binary min-heap of slot indexes by their
// entry's deadline, each entry knowing its position (hpos). p.mu is held.

func (p *pending) heapLess(i, j int) bool {
	return p.slots[p.heap[i]].deadline < p.slots[p.heap[j]].deadline
}

func (p *pending) heapSwap(i, j int) {
	h := p.heap
	h[i], h[j] = h[j], h[i]
	p.slots[h[i]].hpos = int32(i)
	p.slots[h[j]].hpos = int32(j)
}

func (p *pending) heapPush(slot int32) {
	p.slots[slot].hpos = int32(len(p.heap))
	p.heap = append(p.heap, slot)
	p.heapUp(len(p.heap) - 1)
}

// heapRemove takes out the element at position i.
func (p *pending) heapRemove(i int32) {
	last := len(p.heap) - 1
	if int(i) != last {
		p.heapSwap(int(i), last)
	}
	p.heap = p.heap[:last]
	if int(i) != last {
		p.heapFix(i)
	}
}

// heapFix restores the order after the deadline at position i changed.
func (p *pending) heapFix(i int32) {
	if !p.heapDown(int(i)) {
		p.heapUp(int(i))
	}
}

func (p *pending) heapUp(i int) {
	for i > 0 {
		parent := (i - 1) / 2
		if !p.heapLess(i, parent) {
			return
		}
		p.heapSwap(i, parent)
		i = parent
	}
}

// heapDown sinks position i and reports whether it moved.
func (p *pending) heapDown(i int) bool {
	start := i
	for {
		l := 2*i + 1
		if l >= len(p.heap) {
			break
		}
		c := l
		if r := l + 1; r < len(p.heap) && p.heapLess(r, l) {
			c = r
		}
		if !p.heapLess(c, i) {
			break
		}
		p.heapSwap(i, c)
		i = c
	}
	return i > start
}

// The attempt lists by socket bucket. p.mu is held.

// linkSock adds attempt i of slot s to its socket's list (none for a
// transport without per-query sockets).
func (p *pending) linkSock(s int32, i int) {
	sock := p.slots[s].att[i].sock
	if sock == 0 {
		return
	}
	node := s*maxAttempts + int32(i)
	b := sock & sockMask
	head := p.sockHead[b]
	p.sockNext[node], p.sockPrev[node] = head, -1
	if head >= 0 {
		p.sockPrev[head] = node
	}
	p.sockHead[b] = node
}

// unlinkSock takes attempt i of slot s out of its socket's list.
func (p *pending) unlinkSock(s int32, i int) {
	sock := p.slots[s].att[i].sock
	if sock == 0 {
		return
	}
	node := s*maxAttempts + int32(i)
	next, prev := p.sockNext[node], p.sockPrev[node]
	if prev >= 0 {
		p.sockNext[prev] = next
	} else {
		p.sockHead[sock&sockMask] = next
	}
	if next >= 0 {
		p.sockPrev[next] = prev
	}
}

// SPDX-License-Identifier: MIT

package engine

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"sync"

	"github.com/dnstun/dnstun/packet"
)

// MaxQuery is the largest query the engine forwards. 1232 bytes is the EDNS
// buffer size of DNS Flag Day 2020; real queries, even padded (RFC 8467),
// are far smaller. Larger ones are refused rather than stored.
const MaxQuery = 1232

// MaxUpstreams bounds the number of upstreams: each entry remembers the ones
// it was sent to in a 32-bit mask.
const MaxUpstreams = 32

// entry is one forwarded query waiting for its answer.
type entry struct {
	used     bool
	id       uint16 // the ID we sent upstream
	origID   uint16 // the client's ID
	up       uint8  // upstream of the current attempt
	sent     uint32 // upstreams this query was sent to, as a bit mask
	via      via    // where the answer goes
	fixed    bool   // pass-through: every attempt goes to the same upstream
	limit    uint16 // the largest answer the client may receive
	client   netip.AddrPort
	resolver netip.AddrPort // the address the client asked; the answer comes from it
	qtype    uint16
	qclass   uint16
	nameLen  uint8
	name     [packet.MaxName]byte
	deadline int64 // end of the current attempt (engine clock, ns)
	final    int64 // when the client gets SERVFAIL
	start    int64
	// A CNAME rewrite: the client asked for alias (wire format), the query
	// went out for the target; the reply gets a CNAME with aliasTTL.
	aliasLen uint8
	alias    [packet.MaxName]byte
	aliasTTL uint32
	qlen     uint16
	query    [MaxQuery]byte // the query as sent upstream (our ID in it)
}

// pending is the fixed-capacity table of forwarded queries, keyed by a
// random 16-bit upstream ID. It never grows and never allocates after
// newPending.
type pending struct {
	mu    sync.Mutex
	slots []entry
	free  []int32 // stack of free slot indexes
	byID  [1 << 16]int32
	n     int
}

func newPending(capacity int) *pending {
	if capacity < 1 {
		capacity = 1
	}
	if capacity > MaxPendingLimit {
		// Config refuses more; a direct caller gets the limit.
		capacity = MaxPendingLimit
	}
	p := &pending{slots: make([]entry, capacity), free: make([]int32, capacity)}
	for i := range p.free {
		p.free[i] = int32(capacity - 1 - i)
	}
	return p
}

// insert stores the query msg (already checked to be <= MaxQuery, read
// into q) that client asked resolver through from, gives it a fresh random upstream ID, and writes that ID into msg.
// It returns false when the table is full.
func (p *pending) insert(q *packet.Question, msg []byte, client, resolver netip.AddrPort, from via, up int, fixed bool, alias []byte, aliasTTL uint32, now, perTry, total int64) (uint16, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.free) == 0 {
		return 0, false
	}
	slot := p.free[len(p.free)-1]
	p.free = p.free[:len(p.free)-1]
	id := uint16(rand.Uint32())
	for p.byID[id] != 0 {
		id = uint16(rand.Uint32())
	}
	p.byID[id] = slot + 1
	p.n++
	e := &p.slots[slot]
	e.used = true
	e.id = id
	e.origID = q.ID
	e.up = uint8(up)
	e.sent = 1 << up
	e.client = client
	e.resolver = resolver
	e.via = from
	e.fixed = fixed
	e.limit = uint16(packet.ClientLimit(q))
	if from == viaTCP {
		e.limit = packet.StreamLimit
	}
	e.aliasLen = uint8(copy(e.alias[:], alias))
	e.aliasTTL = aliasTTL
	e.qtype, e.qclass = q.QType, q.QClass
	name := q.Name()
	e.nameLen = uint8(copy(e.name[:], name))
	e.start = now
	e.final = now + total
	e.deadline = min(now+perTry, e.final)
	binary.BigEndian.PutUint16(msg, id)
	e.qlen = uint16(copy(e.query[:], msg))
	return id, true
}

// match describes the client side of a query taken from the table.
type match struct {
	client, resolver netip.AddrPort
	origID           uint16
	via              via
	limit            uint16
	start            int64
	aliasLen         uint8
	alias            [packet.MaxName]byte
	aliasTTL         uint32
}

// take removes and returns the entry for a reply with question q that
// arrived from upstream up. The reply must carry an ID we sent, come from an
// upstream this query was sent to, and repeat the question (name compared
// case-insensitively: both sides are lower-cased by the packet reader, as
// servers may canonicalise the case).
func (p *pending) take(q *packet.Question, up int, m *match) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.byID[q.ID]
	if s == 0 {
		return false
	}
	e := &p.slots[s-1]
	if e.sent&(1<<up) == 0 || e.qtype != q.QType || e.qclass != q.QClass || string(e.name[:e.nameLen]) != string(q.Name()) {
		return false
	}
	m.client, m.resolver, m.origID, m.via, m.start, m.limit = e.client, e.resolver, e.origID, e.via, e.start, e.limit
	m.aliasLen, m.aliasTTL = e.aliasLen, e.aliasTTL
	if e.aliasLen > 0 {
		copy(m.alias[:], e.alias[:e.aliasLen])
	}
	p.release(s - 1)
	return true
}

// release frees slot s; p.mu must be held.
func (p *pending) release(s int32) {
	e := &p.slots[s]
	p.byID[e.id] = 0
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
	via      via
	client   netip.AddrPort
	resolver netip.AddrPort
	origID   uint16
	start    int64
	aliasLen uint8
	alias    [packet.MaxName]byte
	qlen     uint16
	query    [MaxQuery]byte
}

// sweep collects up to len(out) queries (ups is the list of configured
// upstreams that unfixed queries cycle through) whose attempt deadline has passed,
// starting at slot *pos, and returns how many it filled. A query still
// within its overall deadline moves to the next upstream (cycling) and stays
// in the table; one past it, or refused (expedited) after every upstream
// had it, is removed and reported for SERVFAIL. *pos
// advances so that successive calls cover the whole table; it wraps to 0
// when the scan is complete (done=true).
func (p *pending) sweep(now, perTry int64, ups *upList, pos *int, out []expired) (n int, done bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for ; *pos < len(p.slots); *pos++ {
		if n == len(out) {
			return n, false
		}
		e := &p.slots[*pos]
		if !e.used || e.deadline > now {
			continue
		}
		x := &out[n]
		n++
		x.client, x.resolver, x.origID, x.via, x.prev, x.start = e.client, e.resolver, e.origID, e.via, e.up, e.start
		x.qlen = uint16(copy(x.query[:], e.query[:e.qlen]))
		x.aliasLen = uint8(copy(x.alias[:], e.alias[:e.aliasLen]))
		all := ups.mask
		if e.fixed || len(ups.idx) == 0 {
			all = e.sent
		}
		if now >= e.final || (e.deadline == 0 && e.sent&all == all) {
			// Out of time, or refused by every upstream: SERVFAIL now
			// rather than cycling through dead upstreams.
			x.retry = false
			p.release(int32(*pos))
			continue
		}
		if !e.fixed && len(ups.idx) > 0 {
			e.up = uint8(ups.next(int(e.up)))
		}
		e.sent |= 1 << e.up
		e.deadline = min(now+perTry, e.final)
		x.retry, x.up = true, e.up
	}
	*pos = 0
	return n, true
}

// expedite ends the current attempt of every query waiting on upstream up,
// so the next sweep moves them on at once (the upstream refused them).
func (p *pending) expedite(up int) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	k := 0
	for i := range p.slots {
		e := &p.slots[i]
		if e.used && int(e.up) == up {
			e.deadline = 0
			k++
		}
	}
	return k
}

// expediteID ends the current attempt of the query with upstream ID id.
func (p *pending) expediteID(id uint16) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s := p.byID[id]; s != 0 {
		p.slots[s-1].deadline = 0
	}
}

// len returns the number of queries waiting.
func (p *pending) len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

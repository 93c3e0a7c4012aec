// SPDX-License-Identifier: MIT

package engine

import (
	"math/rand/v2"
	"net/netip"
	"sync/atomic"
)

// Fairness between clients (a client is a source address): no client may
// take more than its share of the engine.
//
//   - Its share of the pending table: a client may have at most
//     MaxPending/ClientShareDiv forwarded queries waiting; more are
//     answered REFUSED at once (counted client_full). One client flooding
//     names whose upstream does not answer so fills its share, not the
//     table, and the other clients keep being forwarded.
//   - Its rate (Config.ClientRate, queries a second, with a burst of one
//     second's worth): queries beyond it are answered REFUSED at once
//     (counted rate_limited), before they are decided. REFUSED rather than
//     silence: a legitimate client that bursts learns at once and is not
//     left waiting for a timeout; the answer is no larger than the query,
//     so a forged source gains no amplification.
//
// Both are kept in a fixed table of counters indexed by a keyed hash of
// the address, so that they cost no allocation and no lock; two addresses
// that share a counter (one chance in clientBuckets per pair) share a limit.

// ClientShareDiv divides MaxPending into the most queries one client may
// have waiting.
const ClientShareDiv = 4

// clientBuckets is the size of the counter tables.
const clientBuckets = 8192

// clients holds the per-client counters.
type clients struct {
	seed    uint64
	rate    int64                        // queries a second; 0: no rate limit
	share   int32                        // most queries waiting per client
	buckets [clientBuckets]atomic.Uint64 // token buckets, packed (see take)
	waiting [clientBuckets]atomic.Int32  // forwarded queries waiting, per client
}

func newClients(rate, maxPending int) *clients {
	return &clients{seed: rand.Uint64() | 1, rate: int64(rate), share: int32(max(maxPending/ClientShareDiv, 1))}
}

// bucket is the counter index of address a: an IPv6 client by its /64,
// since a host picks addresses within its /64 freely (RFC 8981), and would
// otherwise get a fresh share and rate with each.
func (c *clients) bucket(a netip.Addr) int {
	b := a.As16()
	if a.Is6() && !a.Is4In6() {
		clear(b[8:])
	}
	h := c.seed
	for i := 0; i < 16; i += 8 {
		v := uint64(b[i]) | uint64(b[i+1])<<8 | uint64(b[i+2])<<16 | uint64(b[i+3])<<24 |
			uint64(b[i+4])<<32 | uint64(b[i+5])<<40 | uint64(b[i+6])<<48 | uint64(b[i+7])<<56
		h ^= v
		h *= 0x9e3779b97f4a7c15
		h ^= h >> 29
	}
	return int(h & (clientBuckets - 1))
}

// The token bucket of a client is one word: the time of its last update in
// milliseconds of the engine clock (high 36 bits) and its tokens in
// thousandths of a query (low 28 bits, so a burst of up to 268,000).
const (
	tokenBits = 28
	tokenMask = 1<<tokenBits - 1
)

// allow takes one query from the token bucket of the client at bucket i at
// engine time now (ns), and reports whether it was within the rate.
func (c *clients) allow(i int, now int64) bool {
	if c.rate <= 0 {
		return true
	}
	capacity := min(c.rate*1000, tokenMask) // one second's worth
	ms := now / 1e6
	b := &c.buckets[i]
	for {
		old := b.Load()
		last, tokens := int64(old>>tokenBits), int64(old&tokenMask)
		switch d := ms - last; {
		case old == 0:
			tokens = capacity // a client never seen
		case d > 0:
			tokens = min(tokens+d*c.rate, capacity) // rate/s = rate thousandths a ms
		case d < -(1 << 34):
			tokens = capacity // the clock wrapped past 36 bits of ms (2.2 years)
		case d < 0:
			// Another goroutine stored a later tick of the coarse clock
			// first: no refill, and the later time stays.
			ms = last
		}
		ok := tokens >= 1000
		if ok {
			tokens -= 1000
		}
		nw := uint64(ms)<<tokenBits | uint64(tokens)
		if nw == 0 {
			nw = 1 // 0 means "never seen"
		}
		if b.CompareAndSwap(old, nw) {
			return ok
		}
	}
}

// hold counts a forwarded query of the client at bucket i as waiting, if
// the client is within its share of the table; release undoes it.
func (c *clients) hold(i int) bool {
	w := &c.waiting[i]
	if w.Add(1) > c.share {
		w.Add(-1)
		return false
	}
	return true
}

func (c *clients) release(i int) { c.waiting[i].Add(-1) }

// releaseOf releases the waiting query of bucket cb, if any (-1: none).
func (c *clients) releaseOf(cb int32) {
	if cb >= 0 {
		c.release(int(cb))
	}
}

// SPDX-License-Identifier: MIT

package attrib

import (
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
	"sync"
	"sync/atomic"
)

// ways is the number of entries of one bucket: a key lives in one bucket
// and may take any of its slots.
const ways = 4

// stripes of the hot-path counters, so that goroutines counting hits on
// different sockets do not share a cache line.
const stripes = 16

// entry is one cached lookup; immutable once published, except the
// refreshing flag.
type entry struct {
	key     Key
	owner   *Owner // nil: no owner found (a negative entry)
	stored  int64  // Table.now() when resolved
	refresh int64  // after it, Run looks the key up again
	expires int64  // after it, Lookup misses
	// refreshing is set by the first hit past refresh, which queues the
	// refresh, so that later hits do not queue it again.
	refreshing atomic.Bool
}

type bucket struct {
	slots [ways]atomic.Pointer[entry]
}

type stripe struct {
	hits, misses, requests, drops atomic.Uint64
	_                             [64 - 4*8]byte
}

// cache is a set-associative table of entries: readers load atomic
// pointers (no lock, no allocation); writers take mu and replace a slot.
// Its size is fixed at init, so it never grows.
type cache struct {
	buckets []bucket
	mask    uint64
	seed    uint64
	mu      sync.Mutex // serializes put
	stripes [stripes]stripe
}

func (c *cache) init(entries int) {
	n := uint64(1)
	for n*ways < uint64(entries) {
		n <<= 1
	}
	c.buckets = make([]bucket, n)
	c.mask = n - 1
	c.seed = rand.Uint64()
}

// hash mixes the key's local address, local port, remote port and
// protocol with the table's random seed (one multiply-fold, wyhash's
// mum). The remote address is left out: it is one of a few resolvers,
// and get compares whole keys.
func (c *cache) hash(k Key) uint64 {
	l := k.Local.Addr().As16()
	ports := uint64(k.Local.Port())<<32 | uint64(k.Remote.Port())<<16 | uint64(k.Proto)
	return mix(binary.LittleEndian.Uint64(l[:8])^c.seed, binary.LittleEndian.Uint64(l[8:])^ports)
}

func mix(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a^0xa0761d6478bd642f, b)
	return hi ^ lo
}

func (c *cache) counters(h uint64) *stripe { return &c.stripes[h>>60] }

func (c *cache) get(h uint64, k Key) *entry {
	b := &c.buckets[h&c.mask]
	for i := range b.slots {
		if e := b.slots[i].Load(); e != nil && e.key == k {
			return e
		}
	}
	return nil
}

// put stores e for k: over k's old entry, else in a free slot, else over
// the bucket's oldest entry.
func (c *cache) put(k Key, e *entry) {
	b := &c.buckets[c.hash(k)&c.mask]
	c.mu.Lock()
	defer c.mu.Unlock()
	victim := -1
	var oldest int64
	for i := range b.slots {
		old := b.slots[i].Load()
		switch {
		case old == nil:
			if victim < 0 || b.slots[victim].Load() != nil {
				victim = i
			}
		case old.key == k:
			b.slots[i].Store(e)
			return
		case victim < 0 || (b.slots[victim].Load() != nil && old.stored < oldest):
			victim, oldest = i, old.stored
		}
	}
	b.slots[victim].Store(e)
}

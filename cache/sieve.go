// SPDX-License-Identifier: MIT

package cache

// sieve is the eviction queue, SIEVE (Zhang et al., "SIEVE is Simpler
// than LRU", NSDI 2024): entries in insertion order, newest at head; a
// hit only sets the entry's visited bit (an atomic store, no lock, no
// list change); a hand walks from the oldest entry towards the newest,
// clearing visited bits and evicting the first entry without one, and
// stays where it stopped. One-off names never get the bit and leave
// first, so a scan does not flush the popular names. The shard's mutex
// guards the queue.
type sieve struct {
	head, tail, hand *entry
}

// push adds e as the newest entry.
func (q *sieve) push(e *entry) {
	e.prev, e.next = nil, q.head
	if q.head != nil {
		q.head.prev = e
	}
	q.head = e
	if q.tail == nil {
		q.tail = e
	}
}

// unlink removes e from the queue.
func (q *sieve) unlink(e *entry) {
	if q.hand == e {
		q.hand = e.prev
	}
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		q.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		q.tail = e.prev
	}
	e.prev, e.next = nil, nil
}

// victim returns the entry to evict from a queue of n > 0 entries, without
// unlinking it. Readers may set visited bits while the hand moves, so the
// walk is bounded: after two rounds it takes the entry under the hand.
func (q *sieve) victim(n int) *entry {
	o := q.hand
	if o == nil {
		o = q.tail
	}
	for range 2 * n {
		if !o.visited.Load() {
			break
		}
		o.visited.Store(false)
		o = o.prev
		if o == nil {
			o = q.tail
		}
	}
	q.hand = o.prev
	return o
}

// visit records a hit on e; lock-free. The bit is written only when
// unset, so that a hot entry's cache line stays shared between the cores
// reading it.
func (e *entry) visit() {
	if !e.visited.Load() {
		e.visited.Store(true)
	}
}

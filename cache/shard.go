// SPDX-License-Identifier: MIT

package cache

import (
	"bytes"

	"github.com/dnstun/dnstun/packet"
)

func (s *shard) init(budget int) {
	s.budget = budget
	s.table.Store(newTable(minSlots))
	s.bytes = minSlots * slotSize
	s.bytesNow.Store(int64(s.bytes))
}

// find returns the entry of hash h, or nil; lock-free.
func (s *shard) find(h uint64) *entry {
	return s.table.Load().get(h)
}

// insert adds e, replacing the entry of the same hash, and evicts until
// the entries and the table fit the budget. It reports false, changing
// nothing, when e alone would not fit.
func (s *shard) insert(e *entry) bool {
	if e.size+slotsFor(1)*slotSize > s.budget {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.table.Load().get(e.hash); old != nil {
		s.remove(old)
	}
	// Evict until e and the table sized for one more entry fit. Each
	// round removes an entry, so the loop ends after s.live rounds.
	var t *table
	for {
		t = s.table.Load() // remove may have shrunk it
		slots := len(t.slots)
		if s.live+1 > slots*3/4 {
			slots = slotsFor(s.live + 1)
		}
		entries := s.bytes - len(t.slots)*slotSize
		if entries+e.size+slots*slotSize <= s.budget || s.live == 0 {
			if slots != len(t.slots) {
				t = s.resize(slots)
			}
			break
		}
		s.remove(s.q.victim(s.live))
		s.evictions.Add(1)
	}
	t.put(e)
	s.q.push(e)
	s.live++
	s.bytes += e.size
	s.publish()
	return true
}

// remove takes e out of the table and the queue; the caller holds mu. The
// table shrinks when it is an eighth full, so that the slots charged
// follow the entries down.
func (s *shard) remove(e *entry) {
	t := s.table.Load()
	t.del(e)
	s.q.unlink(e)
	s.live--
	s.bytes -= e.size
	if len(t.slots) > minSlots && s.live < len(t.slots)/8 {
		s.resize(slotsFor(s.live))
	}
	s.publish()
}

// resize publishes a table of n slots holding the live entries and
// returns it; the caller holds mu. Readers of the old table go on with it
// safely: it is never written again.
func (s *shard) resize(n int) *table {
	old := s.table.Load()
	t := newTable(n)
	for e := s.q.head; e != nil; e = e.next {
		t.put(e)
	}
	s.bytes += (n - len(old.slots)) * slotSize
	s.table.Store(t)
	return t
}

// publish copies the shard's size to the counters Stats reads; the
// caller holds mu. bytes is within the budget at every call, so the sum
// Stats makes is within MaxBytes at every moment.
func (s *shard) publish() {
	s.entries.Store(int64(s.live))
	s.bytesNow.Store(int64(s.bytes))
}

func (s *shard) flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.q = sieve{}
	s.live = 0
	s.table.Store(newTable(minSlots))
	s.bytes = minSlots * slotSize
	s.publish()
}

// flushName removes the entries whose name is name or ends in "."+name
// (every name when name is empty) and returns how many.
func (s *shard) flushName(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	var q packet.Question
	n := 0
	// Bounded by the entries: each step moves to an older one.
	for e := s.q.head; e != nil; {
		next := e.next
		// The stored question was read strictly by Store; reading it
		// again gives its lower-cased dotted name.
		if packet.ReadReply(e.wire[:e.qEnd], &q) == packet.OK && under(q.Name(), name) {
			s.remove(e)
			n++
		}
		e = next
	}
	return n
}

// under reports whether name is zone or below it; zone "" is the root.
func under(name []byte, zone string) bool {
	if zone == "" {
		return true
	}
	if !bytes.HasSuffix(name, []byte(zone)) {
		return false
	}
	rest := len(name) - len(zone)
	return rest == 0 || name[rest-1] == '.'
}

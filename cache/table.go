// SPDX-License-Identifier: MIT

package cache

import "sync/atomic"

// table is an open-addressing hash table of entries keyed by their 64-bit
// hash, with linear probing (Knuth, TAOCP 6.4, algorithm L) and deletion
// by backward shift (algorithm R), so there are no tombstones. Readers
// probe it without a lock through atomic slots; writers hold the shard's
// mutex, and grow or shrink it by building a new table and publishing it
// with one atomic store.
//
// A reader racing a deletion can miss an entry that a backward shift
// moves behind it. That costs a forwarded query, never a wrong answer:
// every hit is checked against the whole key.
type table struct {
	mask  uint64
	slots []atomic.Pointer[entry]
}

const (
	minSlots = 16
	slotSize = 8 // bytes charged per slot: one pointer
)

func newTable(n int) *table {
	return &table{mask: uint64(n - 1), slots: make([]atomic.Pointer[entry], n)}
}

// slotsFor is the table size for n entries: a power of two at least
// minSlots, at most three quarters full, so every probe ends at an empty
// slot.
func slotsFor(n int) int {
	s := minSlots
	for s*3/4 < n {
		s *= 2
	}
	return s
}

// get returns the entry with hash h, or nil. The probe ends at an empty
// slot, and after len(slots) steps at the latest.
func (t *table) get(h uint64) *entry {
	i := h & t.mask
	for range t.slots {
		e := t.slots[i].Load()
		if e == nil {
			return nil
		}
		if e.hash == h {
			return e
		}
		i = (i + 1) & t.mask
	}
	return nil
}

// put stores e and returns the entry of the same hash it replaced, if
// any. The table must have a free slot. Writers only.
func (t *table) put(e *entry) *entry {
	i := e.hash & t.mask
	for range t.slots {
		old := t.slots[i].Load()
		if old == nil || old.hash == e.hash {
			t.slots[i].Store(e)
			return old
		}
		i = (i + 1) & t.mask
	}
	panic("cache: put into a full table") // unreachable: the shard grows it first
}

// del removes e, if present, and closes the gap by moving later entries
// of the probe run back (algorithm R). Writers only.
func (t *table) del(e *entry) {
	i := e.hash & t.mask
	for range t.slots {
		x := t.slots[i].Load()
		if x == nil {
			return
		}
		if x == e {
			break
		}
		i = (i + 1) & t.mask
	}
	if t.slots[i].Load() != e {
		return
	}
	j := i
	for range t.slots {
		j = (j + 1) & t.mask
		x := t.slots[j].Load()
		if x == nil {
			break
		}
		// x stays if its home slot k lies cyclically in (i, j]: moving
		// it to i would put it before its home, where probes never look.
		k := x.hash & t.mask
		if i <= j {
			if i < k && k <= j {
				continue
			}
		} else if i < k || k <= j {
			continue
		}
		// Store the copy first, so that a reader finds x at one place or
		// the other most of the time.
		t.slots[i].Store(x)
		i = j
	}
	t.slots[i].Store(nil)
}

// SPDX-License-Identifier: MIT

package cache

import (
	"math/rand/v2"
	"testing"
)

// TestTableModel runs random puts and deletes on a small table against a
// map. The hashes share few home slots, so probe runs are long and wrap
// around the end, which is where backward-shift deletion goes wrong if it
// does.
func TestTableModel(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		tb := newTable(16)
		model := make(map[uint64]*entry)
		for step := range 400 {
			// Homes 13..15 and 0..1, so runs cross the end of the table;
			// the high bits tell the hashes apart.
			h := uint64(r.IntN(40))<<32 | uint64((13+r.IntN(5))%16)
			if old, ok := model[h]; ok && r.IntN(2) == 0 {
				tb.del(old)
				delete(model, h)
			} else if len(model) < 12 || ok {
				e := &entry{hash: h}
				if got := tb.put(e); got != model[h] {
					t.Fatalf("round %d step %d: put replaced %p, want %p", round, step, got, model[h])
				}
				model[h] = e
			}
			n := 0
			for i := range tb.slots {
				if tb.slots[i].Load() != nil {
					n++
				}
			}
			if n != len(model) {
				t.Fatalf("round %d step %d: %d slots used, %d entries", round, step, n, len(model))
			}
			for h, e := range model {
				if got := tb.get(h); got != e {
					t.Fatalf("round %d step %d: get(%#x) = %p, want %p", round, step, h, got, e)
				}
			}
			if got := tb.get(uint64(99)<<32 | 14); got != nil {
				t.Fatalf("found an entry never put")
			}
		}
	}
}

func TestSlotsFor(t *testing.T) {
	for _, tc := range []struct{ n, want int }{{0, 16}, {12, 16}, {13, 32}, {24, 32}, {25, 64}, {3 << 20, 4 << 20}} {
		if got := slotsFor(tc.n); got != tc.want {
			t.Errorf("slotsFor(%d) = %d, want %d", tc.n, got, tc.want)
		}
	}
}

// TestSieveEvictsUnvisited checks SIEVE's rule: the hand passes visited
// entries (clearing their bit) and evicts the oldest unvisited one, and
// stays where it stopped.
func TestSieveEvictsUnvisited(t *testing.T) {
	var q sieve
	es := make([]*entry, 5)
	for i := range es {
		es[i] = &entry{hash: uint64(i)}
		q.push(es[i]) // es[0] oldest
	}
	es[0].visited.Store(true)
	es[1].visited.Store(true)
	v := q.victim(5)
	if v != es[2] || es[0].visited.Load() || es[1].visited.Load() {
		t.Fatalf("victim %d, visited bits %v %v; want 2 and both cleared", v.hash, es[0].visited.Load(), es[1].visited.Load())
	}
	q.unlink(v)
	// The hand is at 3 now: 0 and 1 are not looked at before 3 and 4.
	if v := q.victim(4); v != es[3] {
		t.Fatalf("second victim %d, want 3", v.hash)
	}
	q.unlink(es[3])
	es[4].visited.Store(true)
	if v := q.victim(3); v != es[0] {
		t.Fatalf("third victim %d, want 0 (the hand wrapped past 4)", v.hash)
	}
	// Readers setting every bit all the time cannot keep the hand going
	// for ever: after two rounds it takes what it has.
	for _, e := range es {
		e.visited.Store(true)
	}
	if v := q.victim(3); v == nil {
		t.Fatal("no victim with every bit set")
	}
}

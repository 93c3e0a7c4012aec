// SPDX-License-Identifier: MIT

package engine

import "testing"

// BenchmarkCount is the counters a blocked query moves (packets, blocked):
// on one goroutine; with -cpu 2 on two at once in one shared lane (every
// counter's cache line written from two cores), and in a lane each, as the
// readers and the receiver count (issue 17).
func BenchmarkCount(b *testing.B) {
	b.Run("one", func(b *testing.B) {
		var e Engine
		b.ReportAllocs()
		for b.Loop() {
			e.count(Packets)
			e.count(Blocked)
		}
	})
	b.Run("shared", func(b *testing.B) {
		var e Engine
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				e.count(Packets)
				e.count(Blocked)
			}
		})
	})
	b.Run("lanes", func(b *testing.B) {
		var e Engine
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			l := e.stats.newLane()
			for pb.Next() {
				l.add(Packets)
				l.add(Blocked)
			}
		})
	})
}

// TestCountLanes: counts from every lane add up (Stats sums with get).
func TestCountLanes(t *testing.T) {
	var e Engine
	w := &worker{e: &e, lane: e.stats.newLane()}
	for range 3 {
		w.count(Blocked)
	}
	e.count(Blocked)
	for range numLanes + 2 { // past the last lane: they are shared
		e.stats.newLane().add(Blocked)
	}
	if got := e.stats.get(Blocked); got != 3+1+numLanes+2 {
		t.Errorf("blocked %d, want %d", got, 3+1+numLanes+2)
	}
}

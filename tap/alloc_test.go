// SPDX-License-Identifier: MIT

package tap

import (
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// idleTap returns a tap whose writer is not running, so that allocation
// counts (which are process-wide) see Log alone.
func idleTap(t testing.TB, queueLen int) *Tap {
	return newTap(Spec{"file", "unused"}, mustDefaults(t, Config{QueueLen: queueLen}))
}

// TestLogAllocs: Log allocates nothing in steady state, neither when it
// queues a message nor when it drops one.
func TestLogAllocs(t *testing.T) {
	tp := idleTap(t, 4)
	for _, e := range pairs(t, 2) {
		// Queue not full: Log, then the writer's part of the cycle (the
		// slot back to the free list).
		if a := testing.AllocsPerRun(1000, func() { e.log(tp); tp.free <- <-tp.queue }); a != 0 {
			t.Errorf("Log(%v, %v, %v) allocates %v times per call", e.kind, e.proto, e.client, a)
		}
	}
	for range cap(tp.free) {
		<-tp.free
	}
	e := pairs(t, 1)[0]
	if a := testing.AllocsPerRun(1000, func() { e.log(tp) }); a != 0 {
		t.Errorf("Log dropping allocates %v times per call", a)
	}
	if tp.Stats().Dropped < 1000 {
		t.Errorf("dropped %d, want every call while no slot is free", tp.Stats().Dropped)
	}
}

// TestEncodeAllocs: the writer's encoding reuses its message and buffer.
func TestEncodeAllocs(t *testing.T) {
	tp := idleTap(t, 1)
	for _, e := range pairs(t, 4) {
		s := &slot{kind: e.kind, proto: e.proto, client: e.client, server: e.server, msg: e.msg, qtime: e.qtime, rtime: e.rtime}
		if _, err := tp.w.encode(s); err != nil {
			t.Fatal(err)
		}
		if a := testing.AllocsPerRun(100, func() { tp.w.encode(s) }); a != 0 {
			t.Errorf("encode(%v, %v) allocates %v times", e.kind, e.client, a)
		}
	}
}

func BenchmarkLog(b *testing.B) {
	tp := idleTap(b, 16)
	e := pairs(b, 1)[1]
	b.ReportAllocs()
	for b.Loop() {
		e.log(tp)
		tp.free <- <-tp.queue // what the writer does with the slot
	}
}

func BenchmarkLogDropping(b *testing.B) {
	tp := idleTap(b, 1)
	<-tp.free
	e := pairs(b, 1)[1]
	b.ReportAllocs()
	for b.Loop() {
		e.log(tp)
	}
}

// BenchmarkLogParallel: Log from every P while nothing drains the queue
// but the benchmark itself.
func BenchmarkLogParallel(b *testing.B) {
	tp := idleTap(b, 1024)
	e := pairs(b, 1)[1]
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			e.log(tp)
			select {
			case s := <-tp.queue:
				tp.free <- s
			default:
			}
		}
	})
}

// BenchmarkWriterFile measures the messages per second the writer
// sustains to a file: Log waits for a free slot instead of dropping.
// Its allocations are the writer's (the framestream library's).
func BenchmarkWriterFile(b *testing.B) {
	path := filepath.Join(b.TempDir(), "bench.dnstap")
	tp, err := Open("file:"+path, Config{Logger: quietLogger})
	if err != nil {
		b.Fatal(err)
	}
	entries := pairs(b, 8)
	b.ReportAllocs()
	start := time.Now()
	i := 0
	for b.Loop() {
		for len(tp.free) == 0 {
			runtime.Gosched()
		}
		entries[i%len(entries)].log(tp)
		i++
	}
	if err := tp.Close(); err != nil {
		b.Fatal(err)
	}
	el := time.Since(start)
	st := tp.Stats()
	if st.Sent != uint64(i) {
		b.Fatalf("sent %d of %d: %+v", st.Sent, i, st)
	}
	b.ReportMetric(float64(st.Sent)/el.Seconds(), "msgs/s")
}

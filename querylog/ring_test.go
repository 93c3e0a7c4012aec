// SPDX-License-Identifier: MIT

package querylog

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"reflect"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/dnstun/dnstun/attrib"
)

func entry(i int) Entry {
	e := Entry{
		Time:          time.Date(2026, 1, 2, 3, 4, 5, i*1000, time.UTC).UnixNano(),
		Client:        AddrFrom(netip.MustParseAddrPort("198.19.53.1:40000")),
		Upstream:      AddrFrom(netip.MustParseAddrPort("[2001:db8::1]:53")),
		LatencyMicros: uint32(i),
		QType:         28,
		Rcode:         3,
		Decision:      Forwarded,
	}
	e.SetName(fmt.Appendf(nil, "q%d.example.com", i))
	return e
}

func TestSnapshot(t *testing.T) {
	r := New(4)
	if got := r.Snapshot(10); len(got) != 0 {
		t.Errorf("empty ring: %v", got)
	}
	for i := 0; i < 3; i++ {
		e := entry(i)
		r.Add(&e)
	}
	got := r.Snapshot(10)
	if len(got) != 3 || got[0].Name != "q0.example.com" || got[2].Name != "q2.example.com" {
		t.Fatalf("got %+v", got)
	}
	want := Record{
		Seq: 1, Proto: "udp",
		Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Client: "198.19.53.1:40000", Name: "q0.example.com",
		Type: "AAAA", Decision: "forward", Rcode: "NXDOMAIN", Upstream: "[2001:db8::1]:53", LatencyMicros: 0,
	}
	if !reflect.DeepEqual(got[0], want) {
		t.Errorf("got %+v\nwant %+v", got[0], want)
	}
	// Wrap: 10 added into 4 slots keeps 6..9.
	for i := 3; i < 10; i++ {
		e := entry(i)
		r.Add(&e)
	}
	got = r.Snapshot(2)
	if len(got) != 2 || got[0].Name != "q8.example.com" || got[1].Name != "q9.example.com" {
		t.Errorf("last 2: %+v", got)
	}
	if got = r.Snapshot(100); len(got) != 4 || got[0].Name != "q6.example.com" {
		t.Errorf("all: %+v", got)
	}
	if r.Added() != 10 || r.Len() != 4 {
		t.Errorf("Added %d Len %d", r.Added(), r.Len())
	}
}

// TestRecordJSON pins the wire form of a Record: it is the control
// protocol's QueryLogEntry (control/PROTOCOL.md), so a renamed field or tag
// breaks every client.
func TestRecordJSON(t *testing.T) {
	for _, tc := range []struct {
		name string
		e    Entry
		want string
	}{
		{"forwarded", entry(7),
			`{"seq":0,"time":"2026-01-02T03:04:05.000007Z","client":"198.19.53.1:40000","proto":"udp","name":"q7.example.com","type":"AAAA","decision":"forward","rcode":"NXDOMAIN","upstream":"[2001:db8::1]:53","latency_us":7}`},
		{"blocked, no upstream", func() Entry {
			e := entry(0)
			e.Upstream, e.Decision, e.QType, e.Rcode = Addr{}, Blocked, 1, 3
			return e
		}(),
			`{"seq":0,"time":"2026-01-02T03:04:05Z","client":"198.19.53.1:40000","proto":"udp","name":"q0.example.com","type":"A","decision":"block","rcode":"NXDOMAIN","latency_us":0}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := json.Marshal(tc.e.Export())
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tc.want {
				t.Errorf("got  %s\nwant %s", b, tc.want)
			}
			var back Record
			if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, tc.e.Export()) {
				t.Errorf("round trip: %+v, %v", back, err)
			}
		})
	}
}

func TestEntryIsFlat(t *testing.T) {
	// No pointers but the owner (immutable, shared with attribution's
	// cache): the struct is a plain value of fixed size, copied without
	// allocating.
	var check func(reflect.Type)
	check = func(tp reflect.Type) {
		switch tp.Kind() {
		case reflect.Struct:
			for i := 0; i < tp.NumField(); i++ {
				check(tp.Field(i).Type)
			}
		case reflect.Array:
			check(tp.Elem())
		case reflect.Bool, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Int64:
		case reflect.Pointer:
			if tp != reflect.TypeFor[*attrib.Owner]() {
				t.Errorf("Entry holds a %v", tp)
			}
		default:
			t.Errorf("Entry holds a %v", tp)
		}
	}
	check(reflect.TypeFor[Entry]())
	if s := unsafe.Sizeof(Entry{}); s > 352 {
		t.Errorf("Entry is %d bytes", s)
	}
	if s := unsafe.Sizeof(slot{}); s%64 != 0 {
		t.Errorf("a slot is %d bytes: not whole cache lines, so writers of consecutive entries share one", s)
	}
}

// TestSlotLayout: the lock, the number and every field a writer always
// sets lie in a slot's first cache line, and the name starts early enough
// in the second that a name of 24 bytes ends there: a writer touches two
// lines of a cold slot (and prefetches those two).
func TestSlotLayout(t *testing.T) {
	var sl slotBody
	e := unsafe.Offsetof(sl.e)
	for name, end := range map[string]uintptr{
		"mu":      unsafe.Offsetof(sl.mu) + unsafe.Sizeof(sl.mu),
		"seq":     unsafe.Offsetof(sl.seq) + unsafe.Sizeof(sl.seq),
		"Time":    e + unsafe.Offsetof(sl.e.Time) + unsafe.Sizeof(sl.e.Time),
		"Owner":   e + unsafe.Offsetof(sl.e.Owner) + unsafe.Sizeof(sl.e.Owner),
		"NameLen": e + unsafe.Offsetof(sl.e.NameLen) + unsafe.Sizeof(sl.e.NameLen),
		"Client":  e + unsafe.Offsetof(sl.e.Client) + unsafe.Sizeof(sl.e.Client),
	} {
		if end > 64 {
			t.Errorf("%s ends at byte %d of its slot, past the first cache line", name, end)
		}
	}
	if end := e + unsafe.Offsetof(sl.e.Name) + 24; end > 128 {
		t.Errorf("a 24-byte name ends at byte %d of its slot, past the second cache line", end)
	}
}

// TestRecordAroundTheRing: writing past the end of the ring again and again
// (the prefetch of a slot ahead wraps around with it) keeps each slot's
// newest entry, in a ring whose size is not a multiple of prefetchAhead.
func TestRecordAroundTheRing(t *testing.T) {
	r := New(prefetchAhead + 3)
	for i := range 5 * r.Len() {
		r.Record(&Q{Time: int64(i + 1), Name: []byte("x.example")})
	}
	got := r.Snapshot(r.Len())
	if len(got) != r.Len() {
		t.Fatalf("%d entries, want %d", len(got), r.Len())
	}
	for i, rec := range got {
		if want := int64(4*r.Len() + i + 1); rec.Time.UnixNano() != want {
			t.Errorf("entry %d: time %d, want %d", i, rec.Time.UnixNano(), want)
		}
	}
}

func TestNames(t *testing.T) {
	long := make([]byte, 300)
	for i := range long {
		long[i] = 'a'
	}
	var e Entry
	e.SetName(long)
	if e.NameLen != 255 {
		t.Errorf("NameLen %d", e.NameLen)
	}
	e.Client, e.QType, e.Rcode, e.Decision = Addr{}, 4242, 9, Decision(77)
	x := e.Export()
	if x.Type != "TYPE4242" || x.Rcode != "RCODE9" || x.Decision != "decision77" || x.Client != "" || x.Upstream != "" {
		t.Errorf("got %+v", x)
	}
	for d := Forwarded; d <= Stale; d++ {
		if d.String() == "" {
			t.Error("unnamed decision")
		}
	}
}

func TestAddAllocs(t *testing.T) {
	r := New(64)
	e := entry(1)
	if n := testing.AllocsPerRun(1000, func() { r.Add(&e) }); n != 0 {
		t.Errorf("Add allocates %v times", n)
	}
	if n := testing.AllocsPerRun(1000, func() { e.SetName([]byte("x.example")) }); n != 0 {
		t.Errorf("SetName allocates %v times", n)
	}
}

// TestConcurrent: one writer, readers in parallel (run with -race).
func TestConcurrent(t *testing.T) {
	r := New(128)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				for _, q := range r.Snapshot(50) {
					if len(q.Name) < 3 || q.Name[0] != 'q' {
						t.Errorf("torn entry %+v", q)
						return
					}
				}
			}
		}()
	}
	for i := 0; i < 20000; i++ {
		e := entry(i)
		r.Add(&e)
	}
	close(stop)
	wg.Wait()
}

func BenchmarkAdd(b *testing.B) {
	r := New(4096)
	e := entry(1)
	b.ReportAllocs()
	for b.Loop() {
		r.Add(&e)
	}
}

// BenchmarkAddWithReader measures Add while a reader snapshots 100
// entries in a loop.
func BenchmarkAddWithReader(b *testing.B) {
	r := New(4096)
	e := entry(1)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
				r.Snapshot(100)
			}
		}
	}()
	b.ReportAllocs()
	for b.Loop() {
		r.Add(&e)
	}
	close(stop)
	<-done
}

func BenchmarkSnapshot100(b *testing.B) {
	r := New(4096)
	for i := 0; i < 4096; i++ {
		e := entry(i)
		r.Add(&e)
	}
	b.ReportAllocs()
	for b.Loop() {
		r.Snapshot(100)
	}
}

// BenchmarkRecord is one query's entry written by one goroutine; with
// -cpu 2, Parallel has two goroutines writing at once (the reader and the
// receiver on two cores), the shared lock's contention (issue 17).
func BenchmarkRecord(b *testing.B) {
	q := Q{Time: 1, Client: netip.MustParseAddrPort("192.0.2.1:5353"), Name: []byte("www.example.com"), QType: 1}
	b.Run("one", func(b *testing.B) {
		r := New(4096)
		b.ReportAllocs()
		for b.Loop() {
			r.Record(&q)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		r := New(4096)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			q := q
			for pb.Next() {
				r.Record(&q)
			}
		})
	})
}

// TestWritersInParallel: four writers and a follower at once (run with
// -race). Every entry the follower reads is whole (its latency field and
// its name carry the same number, written by the same writer), sequence
// numbers only grow, and what it read plus what it was told it lost
// accounts for every number up to its last.
func TestWritersInParallel(t *testing.T) {
	r := New(64)
	const writers, each = 4, 5000
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				n := w*each + i
				name := fmt.Appendf(nil, "q%d.example.com", n)
				r.Record(&Q{LatencyMicros: uint32(n), Name: name, QType: 1})
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	var last, read, lost uint64
	for finished := false; !finished; {
		select {
		case <-done:
			finished = true // one more read below, after the last write
		default:
		}
		out, l, lo := r.Since(last, 16)
		for _, q := range out {
			if q.Seq <= last {
				t.Fatalf("seq %d after %d", q.Seq, last)
			}
			last = q.Seq
			if q.Name != fmt.Sprintf("q%d.example.com", q.LatencyMicros) {
				t.Fatalf("torn entry %+v", q)
			}
		}
		read += uint64(len(out))
		lost += lo
		last = l
		if finished && l < r.Added() {
			finished = false // the final read was cut at 16
		}
	}
	if read+lost != last || last != writers*each {
		t.Errorf("read %d + lost %d, last %d: want them to add up to %d", read, lost, last, writers*each)
	}
	t.Logf("%d writers, %d entries: the follower read %d, lost %d", writers, writers*each, read, lost)
}

// TestSinceStopsAtUnwritten: a number taken but not yet written (its
// writer between the add and the slot's lock) ends a read there, so that a
// follower gets it on its next read instead of skipping it; a writer a
// whole ring late leaves the newer entry in its slot.
func TestSinceStopsAtUnwritten(t *testing.T) {
	r := New(4)
	q := func(n int) *Q { return &Q{LatencyMicros: uint32(n), Name: fmt.Appendf(nil, "q%d", n)} }
	r.Record(q(1))
	slow := r.next.Add(1) // number 2, not written yet
	r.Record(q(3))
	out, last, lost := r.Since(0, 10)
	if len(out) != 1 || out[0].Seq != 1 || last != 1 || lost != 0 {
		t.Fatalf("with number 2 unwritten: %+v last %d lost %d, want entry 1 only", out, last, lost)
	}
	r.record(slow, q(2))
	out, last, _ = r.Since(last, 10)
	if len(out) != 2 || out[0].Name != "q2" || out[1].Name != "q3" || last != 3 {
		t.Fatalf("after number 2 was written: %+v last %d", out, last)
	}
	late := r.next.Add(1) // number 4, its writer descheduled...
	for n := 5; n <= 8; n++ {
		r.Record(q(n)) // ...while 8 takes its slot
	}
	r.record(late, q(4))
	out, _, lost = r.Since(3, 10)
	if len(out) != 4 || out[0].Name != "q5" || out[3].Name != "q8" || lost != 1 {
		t.Errorf("after a late writer: %+v lost %d, want 5..8 and number 4 lost", out, lost)
	}
}

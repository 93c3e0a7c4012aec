// SPDX-License-Identifier: MIT

package attrib

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeResolver answers from a map: port -> owner; other ports are not
// found. It counts its lookups and can be slowed down or blocked.
type fakeResolver struct {
	mu     sync.Mutex
	owners map[uint16]*Owner
	calls  atomic.Int64
	block  chan struct{} // if set, resolve waits for it
}

func (f *fakeResolver) resolve(ctx context.Context, k Key) (*Owner, error) {
	f.calls.Add(1)
	if f.block != nil {
		select {
		case <-f.block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if o := f.owners[k.Local.Port()]; o != nil {
		return o, nil
	}
	return nil, fmt.Errorf("%w: fake", ErrNotFound)
}

func (f *fakeResolver) set(port uint16, o *Owner) {
	f.mu.Lock()
	f.owners[port] = o
	f.mu.Unlock()
}

func (f *fakeResolver) close() {}

func fakeTable(cfg Config) (*Table, *fakeResolver) {
	f := &fakeResolver{owners: map[uint16]*Owner{}}
	return newTable(cfg, func() (resolver, error) { return f, nil }), f
}

func key(port uint16) Key {
	return Key{Proto: ProtoUDP, Local: netip.AddrPortFrom(netip.MustParseAddr("10.0.0.2"), port), Remote: netip.MustParseAddrPort("10.0.0.1:53")}
}

func TestLookupHitMissExpiry(t *testing.T) {
	tab, f := fakeTable(Config{TTL: 200 * time.Millisecond, NegativeTTL: 100 * time.Millisecond})
	o := &Owner{PID: 42, Name: "curl"}
	f.set(1000, o)
	ctx := context.Background()
	if tab.Lookup(key(1000)) != nil {
		t.Fatal("hit on an empty table")
	}
	got, err := tab.Resolve(ctx, key(1000))
	if err != nil || got != o {
		t.Fatalf("Resolve: %v, %v", got, err)
	}
	if tab.Lookup(key(1000)) != o {
		t.Fatal("no hit after Resolve")
	}
	if _, err := tab.Resolve(ctx, key(1001)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown port: %v", err)
	}
	if tab.Lookup(key(1001)) != nil {
		t.Fatal("a negative entry hits")
	}
	if _, err := tab.Resolve(ctx, key(1001)); !errors.Is(err, ErrNotFound) || f.calls.Load() != 2 {
		t.Fatalf("negative entry not used: %v, %d calls", err, f.calls.Load())
	}
	time.Sleep(250 * time.Millisecond)
	if tab.Lookup(key(1000)) != nil {
		t.Fatal("hit after TTL")
	}
	s := tab.Stats()
	if s.Hits != 1 || s.Misses != 3 || s.Lookups != 2 || s.Found != 1 || s.NotFound != 1 {
		t.Errorf("stats %+v", s)
	}
}

func TestResolveBadKey(t *testing.T) {
	tab, _ := fakeTable(Config{})
	for _, k := range []Key{{}, {Proto: 1, Local: netip.MustParseAddrPort("1.2.3.4:5")}, {Proto: ProtoUDP, Local: netip.MustParseAddrPort("1.2.3.4:0")}} {
		if _, err := tab.Resolve(context.Background(), k); err == nil || errors.Is(err, ErrNotFound) {
			t.Errorf("%v: %v, want a key error", k, err)
		}
	}
}

func TestRequestRun(t *testing.T) {
	var resolved atomic.Int64
	tab, f := fakeTable(Config{OnResolved: func(k Key, o *Owner) { resolved.Add(1) }})
	f.set(7, &Owner{PID: 7})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { tab.Run(ctx); close(done) }()
	for range 10 { // duplicates are looked up once
		if !tab.Request(key(7)) {
			t.Fatal("dropped")
		}
	}
	if o := tab.Wait(key(7), 2*time.Second); o == nil || o.PID != 7 {
		t.Fatalf("Wait: %v", o)
	}
	if o := tab.Lookup(key(7)); o == nil || o.PID != 7 {
		t.Fatalf("Lookup: %v", o)
	}
	if o := tab.Wait(key(8), 2*time.Second); o != nil {
		t.Fatalf("Wait on an unknown socket: %v", o)
	}
	if n := resolved.Load(); n < 2 || n > 11 {
		t.Errorf("OnResolved called %d times", n)
	}
	cancel()
	<-done
}

// TestRefresh: a hit past TTL/2 queues one refresh, which sees the new
// owner.
func TestRefresh(t *testing.T) {
	tab, f := fakeTable(Config{TTL: 200 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go tab.Run(ctx)
	f.set(9, &Owner{PID: 1})
	if o, err := tab.Resolve(ctx, key(9)); err != nil || o.PID != 1 {
		t.Fatal(o, err)
	}
	f.set(9, &Owner{PID: 2}) // the port changed hands
	time.Sleep(110 * time.Millisecond)
	for range 100 {
		tab.Lookup(key(9))
	}
	if r := tab.Stats().Requests; r != 1 {
		t.Errorf("%d refresh requests, want 1", r)
	}
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		if o := tab.Lookup(key(9)); o != nil && o.PID == 2 {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("refresh did not replace the owner")
}

func TestQueueBound(t *testing.T) {
	tab, _ := fakeTable(Config{QueueLen: 4})
	for i := range 4 {
		if !tab.Request(key(uint16(i + 1))) {
			t.Fatalf("request %d dropped", i)
		}
	}
	if tab.Request(key(99)) {
		t.Fatal("request beyond QueueLen accepted")
	}
	if s := tab.Stats(); s.Requests != 4 || s.Drops != 1 {
		t.Errorf("stats %+v", s)
	}
}

// TestResolveTimeout: a stuck lookup ends at Config.Timeout; callers
// beyond Config.Resolvers wait for a resolver within their context.
func TestResolveTimeout(t *testing.T) {
	tab, f := fakeTable(Config{Timeout: 50 * time.Millisecond, Resolvers: 1})
	f.block = make(chan struct{})
	start := time.Now()
	_, err := tab.Resolve(context.Background(), key(5))
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > time.Second {
		t.Fatalf("%v after %v", err, time.Since(start))
	}
	if s := tab.Stats(); s.Failures != 1 {
		t.Errorf("stats %+v", s)
	}
}

// TestCacheBound: many more sockets than Entries never grow the table;
// the latest entries are kept.
func TestCacheBound(t *testing.T) {
	tab, f := fakeTable(Config{Entries: 64})
	for p := uint16(1); p <= 2000; p++ {
		f.set(p, &Owner{PID: int32(p)})
		if _, err := tab.Resolve(context.Background(), key(p)); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	for i := range tab.cache.buckets {
		for j := range tab.cache.buckets[i].slots {
			if tab.cache.buckets[i].slots[j].Load() != nil {
				n++
			}
		}
	}
	if len(tab.cache.buckets)*ways != 64 || n > 64 {
		t.Errorf("%d buckets, %d entries; want 64 slots", len(tab.cache.buckets), n)
	}
	if tab.Lookup(key(2000)) == nil {
		t.Error("the newest entry was evicted")
	}
}

// TestConcurrent hammers Lookup, Request, Resolve and Run together (run
// with -race).
func TestConcurrent(t *testing.T) {
	tab, f := fakeTable(Config{Entries: 256, TTL: 20 * time.Millisecond, QueueLen: 64})
	for p := uint16(1); p <= 300; p++ {
		f.set(p, &Owner{PID: int32(p)})
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); tab.Run(ctx) }()
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 3000 {
				k := key(uint16(1 + (i*7+g)%300))
				if o := tab.Lookup(k); o != nil && o.PID != int32(k.Local.Port()) {
					t.Errorf("wrong owner %v for %v", o, k)
					return
				}
				switch i % 10 {
				case 0:
					tab.Request(k)
				case 5:
					tab.Resolve(ctx, k)
				}
			}
		}()
	}
	time.Sleep(50 * time.Millisecond)
	cancel()
	wg.Wait()
	if s := tab.Stats(); s.Hits == 0 || s.Lookups == 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestNoAllocs(t *testing.T) {
	if runtime.GOARCH == "wasm" {
		t.Skip()
	}
	tab, f := fakeTable(Config{QueueLen: 1 << 20})
	f.set(1, &Owner{PID: 1})
	if _, err := tab.Resolve(context.Background(), key(1)); err != nil {
		t.Fatal(err)
	}
	hit, miss := key(1), key(2)
	if n := testing.AllocsPerRun(1000, func() { tab.Lookup(hit) }); n != 0 {
		t.Errorf("Lookup hit: %v allocations", n)
	}
	if n := testing.AllocsPerRun(1000, func() { tab.Lookup(miss) }); n != 0 {
		t.Errorf("Lookup miss: %v allocations", n)
	}
	if n := testing.AllocsPerRun(1000, func() { tab.Request(miss) }); n != 0 {
		t.Errorf("Request: %v allocations", n)
	}
	full, _ := fakeTable(Config{QueueLen: 1})
	full.Request(miss)
	if n := testing.AllocsPerRun(1000, func() { full.Request(miss) }); n != 0 {
		t.Errorf("Request on a full queue: %v allocations", n)
	}
}

// benchTable returns a table with port 1 cached and Run running (its
// coarse clock is what Lookup reads in the engine).
func benchTable(b *testing.B) *Table {
	tab, f := fakeTable(Config{})
	f.set(1, &Owner{PID: 1})
	tab.Resolve(context.Background(), key(1))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { tab.Run(ctx); close(done) }()
	for tab.ticking.Load() == 0 {
		runtime.Gosched()
	}
	b.Cleanup(func() { cancel(); <-done })
	return tab
}

func BenchmarkLookupHit(b *testing.B) {
	tab := benchTable(b)
	k := key(1)
	b.ReportAllocs()
	for b.Loop() {
		if tab.Lookup(k) == nil {
			b.Fatal("miss")
		}
	}
}

// BenchmarkLookupHitNoRun: without Run, Lookup reads the time itself.
func BenchmarkLookupHitNoRun(b *testing.B) {
	tab, f := fakeTable(Config{})
	f.set(1, &Owner{PID: 1})
	k := key(1)
	tab.Resolve(context.Background(), k)
	b.ReportAllocs()
	for b.Loop() {
		if tab.Lookup(k) == nil {
			b.Fatal("miss")
		}
	}
}

func BenchmarkLookupHitParallel(b *testing.B) {
	tab := benchTable(b)
	k := key(1)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			tab.Lookup(k)
		}
	})
}

func BenchmarkLookupMiss(b *testing.B) {
	tab := benchTable(b)
	k := key(2)
	b.ReportAllocs()
	for b.Loop() {
		if tab.Lookup(k) != nil {
			b.Fatal("hit")
		}
	}
}

func BenchmarkRequest(b *testing.B) {
	tab, _ := fakeTable(Config{QueueLen: 1024})
	k := key(1)
	b.ReportAllocs()
	for b.Loop() {
		if !tab.Request(k) {
			for len(tab.queue) > 0 { // drain, as Run would
				<-tab.queue
			}
		}
	}
}

// SPDX-License-Identifier: MIT

package cache_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dnstun/dnstun/cache"
	"github.com/dnstun/dnstun/internal/pkttest"
	"github.com/dnstun/dnstun/packet"
	"github.com/miekg/dns"
)

// benchCache holds n names, host<i>.example.com, each with two A records,
// stored from EDNS answers.
func benchCache(b *testing.B, n int) *cache.Cache {
	c := newCache(b, cache.Options{MaxBytes: 64 << 20, StaleFor: time.Hour})
	for i := range n {
		name := fmt.Sprintf("host%d.example.com", i)
		store(b, c, withEDNS(reply(b, name, dns.TypeA, 0, name+". 300 IN A 192.0.2.1", name+". 300 IN A 192.0.2.2"), 1232, false), 0)
	}
	return c
}

// query is a parsed query for host<i>.example.com in its own buffer.
type query struct {
	buf []byte // room for the answer; the query is buf[:n]
	n   int
	q   packet.Question
}

func newQuery(b *testing.B, i int, id uint16) *query {
	m := pkttest.MsgEDNS(id, fmt.Sprintf("Host%d.Example.com", i), dns.TypeA, 1232, false)
	qq := &query{buf: make([]byte, 1500)}
	qq.n = copy(qq.buf, pack(b, m))
	if packet.ReadQuestion(qq.buf[:qq.n], &qq.q) != packet.OK {
		b.Fatal("query")
	}
	return qq
}

// lookups asks c for the queries qs in turn from the i-th, as one reader:
// the query is copied into the reader's one buffer (as a packet arrives
// in it) and answered there; its Question was read beforehand.
func lookups(b *testing.B, c *cache.Cache, qs []*query, i int, next func() bool) {
	buf := make([]byte, 1500)
	for ; next(); i++ {
		qq := qs[i%len(qs)]
		copy(buf, qq.buf[:qq.n])
		if _, res := c.Lookup(buf, &qq.q, 1232, sec); res.Status != cache.Hit {
			b.Error(res.Status)
			return
		}
	}
}

// queries are count queries for the n names, with IDs all different.
func queries(b *testing.B, n, count int) []*query {
	qs := make([]*query, count)
	for i := range qs {
		qs[i] = newQuery(b, (i*7919)%n, uint16(i*40503))
	}
	return qs
}

// The hit path: on one name (in the CPU's caches) and cycling through
// 10,000 (mostly not), from one goroutine and from all.
func BenchmarkLookupHit(b *testing.B) {
	for _, n := range []int{1, 10_000} {
		b.Run(fmt.Sprintf("names=%d", n), func(b *testing.B) {
			c, qs := benchCache(b, n), queries(b, n, n)
			b.ReportAllocs()
			lookups(b, c, qs, 0, b.Loop)
		})
	}
}

// Every goroutine has its own buffer and starts at its own query (so
// query IDs differ between goroutines, as clients' random IDs do);
// names=1 puts them all on one shard and entry.
func BenchmarkLookupHitParallel(b *testing.B) {
	for _, n := range []int{1, 10_000} {
		b.Run(fmt.Sprintf("names=%d", n), func(b *testing.B) {
			c, qs := benchCache(b, n), queries(b, n, max(n, 64))
			var next atomic.Int64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				lookups(b, c, qs, int(next.Add(1))*7, pb.Next)
			})
		})
	}
}

func BenchmarkLookupStale(b *testing.B) {
	c := benchCache(b, 1)
	qq := newQuery(b, 0, 1)
	b.ReportAllocs()
	for b.Loop() {
		if _, res := c.LookupStale(qq.buf, &qq.q, 1232, 400*sec); res.Status != cache.Stale {
			b.Fatal(res.Status)
		}
	}
}

func BenchmarkLookupMiss(b *testing.B) {
	c := benchCache(b, 1000)
	qq := newQuery(b, 5000, 1)
	b.ReportAllocs()
	for b.Loop() {
		if _, res := c.Lookup(qq.buf, &qq.q, 1232, sec); res.Status != cache.Miss {
			b.Fatal(res.Status)
		}
	}
}

// Store: replacing the one entry of a name, and new names into a full
// cache, each evicting one.
func BenchmarkStore(b *testing.B) {
	b.Run("replace", func(b *testing.B) {
		c := newCache(b, cache.Options{MaxBytes: 1 << 20})
		msg := pack(b, withEDNS(reply(b, "www.example.com", dns.TypeA, 0, "www.example.com. 300 IN A 192.0.2.1", "www.example.com. 300 IN A 192.0.2.2"), 1232, false))
		b.ReportAllocs()
		for b.Loop() {
			if err := c.Store(msg, 0); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("evicting", func(b *testing.B) {
		c := newCache(b, cache.Options{MaxBytes: 1 << 20})
		msgs := make([][]byte, 100_000)
		for i := range msgs {
			name := fmt.Sprintf("host%d.example.com", i)
			msgs[i] = pack(b, reply(b, name, dns.TypeA, 0, name+". 300 IN A 192.0.2.1"))
		}
		for _, m := range msgs[:20_000] {
			c.Store(m, 0) // fill: 1 MiB holds fewer than 5,000 of them
		}
		i := 0
		b.ReportAllocs()
		for b.Loop() {
			if err := c.Store(msgs[i%len(msgs)], 0); err != nil {
				b.Fatal(err)
			}
			i++
		}
		if c.Stats().Evictions == 0 {
			b.Fatal("no eviction")
		}
	})
}

// Figures: bench/RESULTS.md, "Hot path (micro-benchmarks)", with the other
// hot-path packages (bench/e2e's microPackages); compare ratios measured
// in one run.

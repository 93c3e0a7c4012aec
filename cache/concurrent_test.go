// SPDX-License-Identifier: MIT

package cache_test

import (
	"encoding/binary"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/dnstun/dnstun/cache"
	"github.com/dnstun/dnstun/packet"
	"github.com/miekg/dns"
)

// answerFor is the answer for host<i>.example.com: its A record encodes i,
// so that a reader can tell an answer for another name. A few names get
// padding records so that sizes vary.
func answerFor(t testing.TB, i int) []byte {
	name := fmt.Sprintf("host%d.example.com", i)
	m := reply(t, name, dns.TypeA, dns.RcodeSuccess)
	ip := make(net.IP, 4)
	binary.BigEndian.PutUint32(ip, uint32(i))
	m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: name + ".", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: ip})
	for j := range i % 7 {
		m.Extra = append(m.Extra, &dns.TXT{Hdr: dns.RR_Header{Name: name + ".", Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: []string{fmt.Sprint(j, "padding padding padding")}})
	}
	return pack(t, m)
}

// TestConcurrent runs writers storing, readers looking up and a flusher
// at once (run it with -race): every answer a reader gets must be for its
// own name, and the byte bound must hold throughout.
func TestConcurrent(t *testing.T) {
	const maxBytes = 256 << 10
	const names = 2000
	c := newCache(t, cache.Options{MaxBytes: maxBytes})
	answers := make([][]byte, names)
	queries := make([][]byte, names)
	for i := range names {
		answers[i] = answerFor(t, i)
		queries[i] = pack(t, reply(t, fmt.Sprintf("HOST%d.example.com", i), dns.TypeA, 0))
		queries[i][2], queries[i][3] = 0x01, 0x00 // a query with RD
	}
	rounds := 20_000
	if testing.Short() {
		rounds = 2000
	}
	var wg sync.WaitGroup
	var writing sync.WaitGroup
	var done atomic.Bool
	var hits atomic.Int64
	errs := make(chan error, 16)
	for w := range 2 {
		writing.Go(func() {
			for r := range rounds {
				i := (r*7919 + w*31) % names
				c.Store(answers[i], 0)
				if st := c.Stats(); st.Bytes > maxBytes {
					errs <- fmt.Errorf("bytes %d above %d", st.Bytes, maxBytes)
					return
				}
			}
		})
	}
	// Readers go on while the writers write.
	for g := range 4 {
		wg.Go(func() {
			buf := make([]byte, 4096)
			var q packet.Question
			var m dns.Msg
			for r := 0; !done.Load(); r++ {
				i := (r*104729 + g*17) % names
				copy(buf, queries[i])
				if packet.ReadQuestion(buf[:len(queries[i])], &q) != packet.OK {
					errs <- fmt.Errorf("query %d", i)
					return
				}
				n, res := c.Lookup(buf, &q, packet.StreamLimit, 0)
				if res.Status != cache.Hit {
					continue
				}
				hits.Add(1)
				if err := m.Unpack(buf[:n]); err != nil {
					errs <- fmt.Errorf("answer for %d: %v", i, err)
					return
				}
				a, ok := m.Answer[0].(*dns.A)
				if !ok || binary.BigEndian.Uint32(a.A.To4()) != uint32(i) || m.Question[0].Name != fmt.Sprintf("HOST%d.example.com.", i) {
					errs <- fmt.Errorf("asked for %d, got %v", i, &m)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for r := range rounds / 100 {
			if r%2 == 0 {
				c.FlushName(fmt.Sprintf("host%d.example.com", r))
			} else {
				c.Flush()
			}
			runtime.Gosched()
		}
	})
	writing.Wait()
	done.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if hits.Load() == 0 {
		t.Error("no reader had a hit")
	}
}

// TestChargeCoversHeap measures the heap an entry really takes and checks
// that what the cache charges for it is no less.
func TestChargeCoversHeap(t *testing.T) {
	if testing.Short() {
		t.Skip("measures the heap")
	}
	const n = 20_000
	answers := make([][]byte, n)
	for i := range answers {
		answers[i] = answerFor(t, i)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	c := newCache(t, cache.Options{MaxBytes: 64 << 20})
	for _, a := range answers {
		if err := c.Store(a, 0); err != nil {
			t.Fatal(err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	st := c.Stats()
	heap := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("%d entries: heap %d bytes (%d per entry), charged %d (%d per entry)", st.Entries, heap, heap/n, st.Bytes, st.Bytes/n)
	if st.Entries != n || heap > st.Bytes {
		t.Errorf("%d entries take %d heap bytes, more than the %d charged", st.Entries, heap, st.Bytes)
	}
	runtime.KeepAlive(c)
	runtime.KeepAlive(answers) // or their bytes would count against the cache
}

// SPDX-License-Identifier: MIT

package cache_test

import (
	"math"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"testing"

	"github.com/dnstun/dnstun/cache"
	"github.com/dnstun/dnstun/packet"
)

// The eviction runs of EVICTION.md: a Zipf workload over many names, alone
// and mixed with scans of one-off names, through the real Cache (shards,
// byte budget and all) at a size holding about 5% of the names.
// DNSTUN_EVICTION=full runs the figures' sizes (1M names, 10M requests);
// the default is a tenth of that.

// zipf samples ranks 0..n-1 with P(k) proportional to 1/(k+1)^s; s = 1 is
// allowed (math/rand's Zipf needs s > 1).
type zipf struct {
	cdf []float64
	r   *rand.Rand
}

func newZipf(n int, s float64, seed uint64) *zipf {
	z := &zipf{cdf: make([]float64, n), r: rand.New(rand.NewPCG(seed, 1))}
	sum := 0.0
	for k := range n {
		sum += 1 / math.Pow(float64(k+1), s)
		z.cdf[k] = sum
	}
	for k := range z.cdf {
		z.cdf[k] /= sum
	}
	return z
}

func (z *zipf) next() int {
	return min(sort.SearchFloat64s(z.cdf, z.r.Float64()), len(z.cdf)-1)
}

type workload struct {
	names    int
	requests int
	s        float64
	// scanEvery Zipf requests, a scan of scanLen names never asked
	// before; 0: none.
	scanEvery, scanLen int
}

type ratio struct {
	zipfHits, zipfReqs int
	allHits, allReqs   int
	entries            int64
}

func (r ratio) zipf() float64 { return float64(r.zipfHits) / float64(r.zipfReqs) }
func (r ratio) all() float64  { return float64(r.allHits) / float64(r.allReqs) }

// entryCharge is what one name of the runs costs (a one-record A answer
// in a 64-byte buffer, an 8-byte table slot at three quarters load), to
// size the cache in names.
const entryCharge = 64 + cache.EntryOverhead + 8*4/3

func runWorkload(t testing.TB, w workload, capacity int) ratio {
	c, err := cache.New(cache.Options{MaxBytes: capacity * entryCharge})
	if err != nil {
		t.Fatal(err)
	}
	z := newZipf(w.names, w.s, 42)
	var q packet.Question
	qbuf := make([]byte, 512)
	abuf := make([]byte, 512)
	var r ratio
	scanned := 0
	warm := w.requests / 10
	ask := func(name string, zipf bool, i int, now int64) {
		query := aQuery(qbuf, name)
		if packet.ReadQuestion(query, &q) != packet.OK {
			t.Fatalf("query for %s", name)
		}
		_, res := c.Lookup(qbuf, &q, 512, now)
		if res.Status != cache.Hit {
			if err := c.Store(aReply(abuf, name, 86400), now); err != nil {
				t.Fatal(err)
			}
		}
		if i < warm {
			return
		}
		hit := 0
		if res.Status == cache.Hit {
			hit = 1
		}
		r.allReqs++
		r.allHits += hit
		if zipf {
			r.zipfReqs++
			r.zipfHits += hit
		}
	}
	for i := range w.requests {
		now := int64(i) * 1000
		ask("n"+strconv.Itoa(z.next())+".example.com", true, i, now)
		if w.scanEvery > 0 && (i+1)%w.scanEvery == 0 {
			for range w.scanLen {
				ask("scan"+strconv.Itoa(scanned)+".example.net", false, i, now)
				scanned++
			}
		}
	}
	r.entries = c.Stats().Entries
	return r
}

// TestEvictionHitRatio checks that the cache resists scans: the popular
// names keep at least 95% of their hit ratio when a third of the requests
// are one-off names (LRU kept 85% in the runs of EVICTION.md), and the
// hit ratios stay at the figures measured.
func TestEvictionHitRatio(t *testing.T) {
	names, requests := 100_000, 1_000_000
	if os.Getenv("DNSTUN_EVICTION") == "full" {
		names, requests = 1_000_000, 10_000_000
	} else if testing.Short() || raceEnabled {
		t.Skip("eviction runs take seconds, and one goroutine gives the race detector nothing to find")
	}
	capacity := names / 20
	for _, tc := range []struct {
		s     float64
		floor float64 // the Zipf hit ratio without scans, a little below EVICTION.md's
	}{{1.0, 0.70}, {1.2, 0.88}} {
		w := workload{names: names, requests: requests, s: tc.s}
		plain := runWorkload(t, w, capacity)
		// A scan as long as the cache after every 2 cache-sizes of Zipf
		// requests: a third of all requests are one-off.
		w.scanEvery, w.scanLen = 2*capacity, capacity
		scanned := runWorkload(t, w, capacity)
		t.Logf("s=%.1f: Zipf hit ratio %.4f; with scans %.4f (all requests %.4f); %d entries",
			tc.s, plain.zipf(), scanned.zipf(), scanned.all(), plain.entries)
		if plain.zipf() < tc.floor || scanned.zipf() < 0.95*plain.zipf() {
			t.Errorf("s=%.1f: hit ratio %.4f, with scans %.4f; want at least %.2f, and 95%% of it with scans",
				tc.s, plain.zipf(), scanned.zipf(), tc.floor)
		}
	}
}

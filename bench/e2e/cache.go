// SPDX-License-Identifier: MIT

package e2e

import (
	"math"
	"math/rand/v2"
	"sort"
	"time"
)

// Settings of the cache phase (bench/e2e/cache_linux.go).
const (
	// zipfS is the exponent of the fill's second pass: Zipf's law proper,
	// the usual model of name popularity.
	zipfS = 1.0
	// fillLimit bounds each pass of the fill in time.
	fillLimit = 3 * time.Minute
	// warmLimit bounds the warm-up pass (every name once).
	warmLimit = time.Minute
)

// zipf draws ranks 0..n-1 with P(rank r) proportional to 1/(r+1)^s, and
// maps each rank to a name index through a fixed random permutation, so
// that a name's popularity has nothing to do with its place in the list
// (the order the fill sent the names in).
type zipf struct {
	cdf  []float64 // cdf[r] = P(rank <= r)
	name []int32   // name[r] is the name index of rank r
}

func newZipf(n int, s float64, seed uint64) *zipf {
	z := &zipf{cdf: make([]float64, n), name: make([]int32, n)}
	sum := 0.0
	for r := range n {
		sum += math.Pow(float64(r+1), -s)
		z.cdf[r] = sum
		z.name[r] = int32(r)
	}
	for r := range z.cdf {
		z.cdf[r] /= sum
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	rng.Shuffle(n, func(i, j int) { z.name[i], z.name[j] = z.name[j], z.name[i] })
	return z
}

// sample draws k names; it returns their indexes and their ranks.
func (z *zipf) sample(k int, seed uint64) (names, ranks []int) {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	names, ranks = make([]int, k), make([]int, k)
	for i := range k {
		r := min(sort.SearchFloat64s(z.cdf, rng.Float64()), len(z.cdf)-1)
		ranks[i], names[i] = r, int(z.name[r])
	}
	return names, ranks
}

// topShare is the share of the draws whose rank is below k: the hit ratio
// of a cache holding exactly the k most popular names.
func topShare(ranks []int, k int) float64 {
	if len(ranks) == 0 {
		return 0
	}
	n := 0
	for _, r := range ranks {
		if r < k {
			n++
		}
	}
	return float64(n) / float64(len(ranks))
}

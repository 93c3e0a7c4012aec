package loadgen

import (
	"fmt"
	"math"
	"math/bits"
	"time"
)

// Histogram layout: values (nanoseconds) below 2^subBits have one bucket
// each; above, every power of two [2^k, 2^(k+1)) is split into half =
// 2^(subBits-1) equal buckets. A bucket's width is at most 1/half of its
// lower bound, so reporting its midpoint is within 1/(2*half) = 0.39% of
// any value in it.
const (
	subBits   = 8
	subCount  = 1 << subBits
	half      = subCount / 2
	maxShift  = 40 - subBits + 1 // values are clamped below 2^40 ns (~18 min)
	nBuckets  = (maxShift + 2) * half
	maxRecord = 1<<40 - 1
)

// Histogram is a log-linear latency histogram covering 1 ns to ~18 min
// with better than 0.4% relative error. Record does not allocate. The zero
// value is ready to use; it is not safe for concurrent use.
type Histogram struct {
	counts [nBuckets]uint64
	n      uint64
	sum    uint64 // ns
	min    int64
	max    int64
}

func bucketOf(v uint64) int {
	if v < subCount {
		return int(v)
	}
	shift := bits.Len64(v) - subBits
	return shift*half + int(v>>uint(shift))
}

// bucketMid returns the value reported for bucket i.
func bucketMid(i int) int64 {
	if i < subCount {
		return int64(i)
	}
	shift := i/half - 1
	m := int64(i%half + half)
	return m<<uint(shift) + (int64(1)<<uint(shift))/2
}

// Record adds one observation. Negative values count as 0; values beyond
// the range are clamped to its top.
func (h *Histogram) Record(d time.Duration) {
	v := int64(d)
	if v < 0 {
		v = 0
	}
	if v > maxRecord {
		v = maxRecord
	}
	h.counts[bucketOf(uint64(v))]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n++
	h.sum += uint64(v)
}

// Count returns the number of observations.
func (h *Histogram) Count() uint64 { return h.n }

// Merge adds the observations of o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.n += o.n
	h.sum += o.sum
}

// Quantile returns the value at quantile q (0..1): the smallest recorded
// bucket whose cumulative count reaches ceil(q*n), reported at the bucket
// midpoint and clamped to the exact min and max.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	if rank < 1 {
		rank = 1
	}
	if rank >= h.n {
		return time.Duration(h.max)
	}
	var cum uint64
	for i, c := range h.counts {
		cum += c
		if cum >= rank {
			v := bucketMid(i)
			v = min(max(v, h.min), h.max)
			return time.Duration(v)
		}
	}
	return time.Duration(h.max)
}

// Percentiles summarises a latency distribution.
type Percentiles struct {
	Count                         uint64
	Min, P50, P90, P99, P999, Max time.Duration
	Mean                          time.Duration
}

// Percentiles returns the summary of h.
func (h *Histogram) Percentiles() Percentiles {
	if h.n == 0 {
		return Percentiles{}
	}
	return Percentiles{
		Count: h.n,
		Min:   time.Duration(h.min),
		P50:   h.Quantile(0.50),
		P90:   h.Quantile(0.90),
		P99:   h.Quantile(0.99),
		P999:  h.Quantile(0.999),
		Max:   time.Duration(h.max),
		Mean:  time.Duration(h.sum / h.n),
	}
}

func (p Percentiles) String() string {
	if p.Count == 0 {
		return "n/a"
	}
	return fmt.Sprintf("min %v p50 %v p90 %v p99 %v p99.9 %v max %v mean %v",
		rd(p.Min), rd(p.P50), rd(p.P90), rd(p.P99), rd(p.P999), rd(p.Max), rd(p.Mean))
}

// rd rounds a duration to 3 significant digits for display.
func rd(d time.Duration) time.Duration {
	for u := time.Duration(1); u < time.Hour; u *= 10 {
		if d < 1000*u {
			return d.Round(u)
		}
	}
	return d
}

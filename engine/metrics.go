// SPDX-License-Identifier: MIT

package engine

import (
	"sync/atomic"
	"time"

	"github.com/dnstun/dnstun/querylog"
)

// The metrics that Config.Metrics turns on: answers by decision and rcode,
// queries by transport, and latency histograms. Off, none of them is
// touched and no clock is read for them.

// Path names what a latency histogram measures.
type Path uint8

const (
	// PathLocal: answered in the step (blocked, local records, FORMERR,
	// REFUSED), from the TUN read to the TUN write of the batch.
	PathLocal Path = iota
	// PathCache: answered from the cache, measured as PathLocal.
	PathCache
	// PathForward: answered by an upstream (or SERVFAIL after the
	// timeout), from the decision to the write of the answer.
	PathForward
	NumPaths
)

var pathNames = [NumPaths]string{"local", "cache", "forward"}

func (p Path) String() string {
	if p < NumPaths {
		return pathNames[p]
	}
	return "unknown"
}

// Transport names a front-end, for the queries-by-transport counter.
type Transport uint8

const (
	TransportUDP  Transport = iota // UDP packets through the TUN
	TransportTCP                   // DNS over TCP through the TUN
	TransportFlow                  // flow mode's UDP socket
	NumTransports
)

var transportNames = [NumTransports]string{"udp", "tcp", "flow"}

func (t Transport) String() string {
	if t < NumTransports {
		return transportNames[t]
	}
	return "unknown"
}

// NumDecisions is how many querylog.Decision values there are.
const NumDecisions = int(querylog.Stale) + 1

// LatencyBounds are the upper bounds of the latency histograms' buckets:
// from 10 µs (a blocked answer) to 5 s (the total timeout's default).
var LatencyBounds = [...]time.Duration{
	10 * time.Microsecond, 25 * time.Microsecond, 50 * time.Microsecond,
	100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond,
	10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2500 * time.Millisecond, 5 * time.Second,
}

// histogram counts durations into LatencyBounds' buckets (the last one is
// +Inf) without locks or allocation.
type histogram struct {
	counts [len(LatencyBounds) + 1]atomic.Uint64
	sum    atomic.Int64 // ns
}

// observe adds n samples of d nanoseconds.
func (h *histogram) observe(d int64, n uint64) {
	i := 0
	for i < len(LatencyBounds) && d > int64(LatencyBounds[i]) {
		i++
	}
	h.counts[i].Add(n)
	h.sum.Add(d * int64(n))
}

// Histogram is a snapshot of a latency histogram: Counts[i] samples were at
// most LatencyBounds[i] (and above the bound before); the last count is
// above every bound. Counts are per bucket, not cumulative.
type Histogram struct {
	Counts [len(LatencyBounds) + 1]uint64
	Sum    time.Duration
}

// Count is the number of samples.
func (h *Histogram) Count() uint64 {
	var n uint64
	for _, c := range h.Counts {
		n += c
	}
	return n
}

// Add adds o's samples to h.
func (h *Histogram) Add(o *Histogram) {
	for i, c := range o.Counts {
		h.Counts[i] += c
	}
	h.Sum += o.Sum
}

func (h *histogram) snapshot() Histogram {
	var s Histogram
	for i := range h.counts {
		s.Counts[i] = h.counts[i].Load()
	}
	s.Sum = time.Duration(h.sum.Load())
	return s
}

// metrics are the counters Config.Metrics turns on.
type metrics struct {
	answers [NumDecisions][16]atomic.Uint64 // by decision and rcode (the header's 4 bits)
	queries [NumTransports]atomic.Uint64
	latency [NumPaths]histogram
}

// Metrics is a snapshot of them (all zero when Config.Metrics is off).
type Metrics struct {
	// Answers counts the queries answered, by querylog.Decision and rcode.
	Answers [NumDecisions][16]uint64
	// Queries counts the DNS queries read, by front-end.
	Queries [NumTransports]uint64
	// Latency is the time dnstun added to each answer, by path.
	Latency [NumPaths]Histogram
}

// Add adds o's counts to m (the daemon sums its sessions' engines).
func (m *Metrics) Add(o *Metrics) {
	for d := range m.Answers {
		for r := range m.Answers[d] {
			m.Answers[d][r] += o.Answers[d][r]
		}
	}
	for i := range m.Queries {
		m.Queries[i] += o.Queries[i]
	}
	for i := range m.Latency {
		m.Latency[i].Add(&o.Latency[i])
	}
}

func (m *metrics) snapshot() Metrics {
	var s Metrics
	for d := range m.answers {
		for r := range m.answers[d] {
			s.Answers[d][r] = m.answers[d][r].Load()
		}
	}
	for i := range m.queries {
		s.Queries[i] = m.queries[i].Load()
	}
	for i := range m.latency {
		s.Latency[i] = m.latency[i].snapshot()
	}
	return s
}

// Metrics returns a snapshot of the metrics.
func (e *Engine) Metrics() Metrics { return e.metrics.snapshot() }

// transportOf is the front-end a query came through.
func transportOf(from via) Transport {
	switch from {
	case viaTCP:
		return TransportTCP
	case viaFlow:
		return TransportFlow
	}
	return TransportUDP
}

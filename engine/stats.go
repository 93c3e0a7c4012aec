// SPDX-License-Identifier: MIT

package engine

import (
	"sync/atomic"

	"github.com/dnstun/dnstun/cache"
	"github.com/dnstun/dnstun/packet"
	"github.com/dnstun/dnstun/upstream"
)

// Counter names the engine's event counters.
type Counter uint8

const (
	Packets           Counter = iota // packets read from the TUN
	Blocked                          // queries answered with a block answer
	Local                            // queries answered from local records
	Forwarded                        // queries sent upstream (first attempt)
	Retried                          // attempts moved to another upstream
	Replied                          // upstream answers delivered to clients
	ServFail                         // SERVFAIL sent because no upstream answered in time
	Full                             // REFUSED because the pending table was full
	TooLarge                         // REFUSED because the query exceeded MaxQuery
	Unmatched                        // upstream packets matching no pending query (late, spoofed, garbage)
	SendErrors                       // failed sends to an upstream
	RecvErrors                       // receive errors on upstream sockets (e.g. ICMP refused)
	WriteErrors                      // failed writes into the TUN
	ReadErrors                       // failed reads from the TUN
	Rewritten                        // CNAME rewrites resolved through an upstream
	AnswerBlocked                    // upstream answers turned into block answers (CNAME cloaking, IP rules)
	TCPSegments                      // TCP segments read from the TUN and handed to the TCP stack
	TCPConns                         // DNS-over-TCP connections accepted
	TCPRefused                       // TCP connections closed at once: over a bound
	TCPQueries                       // DNS messages read from TCP connections
	TCPOrphans                       // answers for a TCP connection that had closed
	Truncated                        // answers cut to the header and question with TC, for a UDP client's size
	BadVers                          // BADVERS answers to an EDNS version other than 0
	Held                             // parallel: SERVFAIL or REFUSED answers held back while another upstream may answer
	CaseMismatch                     // 0x20: answers whose question did not repeat the case sent (dropped)
	CacheHits                        // queries answered from the cache
	CachePrefetch                    // hot cache entries refreshed before they expired
	CacheStale                       // expired cache entries served because the upstreams failed (RFC 8767)
	AttribHeld                       // queries held until their process was known ($process rules)
	AttribUnheld                     // queries decided without their process: the held table or lookup queue was full
	AttribLate                       // held queries released by the timeout, not by their lookup
	AttribSkipped                    // owner lookups not queued: over lookupsPerSecond (the query log shows no process)
	RateLimited                      // REFUSED: the client was over Config.ClientRate
	ClientFull                       // REFUSED: the client had its share of the pending table waiting
	UpstreamMalformed                // upstream replies whose records do not read whole (dropped, not passed on)
	numCounters
)

var counterNames = [numCounters]string{
	"packets", "blocked", "local", "forwarded", "retried", "replied", "servfail",
	"full", "too_large", "unmatched", "send_errors", "recv_errors", "write_errors", "read_errors", "rewritten", "answer_blocked",
	"tcp_segments", "tcp_conns", "tcp_refused", "tcp_queries", "tcp_orphans", "truncated", "badvers",
	"held", "case_mismatch", "cache_hits", "cache_prefetch", "cache_stale",
	"attrib_held", "attrib_unheld", "attrib_late", "attrib_skipped", "rate_limited", "client_full", "upstream_malformed",
}

func (c Counter) String() string {
	if c < numCounters {
		return counterNames[c]
	}
	return "unknown"
}

// stats are the engine's atomic counters, in lanes: a goroutine that
// counts on every query (a TUN reader's worker, the UDP receiver) has a
// lane of its own, so that two cores never write the same cache line;
// everything else counts in lane 0. Stats sums the lanes.
type stats struct {
	lanes    [numLanes]lane
	drops    [packet.NumReasons]atomic.Uint64 // by packet.Reason; OK is unused
	nextLane atomic.Uint32
}

// numLanes bounds the counter lanes; goroutines past it share lanes 1 and
// up (still correct, atomics: only slower across cores).
const numLanes = 16

// lane is one share of the counters. Its padding keeps at least a cache
// line between two lanes' counters, however the array is aligned.
type lane struct {
	c [numCounters]atomic.Uint64
	_ [128 - (8*int(numCounters))%64]byte
}

// add counts one c in l.
func (l *lane) add(c Counter) { l.c[c].Add(1) }

// newLane returns a lane for one more hot goroutine.
func (s *stats) newLane() *lane {
	return &s.lanes[1+int(s.nextLane.Add(1)-1)%(numLanes-1)]
}

// get sums counter c over the lanes.
func (s *stats) get(c Counter) uint64 {
	var n uint64
	for i := range s.lanes {
		n += s.lanes[i].c[c].Load()
	}
	return n
}

// Stats is a snapshot of the counters.
type Stats struct {
	Counters [numCounters]uint64
	// Drops counts packets and messages not answered normally, by reason:
	// the drop reasons, plus NotImp and FormErr which are answered.
	Drops   [packet.NumReasons]uint64
	Pending int
	// Sockets are the plain UDP upstream sockets' counters.
	Sockets upstream.PoolStats
	// Cache is the response cache's (zero without one).
	Cache cache.Stats
}

// Get returns counter c.
func (s Stats) Get(c Counter) uint64 { return s.Counters[c] }

// Map returns the non-zero counters by name, for logs and the control API.
func (s Stats) Map() map[string]uint64 {
	m := make(map[string]uint64)
	for i, v := range s.Counters {
		if v != 0 {
			m[Counter(i).String()] = v
		}
	}
	for i, v := range s.Drops {
		if v != 0 {
			m["drop_"+packet.Reason(i).String()] = v
		}
	}
	p := &s.Sockets
	for k, v := range map[string]uint64{
		"udp_sockets_open": p.Open, "udp_sockets_max_open": p.MaxOpen, "udp_sockets_opened": p.Opened,
		"udp_sockets_open_errors": p.OpenErrors, "udp_sockets_reused_past_budget": p.ReusedPastBudget,
		"udp_sockets_none_free": p.NoSocket, "udp_sockets_closed_unanswered": p.ClosedLinger, "udp_answers_oversize": p.Truncated,
		"cache_misses": s.Cache.Misses, "cache_evictions": s.Cache.Evictions, "cache_entries": uint64(s.Cache.Entries), "cache_bytes": uint64(s.Cache.Bytes),
	} {
		if v != 0 {
			m[k] = v
		}
	}
	return m
}

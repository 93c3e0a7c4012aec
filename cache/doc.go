// SPDX-License-Identifier: MIT

// Package cache keeps upstream DNS answers in wire form and answers
// queries from them in the packet path.
//
// The engine asks the cache after the filter decided to forward (so a rule
// change applies to cached names at once): Lookup writes a hit over the
// query, in place. The upstream receivers hand every answer to Store.
//
// Invariants, checked by tests, benchmarks and the fuzz target:
//
//   - A hit does not allocate and does not lock. Lookup hashes the
//     question's lower-cased name (hash/maphash, no string), reads the
//     shard's table through an atomic pointer, and copies the stored
//     answer into the caller's buffer. Store, Flush and FlushName take
//     the shard's mutex, which readers never touch. The only shared
//     memory a hit writes in steady state is a stripe of counters picked
//     by the query's ID; an entry's eviction bit and hit count are written
//     only until they are set, so a hot entry stays in every core's cache.
//   - Lookup never parses. Store walks the answer once and records the
//     offset of every TTL field (the OPT record is stripped and has none);
//     Lookup copies the bytes, puts the query's ID and question (the
//     client's letter case) back, and rewrites those TTLs.
//   - MaxBytes is a hard bound. Every entry is charged its buffer as
//     allocated (wire bytes and TTL offsets) and EntryOverhead; every
//     table slot is charged too. Each
//     shard evicts before it grows past its share of MaxBytes, so
//     Stats().Bytes never exceeds MaxBytes, whatever the traffic.
//   - No panic on any input. Store bounds-checks every offset of the
//     message; a message it cannot walk is refused with ErrMalformed.
//   - No retained buffer. Store copies the answer; Lookup keeps nothing of
//     the query.
//
// What is cached (RFC 1035 §7.4, RFC 2308, RFC 8767): NOERROR answers for
// the lowest TTL of their answer and authority records, clamped to
// Options.MinTTL and MaxTTL; NXDOMAIN and NODATA for min(SOA TTL, SOA
// MINIMUM), at most MaxTTL and 3 hours (RFC 2308 §5); nothing else: no
// SERVFAIL (the engine fails over to the next upstream instead, and one
// upstream's failure must not be pinned for the others), no negative
// answer without an SOA (RFC 2308 §5: SHOULD NOT), no truncated answer, no
// other rcode, no answer to a non-recursive query, no meta-type (ANY,
// AXFR, IXFR, MAILA, MAILB) or meta-class, no TSIG-signed answer. The key
// is the lower-cased name, type, class and the DO and CD bits; a query's
// RD=0 or EDNS version above 0 is never answered from the cache.
//
// Wire formats: RFC 1035 §4.1, EDNS(0) RFC 6891 §6.1, DNSSEC bits RFC 3225
// and RFC 4035 §3.1.6, Extended DNS Errors RFC 8914.
package cache

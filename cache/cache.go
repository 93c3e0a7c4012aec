// SPDX-License-Identifier: MIT

package cache

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dnstun/dnstun/packet"
)

// Limits of Options.
const (
	// MinBytes is the smallest MaxBytes New accepts: below it the cache
	// would hold a handful of answers and only cost lookups.
	MinBytes = 64 << 10
	// DefaultMaxTTL is what a zero Options.MaxTTL means (unbound's
	// cache-max-ttl).
	DefaultMaxTTL = 24 * time.Hour
	// MaxMaxTTL caps MaxTTL: RFC 8767 §4 suggests 7 days as the longest
	// TTL a resolver honours.
	MaxMaxTTL = 7 * 24 * time.Hour
	// MaxStaleFor caps StaleFor (RFC 8767 §5 suggests 1 to 3 days; a day
	// covers an outage without serving day-old data for longer).
	MaxStaleFor = 24 * time.Hour
)

const (
	// negativeTTLCap bounds how long NXDOMAIN and NODATA are kept: RFC
	// 2308 §5 reports one to three hours as working well, and a name
	// created meanwhile should not stay invisible longer.
	negativeTTLCap = 3 * 60 * 60
	// staleTTL is the TTL of every record of a stale answer (RFC 8767 §4
	// recommends 30 seconds).
	staleTTL = 30
	// prefetchHits is how many hits since it was stored make an entry hot
	// enough to refresh before it expires; prefetchDiv makes the refresh
	// window the last tenth of its TTL, and prefetchMin at least its last
	// second (as CoreDNS's prefetch defaults do).
	prefetchHits = 2
	prefetchDiv  = 10
	prefetchMin  = int64(time.Second)

	// maxShards bounds the shards; shardMin is the share of MaxBytes a
	// shard gets at least, so that one shard holds a 64 KiB TCP answer
	// with room to spare.
	maxShards = 64
	shardMin  = 256 << 10
)

// Options configure a Cache. The zero value of a field means its default
// where one is given; New refuses what it cannot honour.
type Options struct {
	// MaxBytes bounds the bytes the cache holds: each entry counts its
	// buffer as allocated (the wire bytes and two bytes per TTL field)
	// and EntryOverhead, each table slot 8 bytes. At least MinBytes. An answer larger than a shard's
	// share (MaxBytes divided by the shard count, at least 256 KiB when
	// MaxBytes allows) is not cached.
	MaxBytes int
	// MinTTL raises the TTL of positive answers (never of negative ones:
	// a name created meanwhile must appear within its zone's negative
	// TTL). Whole seconds, at most MaxTTL.
	MinTTL time.Duration
	// MaxTTL caps the TTL of every answer: 0 means DefaultMaxTTL; at most
	// MaxMaxTTL. Whole seconds.
	MaxTTL time.Duration
	// StaleFor keeps an expired answer that long for LookupStale (RFC
	// 8767): 0 switches serve-stale off; at most MaxStaleFor.
	StaleFor time.Duration
}

// Cache is a sharded DNS answer cache. Its methods are safe for
// concurrent use; Lookup and LookupStale never lock.
type Cache struct {
	// The lookup counters, striped by the query's ID: the clients pick
	// IDs at random, so readers on different cores seldom share a
	// stripe, even when they all ask for one name in one shard.
	stripes  [16]stripe
	seed     maphash.Seed
	shift    uint // 64 - log2(len(shards)): the hash's top bits pick the shard
	shards   []shard
	minTTL   uint32 // seconds
	maxTTL   uint32 // seconds
	staleFor int64  // ns
}

// stripe is 128 bytes, of which the counters take 32: wherever the
// allocator puts the array, no two stripes' counters share a cache line
// or the pair of lines that x86 CPUs prefetch together.
type stripe struct {
	hits, misses, stale, prefetch atomic.Uint64
	_                             [96]byte
}

// Status says what a lookup found.
type Status uint8

const (
	// Miss: nothing usable; forward the query.
	Miss Status = iota
	// Hit: a fresh answer was written.
	Hit
	// Expired: the entry expired but is within StaleFor; forward the
	// query, and if the upstream fails or is slow, LookupStale answers
	// from it. Nothing was written.
	Expired
	// Stale: LookupStale wrote an expired answer with TTLs of 30 s.
	Stale
)

var statusNames = [...]string{Miss: "miss", Hit: "hit", Expired: "expired", Stale: "stale"}

func (s Status) String() string {
	if int(s) < len(statusNames) {
		return statusNames[s]
	}
	return fmt.Sprintf("Status(%d)", uint8(s))
}

// Result is what Lookup and LookupStale report besides the answer's
// length.
type Result struct {
	Status Status
	// Truncated: the answer was larger than the limit, so the client got
	// the header and question with TC (and asks again over TCP).
	Truncated bool
	// Prefetch: the entry is hot (hit at least twice since it was stored)
	// and within the last tenth of its TTL (at least its last second).
	// The caller should refresh it in the background. Reported once per
	// stored answer.
	Prefetch bool
}

// Stats are the cache's counters. Hits and Misses count Lookup and
// LookupStale calls; an Expired result counts as a miss, an answer from
// LookupStale as Stale (not as a hit).
type Stats struct {
	Hits      uint64
	Misses    uint64
	Stale     uint64 // stale answers written
	Prefetch  uint64 // prefetch signals
	Evictions uint64 // entries removed to make room
	Entries   int64
	Bytes     int64 // as charged against MaxBytes
}

// Errors of Store. They are values (compare with errors.Is) so that a
// receiver can count them without allocating; none needs handling beyond
// that: the answer still goes to the client.
var (
	ErrMalformed   = errors.New("cache: answer not stored: malformed message")
	ErrTruncated   = errors.New("cache: answer not stored: truncated (TC)")
	ErrRcode       = errors.New("cache: answer not stored: rcode is neither NOERROR nor NXDOMAIN")
	ErrUncacheable = errors.New("cache: answer not stored: non-recursive, not a QUERY, or a meta type or class")
	ErrNoSOA       = errors.New("cache: answer not stored: negative answer without SOA (RFC 2308 §5)")
	ErrZeroTTL     = errors.New("cache: answer not stored: TTL 0")
	ErrSigned      = errors.New("cache: answer not stored: TSIG-signed")
	ErrOPTNotLast  = errors.New("cache: answer not stored: OPT is not the last record")
	ErrTooLarge    = errors.New("cache: answer not stored: larger than a shard's share of MaxBytes")
)

const errOptionsPrefix = "cache options: "

// New returns an empty cache, or an error naming the option it cannot
// honour.
func New(o Options) (*Cache, error) {
	if o.MaxBytes < MinBytes {
		return nil, fmt.Errorf("%sMaxBytes %d is below the minimum %d: give at least %d KiB, or switch the cache off", errOptionsPrefix, o.MaxBytes, MinBytes, MinBytes>>10)
	}
	maxTTL := o.MaxTTL
	if maxTTL == 0 {
		maxTTL = DefaultMaxTTL
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"MinTTL", o.MinTTL}, {"MaxTTL", maxTTL}} {
		if d.v < 0 || d.v%time.Second != 0 {
			return nil, fmt.Errorf("%s%s %v is not a non-negative number of whole seconds", errOptionsPrefix, d.name, d.v)
		}
	}
	if maxTTL > MaxMaxTTL {
		return nil, fmt.Errorf("%sMaxTTL %v is above %v (RFC 8767 §4): lower it", errOptionsPrefix, maxTTL, MaxMaxTTL)
	}
	if o.MinTTL > maxTTL {
		return nil, fmt.Errorf("%sMinTTL %v is above MaxTTL %v: lower MinTTL or raise MaxTTL", errOptionsPrefix, o.MinTTL, maxTTL)
	}
	if o.StaleFor < 0 || o.StaleFor > MaxStaleFor {
		return nil, fmt.Errorf("%sStaleFor %v is outside 0 (off) to %v", errOptionsPrefix, o.StaleFor, MaxStaleFor)
	}
	n := 1
	for n < maxShards && o.MaxBytes/(2*n) >= shardMin {
		n *= 2
	}
	c := &Cache{
		seed:     maphash.MakeSeed(),
		shards:   make([]shard, n),
		minTTL:   uint32(o.MinTTL / time.Second),
		maxTTL:   uint32(maxTTL / time.Second),
		staleFor: int64(o.StaleFor),
	}
	c.shift = 64
	for m := n; m > 1; m /= 2 {
		c.shift--
	}
	for i := range c.shards {
		c.shards[i].init(o.MaxBytes / n)
	}
	return c, nil
}

// DNS header (RFC 1035 §4.1.1) and record layout used by Lookup and Store.
const (
	headerLen = 12
	offFlags  = 2
	offQD     = 4
	offAN     = 6
	offNS     = 8
	offAR     = 10

	flagQR     = 0x8000
	maskOpcode = 0x7800
	flagAA     = 0x0400
	flagTC     = 0x0200
	flagRD     = 0x0100
	flagAD     = 0x0020 // RFC 4035 §3.1.6
	flagCD     = 0x0010 // RFC 4035 §3.1.6
	maskRcode  = 0x000f

	rcodeNoError  = 0
	rcodeNXDomain = 3

	typeOPT = 41 // RFC 6891 §6.1.1

	// optLen is an OPT RR without options: root owner(1) TYPE(2)
	// CLASS(2) TTL(4) RDLENGTH(2) (RFC 6891 §6.1.2); edeLen an Extended
	// DNS Error option without text (RFC 8914 §2).
	optLen      = 11
	edeLen      = 6
	optionEDE   = 15 // RFC 8914 §2
	edeStale    = 3  // RFC 8914 §4.4: Stale Answer
	ourUDPSize  = 1232
	keyDO       = 1 // key bits: the DNSSEC OK bit (RFC 3225)
	keyCD       = 2 // and the checking-disabled bit (RFC 4035 §3.2.2)
	secondNanos = int64(time.Second)
)

// Lookup answers the query msg[:q.End] (read into q by
// packet.ReadQuestion) from the cache, in place: on a Hit it writes the
// answer over msg and returns its length. The answer may grow to
// min(limit, len(msg)) bytes: pass packet.ClientLimit(q) for UDP and
// packet.StreamLimit for TCP. A larger answer is cut to the header and
// question with TC (Result.Truncated). On Miss and Expired, msg is left
// as it was.
//
// The answer carries the query's ID and its question bytes as sent (the
// client's letter case), the stored flags less AA (it comes from a cache)
// and less AD unless the query set AD or DO (RFC 6840 §5.8), every TTL
// decremented by the whole seconds the entry spent in the cache, and an
// OPT record (UDP size 1232, the query's DO) exactly when the query had
// one. Lookup never returns an expired entry: within StaleFor it reports
// Expired and writes nothing. now is the caller's clock in nanoseconds,
// the same clock as Store's.
func (c *Cache) Lookup(msg []byte, q *packet.Question, limit int, now int64) (int, Result) {
	return c.lookup(msg, q, limit, now, false)
}

// LookupStale is Lookup for when the upstream failed or is too slow: a
// fresh entry is a Hit as in Lookup, and an entry expired less than
// StaleFor ago is answered too, with every TTL 30 s (RFC 8767 §4) and,
// to an EDNS client, the Extended DNS Error Stale Answer (RFC 8914 §4.4);
// Result.Status is then Stale.
func (c *Cache) LookupStale(msg []byte, q *packet.Question, limit int, now int64) (int, Result) {
	return c.lookup(msg, q, limit, now, true)
}

func (c *Cache) lookup(msg []byte, q *packet.Question, limit int, now int64, stale bool) (int, Result) {
	bits := uint8(0)
	if q.DO {
		bits |= keyDO
	}
	if q.Flags&flagCD != 0 {
		bits |= keyCD
	}
	st := &c.stripes[q.ID%uint16(len(c.stripes))]
	// A query we would not store an answer for is never answered: RD=0
	// asks for what the upstream holds itself, a newer EDNS version for
	// BADVERS from the upstream (RFC 6891 §6.1.3).
	if q.End <= headerLen+4 || q.End > len(msg) || q.Flags&(flagQR|maskOpcode) != 0 ||
		q.Flags&flagRD == 0 || q.EDNSVersion != 0 {
		st.misses.Add(1)
		return 0, Result{}
	}
	h := c.hash(q.Name(), q.QType, q.QClass, bits)
	e := c.shard(h).find(h)
	if e == nil || !e.matches(msg[:q.End], q.QType, q.QClass, bits) {
		st.misses.Add(1)
		return 0, Result{}
	}
	var res Result
	switch {
	case now < e.expires:
		res.Status = Hit
	case now < e.expires+c.staleFor && stale:
		res.Status = Stale
	case now < e.expires+c.staleFor:
		st.misses.Add(1)
		return 0, Result{Status: Expired}
	default:
		st.misses.Add(1)
		return 0, Result{}
	}
	n, tc := e.write(msg, q, limit, now, res.Status == Stale)
	if n == 0 {
		// Not even the header, question and OPT fit: forward.
		st.misses.Add(1)
		return 0, Result{}
	}
	res.Truncated = tc
	e.visit()
	if res.Status == Stale {
		st.stale.Add(1)
		return n, res
	}
	st.hits.Add(1)
	hits := e.hits.Load()
	if hits < prefetchHits {
		hits = e.hits.Add(1)
	}
	if now >= e.prefetchAt && hits >= prefetchHits && !e.prefetched.Load() && e.prefetched.CompareAndSwap(false, true) {
		st.prefetch.Add(1)
		res.Prefetch = true
	}
	return n, res
}

// write writes e's answer over the query msg[:q.End] (whose question
// matches e's) and returns its length and whether it was truncated; 0 if
// not even the header, question and OPT fit.
func (e *entry) write(msg []byte, q *packet.Question, limit int, now int64, stale bool) (int, bool) {
	limit = min(limit, len(msg))
	opt := 0
	if q.EDNS {
		opt = optLen
		if stale {
			opt += edeLen
		}
	}
	flags := binary.BigEndian.Uint16(e.wire[offFlags:]) &^ flagAA
	if !q.DO && q.Flags&flagAD == 0 {
		flags &^= flagAD
	}
	qEnd := int(e.qEnd)
	wire := e.wire
	tc := false
	n := len(wire)
	if n+opt > limit {
		if qEnd+opt > limit {
			return 0, false
		}
		tc, n = true, qEnd
	}
	// msg[12:qEnd] already holds the query's question, byte for byte
	// equal to e's but for letter case, and is kept.
	binary.BigEndian.PutUint16(msg[0:], q.ID)
	binary.BigEndian.PutUint16(msg[offFlags:], flags)
	copy(msg[offQD:headerLen], wire[offQD:headerLen])
	ar := binary.BigEndian.Uint16(wire[offAR:])
	if tc {
		n = packet.Truncate(msg, qEnd)
		ar = 0
	} else {
		copy(msg[qEnd:n], wire[qEnd:])
		// A reader's clock may lag the receiver's that stored e by a
		// little: that is no time spent in the cache, not a negative one.
		elapsed := uint32(max(now-e.stored, 0) / secondNanos)
		for i := range e.nTTL {
			off := e.ttlOffset(i)
			ttl := uint32(staleTTL)
			if !stale {
				// Store made every TTL at least the entry's, so a fresh
				// entry never underflows here.
				ttl = binary.BigEndian.Uint32(wire[off:]) - elapsed
			}
			binary.BigEndian.PutUint32(msg[off:], ttl)
		}
	}
	if q.EDNS {
		b := msg[n : n+opt]
		b[0] = 0 // root owner
		binary.BigEndian.PutUint16(b[1:], typeOPT)
		binary.BigEndian.PutUint16(b[3:], ourUDPSize)
		b[5], b[6], b[7], b[8] = 0, 0, 0, 0 // EXTENDED-RCODE 0 (only NOERROR and NXDOMAIN are stored), VERSION 0, flags
		if q.DO {
			b[7] = 0x80
		}
		binary.BigEndian.PutUint16(b[9:], uint16(opt-optLen))
		if opt > optLen {
			binary.BigEndian.PutUint16(b[11:], optionEDE)
			binary.BigEndian.PutUint16(b[13:], 2)
			binary.BigEndian.PutUint16(b[15:], edeStale)
		}
		n += opt
		ar++
	}
	binary.BigEndian.PutUint16(msg[offAR:], ar)
	return n, tc
}

// matches reports whether e answers the question of query (whose header
// and question are query[:len(query)]) with type, class and key bits.
func (e *entry) matches(query []byte, qtype, qclass uint16, bits uint8) bool {
	if e.qtype != qtype || e.qclass != qclass || e.bits != bits || int(e.qEnd) != len(query) {
		return false
	}
	// The names, case-insensitively (RFC 4343): length bytes are at most
	// 63 and never fold, so comparing the wire bytes folded is exact.
	a, b := query[headerLen:len(query)-4], e.wire[headerLen:int(e.qEnd)-4]
	for i := range a {
		x, y := a[i], b[i]
		if x != y && lower(x) != lower(y) {
			return false
		}
	}
	return true
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// hash is the key's hash: the lower-cased dotted name (Question.Name),
// type, class and key bits.
func (c *Cache) hash(name []byte, qtype, qclass uint16, bits uint8) uint64 {
	h := maphash.Bytes(c.seed, name)
	h ^= uint64(qtype)<<32 | uint64(qclass)<<16 | uint64(bits)
	// splitmix64's finaliser spreads the small fields over every bit, so
	// that both the shard (top bits) and the slot (low bits) depend on
	// them.
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
}

func (c *Cache) shard(h uint64) *shard {
	return &c.shards[h>>c.shift]
}

// Flush removes every entry.
func (c *Cache) Flush() {
	for i := range c.shards {
		c.shards[i].flush()
	}
}

// FlushName removes the entries of name and of every name under it, of
// every type and class: what a user means by "flush example.com" after
// changing a zone. name is dotted, any letter case, with or without the
// final dot; "" or "." flushes everything. It returns the number of
// entries removed. A Lookup that runs concurrently may still answer from
// an entry being removed; one that starts after FlushName returns does
// not.
func (c *Cache) FlushName(name string) int {
	name = strings.TrimSuffix(strings.ToLower(name), ".")
	n := 0
	for i := range c.shards {
		n += c.shards[i].flushName(name)
	}
	return n
}

// Stats returns the counters. They are read one by one, not as a
// snapshot, but Bytes never exceeds MaxBytes.
func (c *Cache) Stats() Stats {
	var st Stats
	for i := range c.stripes {
		s := &c.stripes[i]
		st.Hits += s.hits.Load()
		st.Misses += s.misses.Load()
		st.Stale += s.stale.Load()
		st.Prefetch += s.prefetch.Load()
	}
	for i := range c.shards {
		s := &c.shards[i]
		st.Evictions += s.evictions.Load()
		st.Entries += s.entries.Load()
		st.Bytes += s.bytesNow.Load()
	}
	return st
}

// shard is one of the cache's independent parts, picked by the key's
// hash. Readers use only table and the counters; everything else belongs
// to the holder of mu.
type shard struct {
	mu     sync.Mutex
	table  atomic.Pointer[table]
	q      sieve
	live   int // entries in the table
	bytes  int // charged: entries plus table slots
	budget int
	// What Stats reads: written by the holder of mu.
	evictions         atomic.Uint64
	entries, bytesNow atomic.Int64
	// Shards are adjacent in one slice: keep each shard's table pointer,
	// which every reader loads, off the lines the writers of its
	// neighbours write.
	_ [64]byte
}

// SPDX-License-Identifier: MIT

package cache

import (
	"encoding/binary"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/dnstun/dnstun/packet"
)

// EntryOverhead is what each entry is charged beyond its buffer (the wire
// bytes and TTL offsets, rounded up to the heap's size class as allocated):
// the entry struct, 112 bytes as allocated on 64-bit platforms, and a
// margin. Table slots are charged apart. A test holds the heap growth per
// entry within the charge.
const EntryOverhead = 160

// entry is one stored answer. Everything but the atomics and the queue
// links is written before the entry is published and never after, so
// readers use it without a lock; prev and next belong to the shard's
// mutex.
type entry struct {
	hash uint64
	// wire is the answer as received, less the OPT record, with every TTL
	// already clamped (see normalise); its tail past len(wire) holds the
	// TTL offsets as big-endian uint16 (one allocation for both).
	wire   []byte
	nTTL   int
	qEnd   uint16
	qtype  uint16
	qclass uint16
	bits   uint8
	size   int // charged bytes
	stored int64
	// expires is stored+ttl; prefetchAt when a hot entry asks for a
	// refresh.
	expires    int64
	prefetchAt int64

	hits       atomic.Uint32 // saturating at prefetchHits
	visited    atomic.Bool   // SIEVE: hit since the hand last passed
	prefetched atomic.Bool

	prev, next *entry // the shard's queue: prev is newer, next older
}

// ttlOffset returns the offset in wire of the i-th TTL field.
func (e *entry) ttlOffset(i int) int {
	return int(binary.BigEndian.Uint16(e.wire[len(e.wire)+2*i : cap(e.wire)]))
}

// Store caches the upstream answer msg, as received (any ID; the
// question's case does not matter). It copies msg and keeps no reference
// to it. The key comes from the answer: its question, the DO bit of its
// OPT record (copied from the query, RFC 3225 §3) and its CD bit (copied
// from the query, RFC 4035 §3.1.6), so the key says what the answer
// holds. now is the caller's clock in nanoseconds, the one Lookup gets.
//
// Store returns one of the Err values when the answer is not cached (see
// the package documentation for what is), nil when it is. A stored answer
// replaces the entry of the same key. The cache trusts msg as far as the
// caller does: pass only answers matched to a query sent upstream (ID,
// upstream, question), before any truncation for the client.
func (c *Cache) Store(msg []byte, now int64) error {
	var q packet.Question
	if len(msg) > packet.StreamLimit || packet.ReadReply(msg, &q) != packet.OK {
		return ErrMalformed
	}
	sc := scans.Get().(*scan)
	defer scans.Put(sc)
	if err := sc.walk(msg, &q); err != nil {
		return err
	}
	ttl, err := c.entryTTL(sc)
	if err != nil {
		return err
	}
	bits := uint8(0)
	if sc.do {
		bits |= keyDO
	}
	if q.Flags&flagCD != 0 {
		bits |= keyCD
	}
	wlen := sc.end
	if sc.optOff > 0 {
		wlen = sc.optOff
	}
	// slices.Grow rounds the capacity up to the heap's size class, so
	// cap(buf) is what the buffer really takes, and what is charged.
	buf := slices.Grow([]byte(nil), wlen+2*sc.nTTL)[:wlen+2*sc.nTTL]
	copy(buf, msg[:wlen])
	for i, off := range sc.ttls[:sc.nTTL] {
		binary.BigEndian.PutUint16(buf[wlen+2*i:], off)
	}
	if sc.optOff > 0 {
		binary.BigEndian.PutUint16(buf[offAR:], binary.BigEndian.Uint16(buf[offAR:])-1)
	}
	e := &entry{
		hash:   c.hash(q.Name(), q.QType, q.QClass, bits),
		wire:   buf[:wlen],
		nTTL:   sc.nTTL,
		qEnd:   uint16(q.End),
		qtype:  q.QType,
		qclass: q.QClass,
		bits:   bits,
		size:   cap(buf) + EntryOverhead,
		stored: now,
	}
	life := int64(ttl) * secondNanos
	e.expires = now + life
	e.prefetchAt = e.expires - max(life/prefetchDiv, prefetchMin)
	normalise(e.wire, sc.ttls[:sc.nTTL], ttl, c.maxTTL, sc.negative)
	if !c.shard(e.hash).insert(e) {
		return ErrTooLarge
	}
	return nil
}

// entryTTL is how long the walked answer is kept, in seconds: the lowest
// TTL of its answer and authority records, the SOA counting
// min(TTL, MINIMUM) (RFC 2308 §5); a positive answer's raised to MinTTL;
// capped at MaxTTL, and a negative answer's at negativeTTLCap.
func (c *Cache) entryTTL(sc *scan) (uint32, error) {
	ttl := sc.minTTL
	if sc.negative {
		ttl = min(ttl, c.maxTTL, negativeTTLCap)
	} else {
		ttl = min(max(ttl, c.minTTL), c.maxTTL)
	}
	if ttl == 0 {
		return 0, ErrZeroTTL
	}
	return ttl, nil
}

// normalise rewrites the TTL fields at offs in wire so that Lookup can
// decrement them without checks: none below the entry's ttl (a record
// whose TTL MinTTL raised, or one in the additional section, would
// otherwise reach 0 or wrap before the entry expires) and none above
// maxTTL (a client must not keep longer than the cache does). A negative
// answer's records all get its ttl: the client derives its own negative
// TTL from the SOA (RFC 2308 §5).
func normalise(wire []byte, offs []uint16, ttl, maxTTL uint32, negative bool) {
	for _, off := range offs {
		v := binary.BigEndian.Uint32(wire[off:])
		if negative {
			v = ttl
		} else {
			v = min(max(v, ttl), maxTTL)
		}
		binary.BigEndian.PutUint32(wire[off:], v)
	}
}

// Types and classes that are never cached: meta-types (RFC 6895 §3.1)
// answer differently every time or are not answers at all.
const (
	typeCNAME = 5
	typeSOA   = 6
	typeTSIG  = 250 // RFC 8945: a signed answer is for one query only
	typeIXFR  = 251
	typeAXFR  = 252
	typeMAILB = 253
	typeMAILA = 254
	typeANY   = 255 // RFC 8482
	classNONE = 254
	classANY  = 255
)

// maxRecords bounds the records a stored answer may have: each takes at
// least 11 bytes, so a message of at most 65535 bytes holds fewer. Offsets
// in such a message fit 16 bits.
const maxRecords = 65535 / 11

// scan is what walking an answer found.
type scan struct {
	end      int  // just past the last record
	optOff   int  // offset of the OPT record, 0 if none
	do       bool // its DO bit
	negative bool // NXDOMAIN or NODATA
	minTTL   uint32
	nTTL     int
	ttls     [maxRecords]uint16
}

// scans recycles scan values: one is 12 KB, which Store would otherwise
// zero (or allocate) on every call.
var scans = sync.Pool{New: func() any { return new(scan) }}

// rewritten reports whether msg[off:off+n] overlaps a byte Lookup
// rewrites: the header or a TTL field walked so far. No name may be read
// from there through a pointer, or it would change as the TTLs count
// down. The TTL offsets grow as the walk goes, so a binary search finds
// the one field that could overlap.
func (sc *scan) rewritten(off, n int) bool {
	if off < headerLen {
		return true
	}
	i, _ := slices.BinarySearch(sc.ttls[:sc.nTTL], uint16(off+n))
	return i > 0 && int(sc.ttls[i-1])+4 > off
}

// walk checks the answer msg, whose header and question q holds (from
// packet.ReadReply), for what may be cached, and walks its records (RFC
// 1035 §4.1.3): every owner name is checked, compression pointers
// followed backwards only, every length bounded by msg. It records the
// offset of every TTL but the OPT's and the lowest TTL of the answer and
// authority sections.
func (sc *scan) walk(msg []byte, q *packet.Question) error {
	sc.end, sc.optOff, sc.do, sc.negative, sc.nTTL = 0, 0, false, false, 0
	switch {
	case q.Flags&flagTC != 0:
		return ErrTruncated
	case q.Flags&maskOpcode != 0 || q.Flags&flagRD == 0,
		q.QType == typeOPT || q.QType == typeTSIG || q.QType >= typeIXFR && q.QType <= typeANY,
		q.QClass == classNONE || q.QClass == classANY:
		return ErrUncacheable
	}
	rcode := q.Flags & maskRcode
	if rcode != rcodeNoError && rcode != rcodeNXDomain {
		return ErrRcode
	}
	an := int(binary.BigEndian.Uint16(msg[offAN:]))
	ns := int(binary.BigEndian.Uint16(msg[offNS:]))
	total := an + ns + int(binary.BigEndian.Uint16(msg[offAR:]))
	if total > maxRecords {
		return ErrMalformed
	}
	sc.minTTL = ^uint32(0)
	answered, soa := false, false
	off := q.End
	for i := range total {
		start := off
		end, ok := sc.name(msg, off, len(msg))
		if !ok || end+10 > len(msg) {
			return ErrMalformed
		}
		typ := binary.BigEndian.Uint16(msg[end:])
		class := binary.BigEndian.Uint16(msg[end+2:])
		ttl := binary.BigEndian.Uint32(msg[end+4:])
		rd := end + 10
		rdlen := int(binary.BigEndian.Uint16(msg[end+8:]))
		if rd+rdlen > len(msg) {
			return ErrMalformed
		}
		off = rd + rdlen
		switch {
		case typ == typeOPT:
			// RFC 6891 §6.1.1: in the additional section, owned by the
			// root, at most one. Stripping it must not move a record a
			// compression pointer could refer to, so it must come last.
			if i < an+ns || sc.optOff != 0 || msg[start] != 0 {
				return ErrMalformed
			}
			if i != total-1 {
				return ErrOPTNotLast
			}
			if msg[end+4] != 0 {
				// EXTENDED-RCODE (RFC 6891 §6.1.3): BADVERS and the like.
				return ErrRcode
			}
			sc.optOff = start
			sc.do = msg[end+6]&0x80 != 0
			continue
		case typ == typeTSIG:
			return ErrSigned
		}
		sc.ttls[sc.nTTL] = uint16(end + 4)
		sc.nTTL++
		if err := sc.rdataNames(msg, typ, rd, off); err != nil {
			return err
		}
		if i >= an+ns {
			continue // the additional section does not limit the TTL
		}
		if i < an && class == q.QClass && (typ == q.QType) {
			answered = true
		}
		if i >= an && typ == typeSOA {
			soa = true
			ttl = min(ttl, binary.BigEndian.Uint32(msg[off-4:]))
		}
		sc.minTTL = min(sc.minTTL, ttl)
	}
	sc.end = off
	sc.negative = rcode == rcodeNXDomain || !answered
	if sc.negative && !soa {
		// RFC 2308 §5: no SOA, no negative caching; a NOERROR answer
		// without the type and without an SOA is a referral or empty.
		return ErrNoSOA
	}
	return nil
}

// rdataNames checks the domain names in the RDATA msg[rd:end] of a record
// of type typ, wherever a decoder follows compression pointers in them:
// the types of RFC 1035 and those RFC 3597 §4 lists, and the newer ones
// whose names decoders such as miekg/dns read (RRSIG, NSEC, SVCB, HTTPS).
// A record of a type with names it does not walk is not cached.
func (sc *scan) rdataNames(msg []byte, typ uint16, rd, end int) error {
	skip, names := 0, 0
	switch typ {
	case 2, 3, 4, 5, 7, 8, 9, 12, 39: // NS MD MF CNAME MB MG MR PTR DNAME
		names = 1
	case 6, 14, 17: // SOA MINFO RP (SOA's 20 bytes of numbers follow)
		names = 2
	case 15, 18, 21, 36, 64, 65: // MX AFSDB RT KX SVCB HTTPS: a 16-bit number first
		skip, names = 2, 1
	case 26: // PX
		skip, names = 2, 2
	case 33: // SRV: priority, weight, port
		skip, names = 6, 1
	case 24, 46: // SIG RRSIG: the signer after 18 bytes of fields
		skip, names = 18, 1
	case 30, 47: // NXT NSEC: the next name first
		names = 1
	case 35: // NAPTR: order, preference, three <character-string>s
		skip, names = 4, 1
		for range 3 {
			if rd+skip >= end {
				return ErrMalformed
			}
			skip += 1 + int(msg[rd+skip])
		}
	case 23, 45, 55, 58, 107, 249, 260: // NSAP-PTR IPSECKEY HIP TALINK LP TKEY AMTRELAY
		return ErrUncacheable
	}
	off := rd + skip
	if names > 0 && off > end {
		return ErrMalformed
	}
	for range names {
		next, ok := sc.name(msg, off, end)
		if !ok {
			return ErrMalformed
		}
		off = next
	}
	if typ == typeSOA && end-off != 20 {
		// SERIAL REFRESH RETRY EXPIRE MINIMUM (RFC 1035 §3.3.13): walk
		// reads MINIMUM as the last 4 bytes.
		return ErrMalformed
	}
	return nil
}

// name returns the offset just past the name at off, which must end by
// limit (at most len(msg)), after checking it whole: no reserved label
// types, at most 255 bytes, compression pointers (RFC 1035 §4.1.4) only
// backwards (so no loops), at most 127 of them, and nothing read through a
// pointer from a byte Lookup rewrites.
func (sc *scan) name(msg []byte, off, limit int) (int, bool) {
	end := -1
	wire := 0
	for jumps := 0; ; {
		if off >= limit {
			return 0, false
		}
		l := int(msg[off])
		n := 1 + l
		if l&0xc0 == 0xc0 {
			n = 2
		}
		// Inline, the name stays within limit; through pointers, wholly
		// before the first pointer (a prior occurrence, RFC 1035 §4.1.4),
		// where every rewritten byte is already known.
		if end < 0 && off+n > limit || end >= 0 && (off+n > end-2 || sc.rewritten(off, n)) {
			return 0, false
		}
		switch l & 0xc0 {
		case 0xc0:
			if jumps == 127 {
				return 0, false
			}
			ptr := int(binary.BigEndian.Uint16(msg[off:]) & 0x3fff)
			if ptr >= off {
				return 0, false
			}
			if end < 0 {
				end = off + 2
			}
			off = ptr
			jumps++
			continue
		case 0x40, 0x80:
			return 0, false
		}
		wire += n
		if wire > packet.MaxName {
			return 0, false
		}
		off += n
		if l == 0 {
			if end < 0 {
				end = off
			}
			return end, true
		}
	}
}

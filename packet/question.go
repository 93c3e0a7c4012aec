// SPDX-License-Identifier: MIT

package packet

import "encoding/binary"

// MaxName is the longest domain name on the wire, in bytes (RFC 1035 §3.1).
const MaxName = 255

// DNS message layout (RFC 1035 §4.1.1): a 12-byte header of six 16-bit
// words: ID, flags, QDCOUNT, ANCOUNT, NSCOUNT, ARCOUNT.
const (
	dnsHeaderLen = 12
	offFlags     = 2
	offQD        = 4
	offAN        = 6
	offNS        = 8
	offAR        = 10

	flagQR = 0x8000 // query (0) or response (1)
	flagAA = 0x0400
	flagTC = 0x0200
	flagRD = 0x0100
	flagRA = 0x0080
	flagZ  = 0x0040
	flagAD = 0x0020 // RFC 4035 §3.1.6
	flagCD = 0x0010 // RFC 4035 §3.1.6

	maskOpcode = 0x7800 // bits 11-14
	maskRcode  = 0x000f

	typeOPT = 41 // RFC 6891 §6.1.1
)

// Question is a decoded DNS query header and question, written by
// ReadQuestion or ReadReply into memory the caller owns. It is large (about
// 280 bytes): keep one per goroutine and reuse it. A Question belongs to one
// goroutine at a time.
type Question struct {
	ID            uint16
	Flags         uint16 // header flags word as on the wire (QR, opcode, AA, TC, RD, RA, Z, AD, CD, rcode)
	QType, QClass uint16
	EDNS          bool   // an OPT RR was present (in a query)
	DO            bool   // its DO bit
	UDPSize       uint16 // the OPT's UDP payload size (0 when no EDNS)
	EDNSVersion   uint8  // the OPT's VERSION (RFC 6891 §6.1.3; 0 when no EDNS)
	End           int    // offset just past the question section in the message
	nameLen       uint8
	name          [MaxName]byte
}

// Name returns the query name: labels joined with '.', no trailing dot,
// ASCII A-Z lower-cased; the root name is empty. The result has at most 253
// bytes and aliases q (copy it to keep it past the next read into q).
//
// Label bytes other than A-Z are kept as they are, unescaped. In particular
// a '.' inside a label (legal on the wire, written "a\.b" in presentation
// form) is indistinguishable here from a label boundary: the wire name
// {"ads.example", "com"} is returned as "ads.example.com". A rule matcher
// working on suffixes then sees every true ancestor of the name (the last
// labels are unchanged) plus some names that are not ancestors, so such a
// name can match more rules than its true form would, never fewer. Bytes
// such as 0x00, spaces or non-ASCII are returned verbatim.
func (q *Question) Name() []byte {
	return q.name[:q.nameLen]
}

// reset zeroes q without clearing the name buffer (only nameLen matters).
func (q *Question) reset() {
	q.ID, q.Flags, q.QType, q.QClass = 0, 0, 0, 0
	q.EDNS, q.DO, q.UDPSize, q.EDNSVersion = false, false, 0, 0
	q.End, q.nameLen = 0, 0
}

// ReadQuestion reads a query message msg into q. The header is checked
// first, in the manner of miekg/dns's MsgAcceptFunc:
//
//   - shorter than 12 bytes: DropShortDNS
//   - QR=1: DropResponse
//   - opcode != 0 (QUERY): NotImp
//   - QDCOUNT != 1, ANCOUNT != 0 or NSCOUNT != 0: FormErr
//
// Then the question is read strictly: no compression pointers, no reserved
// label types (0x40, 0x80), labels <= 63 bytes, the wire name <= 255 bytes,
// and type and class present; otherwise FormErr. Then ARCOUNT additional
// records are walked (their owner names may use compression pointers; every
// length is bounds checked) and the OPT record (RFC 6891 §6.1.1) is
// recorded: its owner must be the root, there may be only one, and its
// options must be well formed, otherwise FormErr. Bytes after the last
// record are ignored.
//
// On OK, q holds the whole question and q.End is the offset just past it.
// On NotImp and FormErr, q holds ID and Flags, the name is empty and End is
// 12, so that AnswerDNS answers with the header only (QDCOUNT 0), as
// miekg/dns's server does for rejected messages. On the drop reasons q is
// zero. ReadQuestion keeps no reference to msg.
func ReadQuestion(msg []byte, q *Question) Reason {
	q.reset()
	if len(msg) < dnsHeaderLen {
		return DropShortDNS
	}
	flags := binary.BigEndian.Uint16(msg[offFlags:])
	if flags&flagQR != 0 {
		return DropResponse
	}
	q.ID = binary.BigEndian.Uint16(msg)
	q.Flags = flags
	q.End = dnsHeaderLen
	if flags&maskOpcode != 0 {
		return NotImp
	}
	if binary.BigEndian.Uint16(msg[offQD:]) != 1 ||
		binary.BigEndian.Uint16(msg[offAN:]) != 0 ||
		binary.BigEndian.Uint16(msg[offNS:]) != 0 {
		return FormErr
	}
	end, ok := q.readQuestion(msg)
	if !ok {
		q.nameLen, q.QType, q.QClass = 0, 0, 0
		return FormErr
	}
	if !q.readAdditional(msg, end, binary.BigEndian.Uint16(msg[offAR:])) {
		q.nameLen, q.QType, q.QClass = 0, 0, 0
		q.EDNS, q.DO, q.UDPSize, q.EDNSVersion = false, false, 0, 0
		return FormErr
	}
	q.End = end
	return OK
}

// ReadReply reads the header and question of an upstream response msg into
// q: shorter than 12 bytes is DropShortDNS, QR=0 is DropResponse, QDCOUNT
// != 1 is FormErr, and the question is read with the same strict rules as
// in ReadQuestion. The other sections are not parsed; EDNS, DO and UDPSize
// stay zero. On FormErr q holds ID and Flags only (End 12). ReadReply keeps
// no reference to msg.
func ReadReply(msg []byte, q *Question) Reason {
	q.reset()
	if len(msg) < dnsHeaderLen {
		return DropShortDNS
	}
	flags := binary.BigEndian.Uint16(msg[offFlags:])
	if flags&flagQR == 0 {
		return DropResponse
	}
	q.ID = binary.BigEndian.Uint16(msg)
	q.Flags = flags
	q.End = dnsHeaderLen
	if binary.BigEndian.Uint16(msg[offQD:]) != 1 {
		return FormErr
	}
	end, ok := q.readQuestion(msg)
	if !ok {
		q.nameLen, q.QType, q.QClass = 0, 0, 0
		return FormErr
	}
	q.End = end
	return OK
}

// readQuestion reads the single question entry (RFC 1035 §4.1.2) starting
// at offset 12: QNAME as uncompressed labels, then QTYPE and QCLASS. It
// fills the name, QType and QClass and returns the offset past the entry.
func (q *Question) readQuestion(msg []byte) (int, bool) {
	off := dnsHeaderLen
	wire := 0 // wire length of the name so far
	n := 0    // bytes written to q.name
	for {
		if off >= len(msg) {
			return 0, false
		}
		l := int(msg[off])
		if l&0xc0 != 0 {
			// 0xC0 pointer, 0x40/0x80 reserved (RFC 1035 §4.1.4,
			// RFC 6891 §5): not allowed in a question we answer. This
			// also rejects labels longer than 63 bytes.
			return 0, false
		}
		off++
		if l == 0 {
			break
		}
		// This label plus the root label still to come must fit.
		if wire+1+l+1 > MaxName {
			return 0, false
		}
		wire += 1 + l
		if off+l > len(msg) {
			return 0, false
		}
		if n > 0 {
			q.name[n] = '.'
			n++
		}
		for _, c := range msg[off : off+l] {
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			q.name[n] = c
			n++
		}
		off += l
	}
	if off+4 > len(msg) {
		return 0, false
	}
	q.nameLen = uint8(n)
	q.QType = binary.BigEndian.Uint16(msg[off:])
	q.QClass = binary.BigEndian.Uint16(msg[off+2:])
	return off + 4, true
}

// readAdditional walks count resource records (RFC 1035 §4.1.3) from off and
// records the OPT pseudo-record (RFC 6891 §6.1.2). It reports false on any
// malformed record.
func (q *Question) readAdditional(msg []byte, off int, count uint16) bool {
	for range count {
		owner := off
		end, ok := skipName(msg, off)
		if !ok {
			return false
		}
		off = end
		// TYPE(2) CLASS(2) TTL(4) RDLENGTH(2), then RDATA.
		if off+10 > len(msg) {
			return false
		}
		typ := binary.BigEndian.Uint16(msg[off:])
		class := binary.BigEndian.Uint16(msg[off+2:])
		ttl := msg[off+4 : off+8]
		rdlen := int(binary.BigEndian.Uint16(msg[off+8:]))
		off += 10
		if off+rdlen > len(msg) {
			return false
		}
		if typ == typeOPT {
			// RFC 6891 §6.1.1: owner is the root; §6.1.1: more than
			// one OPT is a FORMERR.
			if q.EDNS || !isRoot(msg, owner) || !optionsValid(msg[off:off+rdlen]) {
				return false
			}
			q.EDNS = true
			q.UDPSize = class // §6.1.2: CLASS is the requestor's UDP payload size
			// §6.1.3: TTL is EXTENDED-RCODE(1) VERSION(1) then the flags
			// word, whose top bit is DO (RFC 3225).
			q.DO = ttl[2]&0x80 != 0
			q.EDNSVersion = ttl[1]
		}
		off += rdlen
	}
	return true
}

// skipName returns the offset just past the (possibly compressed) name at
// off. Labels are bounds checked; a pointer (RFC 1035 §4.1.4) ends the name
// and is not followed; reserved label types are rejected.
func skipName(msg []byte, off int) (int, bool) {
	wire := 0
	for {
		if off >= len(msg) {
			return 0, false
		}
		l := int(msg[off])
		switch l & 0xc0 {
		case 0xc0:
			if off+2 > len(msg) {
				return 0, false
			}
			return off + 2, true
		case 0x40, 0x80:
			return 0, false
		}
		wire += 1 + l
		if wire > MaxName {
			return 0, false
		}
		off += 1 + l
		if l == 0 {
			return off, true
		}
	}
}

// isRoot reports whether the name at off is the root: a zero byte, or a
// compression pointer to a zero byte.
func isRoot(msg []byte, off int) bool {
	if msg[off] == 0 {
		return true
	}
	if msg[off]&0xc0 != 0xc0 {
		return false
	}
	t := int(binary.BigEndian.Uint16(msg[off:]) & 0x3fff)
	return t < len(msg) && msg[t] == 0
}

// optionsValid checks that OPT RDATA is a sequence of {OPTION-CODE(2),
// OPTION-LENGTH(2), OPTION-DATA} that ends exactly at the end of the RDATA
// (RFC 6891 §6.1.2).
func optionsValid(rd []byte) bool {
	for len(rd) > 0 {
		if len(rd) < 4 {
			return false
		}
		n := 4 + int(binary.BigEndian.Uint16(rd[2:]))
		if n > len(rd) {
			return false
		}
		rd = rd[n:]
	}
	return true
}

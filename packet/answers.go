// SPDX-License-Identifier: MIT

package packet

import (
	"encoding/binary"
	"net/netip"
)

// MaxAnswerNames and MaxAnswerAddrs bound what ReadAnswers collects.
const (
	MaxAnswerNames = 8
	MaxAnswerAddrs = 16
)

// Answers is what an upstream reply's answer section holds that a filter
// inspects: CNAME targets (lower-case, dotted, no final dot, like
// Question.Name) and A/AAAA addresses. It is caller-owned scratch: fill it
// with ReadAnswers, read Names and Addrs; nothing allocates.
type Answers struct {
	nNames  int
	nAddrs  int
	nameLen [MaxAnswerNames]uint8
	names   [MaxAnswerNames][MaxName]byte
	views   [MaxAnswerNames][]byte
	addrs   [MaxAnswerAddrs]netip.Addr
}

// Names returns the CNAME targets found; the slices alias a.
func (a *Answers) Names() [][]byte {
	for i := range a.nNames {
		a.views[i] = a.names[i][:a.nameLen[i]]
	}
	return a.views[:a.nNames]
}

// Addrs returns the addresses found; the slice aliases a.
func (a *Answers) Addrs() []netip.Addr { return a.addrs[:a.nAddrs] }

// ReadAnswers walks the answer section of the reply msg, which starts at
// q.End (q filled by ReadReply), and collects CNAME targets and addresses,
// up to the bounds; the rest are skipped. It returns false if the section
// is malformed (then a is partly filled and should not be trusted).
// Compression pointers are followed, at most 32 jumps per name, backwards
// only (RFC 1035 §4.1.4), so hostile messages cannot loop.
func ReadAnswers(msg []byte, q *Question, a *Answers) bool {
	a.nNames, a.nAddrs = 0, 0
	if len(msg) < dnsHeaderLen || q.End < dnsHeaderLen {
		return false
	}
	an := int(binary.BigEndian.Uint16(msg[offAN:]))
	off := q.End
	for range an {
		end, ok := skipName(msg, off)
		if !ok || end+10 > len(msg) {
			return false
		}
		typ := binary.BigEndian.Uint16(msg[end:])
		class := binary.BigEndian.Uint16(msg[end+2:])
		rdlen := int(binary.BigEndian.Uint16(msg[end+8:]))
		rd := end + 10
		if rd+rdlen > len(msg) {
			return false
		}
		if class == classIN {
			switch {
			case typ == typeCNAME && a.nNames < MaxAnswerNames:
				n, ok := readName(msg, rd, &a.names[a.nNames])
				if !ok {
					return false
				}
				a.nameLen[a.nNames] = uint8(n)
				a.nNames++
			case typ == typeA && rdlen == 4 && a.nAddrs < MaxAnswerAddrs:
				a.addrs[a.nAddrs] = netip.AddrFrom4([4]byte(msg[rd : rd+4]))
				a.nAddrs++
			case typ == typeAAAA && rdlen == 16 && a.nAddrs < MaxAnswerAddrs:
				a.addrs[a.nAddrs] = netip.AddrFrom16([16]byte(msg[rd : rd+16]))
				a.nAddrs++
			}
		}
		off = rd + rdlen
	}
	return true
}

// readName decodes the possibly compressed name at off into dst as
// lower-case dotted text without the final dot, and returns its length.
func readName(msg []byte, off int, dst *[MaxName]byte) (int, bool) {
	n, wire, jumps := 0, 0, 0
	for {
		if off >= len(msg) {
			return 0, false
		}
		l := int(msg[off])
		switch l & 0xc0 {
		case 0xc0:
			if off+2 > len(msg) || jumps == 32 {
				return 0, false
			}
			ptr := int(binary.BigEndian.Uint16(msg[off:]) & 0x3fff)
			if ptr >= off {
				return 0, false // only backwards: no loops
			}
			off, jumps = ptr, jumps+1
			continue
		case 0x40, 0x80:
			return 0, false
		}
		if l == 0 {
			return n, true
		}
		wire += 1 + l
		if wire > MaxName-1 || off+1+l > len(msg) {
			return 0, false
		}
		if n > 0 {
			dst[n] = '.'
			n++
		}
		for _, c := range msg[off+1 : off+1+l] {
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			dst[n] = c
			n++
		}
		off += 1 + l
	}
}

// WellFormed reports whether the records of the reply msg (after the
// question ending at qEnd, read by ReadReply) are whole: each an owner name
// that reads, the fixed fields, and RDATA within the message. A reply that
// fails it is not passed on: a client would get a message it cannot parse,
// and the rules on answers could not inspect it. A reply that ends cleanly
// after a record while its counts announce more is accepted, as miekg/dns
// and stub resolvers read it (a truncated answer). RDATA itself is not
// checked. It does not allocate.
func WellFormed(msg []byte, qEnd int) bool {
	if len(msg) < dnsHeaderLen || qEnd < dnsHeaderLen || qEnd > len(msg) {
		return false
	}
	n := int(binary.BigEndian.Uint16(msg[offAN:])) + int(binary.BigEndian.Uint16(msg[offNS:])) + int(binary.BigEndian.Uint16(msg[offAR:]))
	off := qEnd
	for range n {
		if off == len(msg) {
			return true // fewer records than announced, none cut
		}
		end, ok := skipName(msg, off)
		if !ok || end+10 > len(msg) {
			return false
		}
		rd := end + 10
		rdlen := int(binary.BigEndian.Uint16(msg[end+8:]))
		if rd+rdlen > len(msg) {
			return false
		}
		off = rd + rdlen
	}
	return true
}

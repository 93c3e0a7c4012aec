// SPDX-License-Identifier: MIT

package packet

import (
	"encoding/binary"
	"net/netip"
)

// Reply describes a locally built answer.
type Reply struct {
	// Rcode is the response code: 0 NOERROR, 2 SERVFAIL, 3 NXDOMAIN, 5
	// REFUSED, ... The low 4 bits go into the header; the high bits into
	// the OPT EXTENDED-RCODE when the query had EDNS (RFC 6891 §6.1.3),
	// and are lost otherwise.
	Rcode uint8
	// TTL of the answer records.
	TTL uint32
	// Addrs are the answer addresses. Only those matching the question are
	// written: an A (type 1) question gets the Is4 ones, AAAA (28) the Is6
	// ones (v4-mapped included), any other type none (NODATA). The class
	// must be IN (1) or nothing is written.
	Addrs []netip.Addr
	// CNAME, when set, is a target name in wire format (uncompressed
	// labels ending with the root byte): a CNAME record from the question's
	// name to it is written first, and the address records that follow
	// are owned by the target (RFC 1034 §3.6.2).
	CNAME []byte
	// PTR, when set, is a target name in wire format answering a PTR (12)
	// question.
	PTR []byte
	// TXT strings (each at most 255 bytes) answer a TXT (16) question,
	// one record each.
	TXT [][]byte
	// EDE is an RFC 8914 extended error INFO-CODE (e.g. 15 Blocked, 17
	// Filtered), written only when HasEDE is set and the query had EDNS.
	EDE    uint16
	HasEDE bool
}

const (
	typeA     = 1  // RFC 1035 §3.2.2
	typeCNAME = 5  // RFC 1035 §3.2.2
	typePTR   = 12 // RFC 1035 §3.2.2
	typeTXT   = 16 // RFC 1035 §3.2.2
	typeAAAA  = 28 // RFC 3596 §2.1
	classIN   = 1

	// rrFixedLen is a record with a compressed owner: pointer(2) TYPE(2)
	// CLASS(2) TTL(4) RDLENGTH(2) (RFC 1035 §4.1.3).
	rrFixedLen = 12
	// optLen is an OPT RR without options: root owner(1) TYPE(2) CLASS(2)
	// TTL(4) RDLENGTH(2) (RFC 6891 §6.1.2).
	optLen = 11
	// edeLen is an EDE option without EXTRA-TEXT: OPTION-CODE(2)
	// OPTION-LENGTH(2) INFO-CODE(2) (RFC 8914 §2).
	edeLen    = 6
	optionEDE = 15 // RFC 8914 §2

	// ourUDPSize is the UDP payload size we advertise (DNS flag day 2020).
	ourUDPSize = 1232
	// minUDPSize is what every client accepts (RFC 1035 §4.2.1; RFC 6891
	// §6.2.5: smaller advertised sizes are treated as 512).
	minUDPSize = 512

	ttlOut = 64 // IPv4 TTL and IPv6 hop limit of packets we build
)

// AnswerDNS turns the query message msg[:q.End], already read into q by
// ReadQuestion, into its answer, in place, and returns the answer's length.
//
// The header and question are kept. The flags word becomes QR=1, RA=1,
// AA=0, Z=0, AD=0, TC as needed, with opcode, RD and CD kept and rcode set
// from r. QDCOUNT is 1 (0 when q.End is 12, i.e. q came from a rejected
// message), ANCOUNT is the number of records written, NSCOUNT 0, ARCOUNT 1
// when an OPT is written. Answer records use a compression pointer to the
// question name at offset 12 (0xC00C) as owner. If q.EDNS, an OPT RR
// follows: UDP size 1232, DO echoed, and the EDE option when r asks for it.
//
// The answer may grow up to len(msg) and to the client's limit: 512 bytes
// without EDNS, else max(512, q.UDPSize). If the records do not fit they
// are all left out and TC is set. AnswerDNS returns 0 if even the header,
// question and OPT do not fit, or if q.End does not fit msg. Bytes of msg
// past q.End are overwritten.
func AnswerDNS(msg []byte, q *Question, r *Reply) int {
	return AnswerDNSTo(msg, q, r, ClientLimit(q))
}

// ClientLimit is the largest answer a client may receive over UDP for the
// query q: 512 bytes without EDNS (RFC 1035 §4.2.1), else its advertised
// size, at least 512 (RFC 6891 §6.2.5).
func ClientLimit(q *Question) int {
	if q.EDNS && int(q.UDPSize) > minUDPSize {
		return int(q.UDPSize)
	}
	return minUDPSize
}

// StreamLimit is the largest DNS message over TCP (RFC 1035 §4.2.2: a
// two-byte length).
const StreamLimit = 65535

// AnswerDNSTo is AnswerDNS with the client's limit given: ClientLimit(q)
// over UDP, StreamLimit over TCP.
func AnswerDNSTo(msg []byte, q *Question, r *Reply, limit int) int {
	base := q.End
	if base < dnsHeaderLen || base > len(msg) {
		return 0
	}
	limit = min(limit, len(msg))

	opt := 0
	if q.EDNS {
		opt = optLen
		if r.HasEDE {
			opt += edeLen
		}
	}
	if base+opt > limit {
		return 0
	}

	// Which records answer the question, and how big they are.
	inClass := base > dnsHeaderLen && q.QClass == classIN
	cname := 0 // the CNAME record's size
	if inClass && len(r.CNAME) > 0 && len(r.CNAME) <= MaxName {
		cname = rrFixedLen + len(r.CNAME)
	}
	rdlen := 0
	if inClass {
		switch q.QType {
		case typeA:
			rdlen = 4
		case typeAAAA:
			rdlen = 16
		}
	}
	count := 0
	if rdlen != 0 {
		for _, a := range r.Addrs {
			if matchAddr(a, rdlen) {
				count++
			}
		}
	}
	txt, txtSize := 0, 0
	if inClass && q.QType == typeTXT {
		for _, t := range r.TXT {
			if len(t) <= 255 {
				txt++
				txtSize += rrFixedLen + 1 + len(t)
			}
		}
	}
	ptr := 0
	if inClass && q.QType == typePTR && len(r.PTR) > 0 && len(r.PTR) <= MaxName {
		ptr = rrFixedLen + len(r.PTR)
	}
	tc := false
	if base+cname+count*(rrFixedLen+rdlen)+txtSize+ptr+opt > limit {
		cname, count, txt, txtSize, ptr, tc = 0, 0, 0, 0, 0, true
	}

	off := base
	owner := uint16(0xc000 | dnsHeaderLen) // pointer to the question name
	if cname > 0 {
		b := msg[off : off+cname]
		putRRHeader(b, owner, typeCNAME, r.TTL, len(r.CNAME))
		copy(b[rrFixedLen:], r.CNAME)
		owner = uint16(0xc000 | (off + rrFixedLen)) // the target owns what follows
		off += cname
	}
	if count > 0 {
		for _, a := range r.Addrs {
			if !matchAddr(a, rdlen) {
				continue
			}
			b := msg[off : off+rrFixedLen+rdlen]
			putRRHeader(b, owner, q.QType, r.TTL, rdlen)
			if rdlen == 4 {
				a4 := a.As4()
				copy(b[12:], a4[:])
			} else {
				a16 := a.As16()
				copy(b[12:], a16[:])
			}
			off += len(b)
		}
	}
	if txt > 0 {
		for _, t := range r.TXT {
			if len(t) > 255 {
				continue
			}
			b := msg[off : off+rrFixedLen+1+len(t)]
			putRRHeader(b, owner, typeTXT, r.TTL, 1+len(t))
			b[rrFixedLen] = byte(len(t)) // <character-string>: length, then bytes
			copy(b[rrFixedLen+1:], t)
			off += len(b)
		}
	}
	if ptr > 0 {
		b := msg[off : off+ptr]
		putRRHeader(b, owner, typePTR, r.TTL, len(r.PTR))
		copy(b[rrFixedLen:], r.PTR)
		off += ptr
		count++
	}
	if cname > 0 {
		count++
	}
	count += txt
	if q.EDNS {
		b := msg[off : off+opt]
		b[0] = 0 // root owner
		binary.BigEndian.PutUint16(b[1:], typeOPT)
		binary.BigEndian.PutUint16(b[3:], ourUDPSize)
		b[5] = r.Rcode >> 4 // EXTENDED-RCODE: upper 8 bits of the 12-bit rcode
		b[6] = 0            // VERSION
		b[7] = 0            // DO and Z
		if q.DO {
			b[7] = 0x80
		}
		b[8] = 0
		binary.BigEndian.PutUint16(b[9:], uint16(opt-optLen))
		if opt > optLen {
			binary.BigEndian.PutUint16(b[11:], optionEDE)
			binary.BigEndian.PutUint16(b[13:], 2)
			binary.BigEndian.PutUint16(b[15:], r.EDE)
		}
		off += opt
	}

	flags := q.Flags&(maskOpcode|flagRD|flagCD) | flagQR | flagRA | uint16(r.Rcode)&maskRcode
	if tc {
		flags |= flagTC
	}
	qd := uint16(0)
	if base > dnsHeaderLen {
		qd = 1
	}
	ar := uint16(0)
	if q.EDNS {
		ar = 1
	}
	binary.BigEndian.PutUint16(msg[0:], q.ID)
	binary.BigEndian.PutUint16(msg[offFlags:], flags)
	binary.BigEndian.PutUint16(msg[offQD:], qd)
	binary.BigEndian.PutUint16(msg[offAN:], uint16(count))
	binary.BigEndian.PutUint16(msg[offNS:], 0)
	binary.BigEndian.PutUint16(msg[offAR:], ar)
	return off
}

// matchAddr reports whether a belongs in a record with rdlen bytes of
// RDATA: 4 for A, 16 for AAAA.
// putRRHeader writes a record's fixed part with a compressed owner
// (RFC 1035 §4.1.3): pointer, TYPE, CLASS IN, TTL, RDLENGTH.
func putRRHeader(b []byte, owner, typ uint16, ttl uint32, rdlen int) {
	binary.BigEndian.PutUint16(b[0:], owner)
	binary.BigEndian.PutUint16(b[2:], typ)
	binary.BigEndian.PutUint16(b[4:], classIN)
	binary.BigEndian.PutUint32(b[6:], ttl)
	binary.BigEndian.PutUint16(b[10:], uint16(rdlen))
}

func matchAddr(a netip.Addr, rdlen int) bool {
	if rdlen == 4 {
		return a.Is4()
	}
	return a.Is6()
}

// AnswerInPlace turns the decoded query packet pkt into its answer, in
// place. The packet is pkt[:p.PayloadOff+p.PayloadLen]; len(pkt) is the
// room it may grow into. The DNS message is answered with AnswerDNS after
// being moved down if the IP header was longer than the standard one (IPv4
// options), then new IP and UDP headers are written at offset 0 from p.Dst
// to p.Src: IPv4 with a 20-byte header, TTL 64, DF, ID 0 and the header
// checksum (RFC 791); IPv6 with a 40-byte header, hop limit 64, traffic
// class and flow label 0 (RFC 8200); UDP with its length and checksum over
// the pseudo-header (RFC 768; a computed 0 is sent as 0xFFFF). The packet
// never exceeds 65535 bytes.
//
// It returns the length of the answer packet, or 0 if it cannot be built
// (p or q inconsistent with pkt, or no room); pkt may have been changed even
// then.
func AnswerInPlace(pkt []byte, p *Parsed, q *Question, r *Reply) int {
	src, dst := p.Dst.Addr(), p.Src.Addr() // the answer goes back
	hl := 0
	switch p.Family {
	case 4:
		if !src.Is4() || !dst.Is4() {
			return 0
		}
		hl = IPv4HeaderLen + UDPHeaderLen
	case 6:
		if !src.Is6() || !dst.Is6() {
			return 0
		}
		hl = IPv6HeaderLen + UDPHeaderLen
	default:
		return 0
	}
	if p.PayloadOff < hl || p.PayloadLen < q.End || q.End < dnsHeaderLen ||
		p.PayloadOff > len(pkt) || p.PayloadLen > len(pkt)-p.PayloadOff {
		return 0
	}
	if p.PayloadOff != hl {
		copy(pkt[hl:], pkt[p.PayloadOff:p.PayloadOff+q.End])
	}
	room := min(len(pkt), maxIPLen) - hl
	n := AnswerDNS(pkt[hl:hl+room], q, r)
	if n == 0 {
		return 0
	}
	writeHeaders(pkt[:hl+n], p.Family, src, dst, p.Dst.Port(), p.Src.Port())
	return hl + n
}

// WrapReply writes IPv4 or IPv6 + UDP headers immediately before the
// payload buf[payloadOff:payloadOff+n], so that the packet is
// buf[start:payloadOff+n], and returns start. The family comes from the
// addresses: from and to must be of the same family once v4-mapped IPv6
// addresses are unmapped. The headers follow the rules of AnswerInPlace.
// WrapReply returns -1 if payloadOff is smaller than the header length, the
// payload does not fit buf, the families differ or an address is invalid,
// or the packet would exceed 65535 bytes.
func WrapReply(buf []byte, payloadOff, n int, from, to netip.AddrPort) int {
	src, dst := from.Addr().Unmap(), to.Addr().Unmap()
	var fam uint8
	hl := 0
	switch {
	case src.Is4() && dst.Is4():
		fam, hl = 4, IPv4HeaderLen+UDPHeaderLen
	case src.Is6() && dst.Is6():
		fam, hl = 6, IPv6HeaderLen+UDPHeaderLen
	default:
		return -1
	}
	if n < 0 || payloadOff < hl || payloadOff > len(buf) || n > len(buf)-payloadOff || hl+n > maxIPLen {
		return -1
	}
	start := payloadOff - hl
	writeHeaders(buf[start:payloadOff+n], fam, src, dst, from.Port(), to.Port())
	return start
}

// writeHeaders writes the IP and UDP headers of the packet b, whose UDP
// payload fills the rest of b after the headers, and the checksums. src and
// dst are valid addresses of family fam.
func writeHeaders(b []byte, fam uint8, src, dst netip.Addr, sport, dport uint16) {
	var u []byte // UDP header and payload
	var ph uint64
	if fam == 4 {
		// RFC 791 §3.1.
		h := b[:IPv4HeaderLen]
		h[0] = 4<<4 | IPv4HeaderLen/4 // version, IHL
		h[1] = 0                      // TOS
		binary.BigEndian.PutUint16(h[2:], uint16(len(b)))
		binary.BigEndian.PutUint16(h[4:], 0)      // identification: DF is set, so 0 is fine (RFC 6864 §4.1)
		binary.BigEndian.PutUint16(h[6:], 0x4000) // flags DF, fragment offset 0
		h[8] = ttlOut
		h[9] = protoUDP
		h[10], h[11] = 0, 0
		s4, d4 := src.As4(), dst.As4()
		copy(h[12:16], s4[:])
		copy(h[16:20], d4[:])
		binary.BigEndian.PutUint16(h[10:], Checksum(h))
		u = b[IPv4HeaderLen:]
		ph = PseudoHeaderSum(h[12:16], h[16:20], protoUDP, len(u))
	} else {
		// RFC 8200 §3.
		h := b[:IPv6HeaderLen]
		binary.BigEndian.PutUint32(h[0:], 6<<28) // version, traffic class 0, flow label 0
		u = b[IPv6HeaderLen:]
		binary.BigEndian.PutUint16(h[4:], uint16(len(u))) // payload length
		h[6] = protoUDP                                   // next header
		h[7] = ttlOut                                     // hop limit
		s16, d16 := src.As16(), dst.As16()
		copy(h[8:24], s16[:])
		copy(h[24:40], d16[:])
		ph = PseudoHeaderSum(h[8:24], h[24:40], protoUDP, len(u))
	}
	// RFC 768.
	binary.BigEndian.PutUint16(u[0:], sport)
	binary.BigEndian.PutUint16(u[2:], dport)
	binary.BigEndian.PutUint16(u[4:], uint16(len(u)))
	u[6], u[7] = 0, 0
	binary.BigEndian.PutUint16(u[6:], udpChecksum(ph, u))
}

// Truncate cuts the response msg, whose question section ends at qEnd, to
// its header and question with TC set (RFC 1035 §4.1.1, RFC 2181 §9): what
// a UDP client gets when the whole answer is larger than it may receive,
// so that it asks again over TCP. It returns the new length, or 0 when
// qEnd does not fit msg.
func Truncate(msg []byte, qEnd int) int {
	if qEnd < dnsHeaderLen || qEnd > len(msg) {
		return 0
	}
	flags := binary.BigEndian.Uint16(msg[offFlags:])
	binary.BigEndian.PutUint16(msg[offFlags:], flags|flagTC)
	binary.BigEndian.PutUint16(msg[offAN:], 0)
	binary.BigEndian.PutUint16(msg[offNS:], 0)
	binary.BigEndian.PutUint16(msg[offAR:], 0)
	return qEnd
}

// ReplyInPlace turns pkt, the query packet p was decoded from, into the
// answer packet once its DNS payload has been overwritten in place with an
// answer of n bytes (at p.PayloadOff, as a cache hit writes it): the
// payload moves right behind fresh headers (IPv4 options are dropped), with
// the addresses and ports swapped, as AnswerInPlace writes them. It
// returns the answer packet's length, or 0 if it cannot be built.
func ReplyInPlace(pkt []byte, p *Parsed, n int) int {
	src, dst := p.Dst.Addr(), p.Src.Addr()
	hl := 0
	switch {
	case p.Family == 4 && src.Is4() && dst.Is4():
		hl = IPv4HeaderLen + UDPHeaderLen
	case p.Family == 6 && src.Is6() && dst.Is6():
		hl = IPv6HeaderLen + UDPHeaderLen
	default:
		return 0
	}
	if n < dnsHeaderLen || p.PayloadOff < hl || p.PayloadOff > len(pkt) || n > len(pkt)-p.PayloadOff || hl+n > maxIPLen {
		return 0
	}
	if p.PayloadOff != hl {
		copy(pkt[hl:], pkt[p.PayloadOff:p.PayloadOff+n])
	}
	writeHeaders(pkt[:hl+n], p.Family, src, dst, p.Dst.Port(), p.Src.Port())
	return hl + n
}

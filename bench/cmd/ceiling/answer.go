// SPDX-License-Identifier: MIT

package main

import (
	"encoding/binary"

	"golang.org/x/sys/unix"
)

// answer turns pkt, an IPv4 UDP datagram to port 53 carrying a DNS query
// with one question, into the NXDOMAIN answer to it, in place, and returns
// its length; 0 for anything else. The answer is the header and the
// question: QR and RA set, RD kept, no records.
func answer(pkt []byte) int {
	if len(pkt) < 20 || pkt[0]>>4 != 4 {
		return 0
	}
	ihl := int(pkt[0]&0xf) * 4
	if ihl < 20 || int(binary.BigEndian.Uint16(pkt[2:])) != len(pkt) || pkt[9] != unix.IPPROTO_UDP ||
		binary.BigEndian.Uint16(pkt[6:])&0x3fff != 0 || len(pkt) < ihl+8+12 {
		return 0 // not IPv4 UDP, a fragment, or too short for a DNS header
	}
	udp := pkt[ihl:]
	if binary.BigEndian.Uint16(udp[2:]) != 53 || int(binary.BigEndian.Uint16(udp[4:])) != len(udp) {
		return 0
	}
	dns := udp[8:]
	if dns[2]&0xf8 != 0 || binary.BigEndian.Uint16(dns[4:]) != 1 { // a response, or opcode not QUERY; QDCOUNT 1
		return 0
	}
	end := 12
	for end < len(dns) && dns[end] != 0 { // the name's labels
		if dns[end]&0xc0 != 0 {
			return 0 // a pointer (or reserved bits) in a query's name
		}
		end += 1 + int(dns[end])
	}
	end += 1 + 4 // the root label, QTYPE and QCLASS
	if end > len(dns) {
		return 0
	}
	dns[2] = 0x80 | dns[2]&0x01 // QR, opcode QUERY, RD as asked
	dns[3] = 0x80 | 3           // RA, NXDOMAIN
	clear(dns[6:12])            // ANCOUNT, NSCOUNT, ARCOUNT
	udpLen := 8 + end
	n := ihl + udpLen
	var a [4]byte
	copy(a[:], pkt[12:16])
	copy(pkt[12:16], pkt[16:20])
	copy(pkt[16:20], a[:])
	sport := binary.BigEndian.Uint16(udp[0:])
	binary.BigEndian.PutUint16(udp[0:], 53)
	binary.BigEndian.PutUint16(udp[2:], sport)
	binary.BigEndian.PutUint16(udp[4:], uint16(udpLen))
	binary.BigEndian.PutUint16(pkt[2:], uint16(n))
	pkt[8] = 64 // TTL
	pkt[10], pkt[11] = 0, 0
	binary.BigEndian.PutUint16(pkt[10:], ^fold(sum(pkt[:ihl], 0)))
	udp[6], udp[7] = 0, 0
	ph := sum(pkt[12:20], uint64(unix.IPPROTO_UDP)+uint64(udpLen))
	c := ^fold(sum(udp[:udpLen], ph))
	if c == 0 {
		c = 0xffff // RFC 768: a computed 0 is sent as all ones
	}
	binary.BigEndian.PutUint16(udp[6:], c)
	return n
}

// sum adds b, as big-endian 16-bit words (an odd last byte padded with a
// zero), to the one's complement sum acc (RFC 1071), unfolded.
func sum(b []byte, acc uint64) uint64 {
	for len(b) >= 2 {
		acc += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		acc += uint64(b[0]) << 8
	}
	return acc
}

// fold reduces a one's complement sum to 16 bits.
func fold(acc uint64) uint16 {
	for acc>>16 != 0 {
		acc = acc&0xffff + acc>>16
	}
	return uint16(acc)
}

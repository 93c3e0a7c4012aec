// SPDX-License-Identifier: MIT

package packet

import "encoding/binary"

// The Internet checksum (RFC 1071): the 16-bit one's complement of the one's
// complement sum of the data taken as big-endian 16-bit words. Because the
// one's complement sum is independent of the word size as long as carries
// are folded back in (RFC 1071 §2(B)), Sum adds 32-bit words into a 64-bit
// accumulator and Fold reduces it to 16 bits at the end.

// Sum adds b to the running one's complement sum acc, treating b as
// big-endian 16-bit words; an odd trailing byte is padded with a zero byte
// (RFC 1071 §4.1). The result is not folded: pass it to Fold. acc may hold up
// to 2^48 before the additions of one call could overflow, far more than any
// packet needs.
func Sum(b []byte, acc uint64) uint64 {
	for len(b) >= 8 {
		acc += uint64(binary.BigEndian.Uint32(b)) + uint64(binary.BigEndian.Uint32(b[4:]))
		b = b[8:]
	}
	if len(b) >= 4 {
		acc += uint64(binary.BigEndian.Uint32(b))
		b = b[4:]
	}
	if len(b) >= 2 {
		acc += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		acc += uint64(b[0]) << 8
	}
	return acc
}

// Fold reduces a one's complement sum to 16 bits by adding the carries back
// in (end-around carry).
func Fold(acc uint64) uint16 {
	for acc>>16 != 0 {
		acc = acc&0xffff + acc>>16
	}
	return uint16(acc)
}

// Checksum returns the Internet checksum of b, as stored in the IPv4 header
// checksum field (RFC 791 §3.1) when b is the header with that field zeroed.
func Checksum(b []byte) uint16 {
	return ^Fold(Sum(b, 0))
}

// PseudoHeaderSum returns the unfolded sum of the pseudo-header that UDP and
// TCP checksums cover: source and destination address (4 bytes each for
// IPv4, RFC 768; 16 bytes each for IPv6, RFC 8200 §8.1), the protocol number
// and the upper-layer length. The zero bytes of the pseudo-header add
// nothing, so the layout differences between the two versions do not matter
// to the sum.
func PseudoHeaderSum(src, dst []byte, proto uint8, length int) uint64 {
	acc := Sum(src, 0)
	acc = Sum(dst, acc)
	return acc + uint64(proto) + uint64(uint32(length)>>16) + uint64(length&0xffff)
}

// UpdateChecksum returns checksum hc after one 16-bit word covered by it
// changed from old to new, without summing the data again: RFC 1624 eqn. 3,
// HC' = ~(~HC + ~m + m'). Several changed words can be applied one after
// another.
func UpdateChecksum(hc, old, new uint16) uint16 {
	acc := uint64(^hc) + uint64(^old) + uint64(new)
	return ^Fold(acc)
}

// udpChecksum finishes a UDP checksum over the pseudo-header sum ph and the
// UDP header+payload b (whose checksum field must be zero). A computed 0 is
// sent as 0xFFFF, since 0 means "no checksum" on IPv4 and is forbidden on
// IPv6 (RFC 768; RFC 8200 §8.1).
func udpChecksum(ph uint64, b []byte) uint16 {
	c := ^Fold(Sum(b, ph))
	if c == 0 {
		c = 0xffff
	}
	return c
}

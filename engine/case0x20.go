// SPDX-License-Identifier: MIT

package engine

import "math/rand/v2"

// randomizeCase flips the case of each letter of the wire-format name in
// msg[dnsHeaderLen:end] at random and records the flips in flip (bit i:
// byte dnsHeaderLen+i), so that an answer must repeat 0x20's extra bits of
// ID (draft-vixie-dnsext-dns0x20) and the client's case can be restored.
// Length bytes are never letters' values below 64, but the walk follows
// the labels anyway, so that only name bytes change.
func randomizeCase(msg []byte, end int, flip *[32]byte) {
	*flip = [32]byte{}
	var bits uint64
	left := 0
	for off := dnsHeaderLen; off < end; {
		l := int(msg[off])
		if l == 0 || l&0xc0 != 0 {
			return
		}
		for i := off + 1; i <= off+l && i < end; i++ {
			c := msg[i] | 0x20
			if c < 'a' || c > 'z' {
				continue
			}
			if left == 0 {
				bits, left = rand.Uint64(), 64
			}
			if bits&1 != 0 {
				msg[i] ^= 0x20
				k := i - dnsHeaderLen
				flip[k>>3] |= 1 << (k & 7)
			}
			bits >>= 1
			left--
		}
		off += l + 1
	}
}

// unflip undoes randomizeCase's flips on the question of msg (a query
// stored, or its answer, which repeats the question byte for byte).
func unflip(msg []byte, flip *[32]byte) {
	for k, b := range flip {
		for ; b != 0; b &= b - 1 {
			i := dnsHeaderLen + k*8 + trailingZeros8(b)
			if i < len(msg) {
				msg[i] ^= 0x20
			}
		}
	}
}

func trailingZeros8(b byte) int {
	n := 0
	for b&1 == 0 {
		b >>= 1
		n++
	}
	return n
}

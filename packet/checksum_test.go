// SPDX-License-Identifier: MIT

package packet_test

import (
	"math/rand/v2"
	"testing"

	"github.com/dnstun/dnstun/packet"
)

// refChecksum is a deliberately naive RFC 1071 checksum (16-bit words,
// carries folded after every addition), written independently of Sum/Fold.
func refChecksum(b []byte) uint16 {
	var s uint32
	for i := 0; i < len(b); i += 2 {
		w := uint32(b[i]) << 8
		if i+1 < len(b) {
			w |= uint32(b[i+1])
		}
		s += w
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

func TestChecksumVectors(t *testing.T) {
	tests := []struct {
		name string
		b    []byte
		want uint16
	}{
		// RFC 1071 §3 example: the sum of 0001 f203 f4f5 f6f7 is ddf2.
		{"rfc1071", []byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}, ^uint16(0xddf2)},
		{"empty", nil, 0xffff},
		{"odd", []byte{0xab}, ^uint16(0xab00)},
		// A classic IPv4 header (checksum field zeroed) whose checksum is b861.
		{"ipv4 header", []byte{0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0, 0, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7}, 0xb861},
	}
	for _, tc := range tests {
		if got := packet.Checksum(tc.b); got != tc.want {
			t.Errorf("%s: Checksum = %#04x, want %#04x", tc.name, got, tc.want)
		}
		if got := refChecksum(tc.b); got != tc.want {
			t.Errorf("%s: reference = %#04x, want %#04x (bad vector)", tc.name, got, tc.want)
		}
	}
}

func TestChecksumRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for n := range 300 {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		if got, want := packet.Checksum(b), refChecksum(b); got != want {
			t.Fatalf("len %d: Checksum %#04x, reference %#04x", n, got, want)
		}
		// Sum is incremental over even-length splits.
		if n%2 == 0 && n > 0 {
			h := n / 2 &^ 1
			if got := ^packet.Fold(packet.Sum(b[h:], packet.Sum(b[:h], 0))); got != refChecksum(b) {
				t.Fatalf("len %d split %d: %#04x", n, h, got)
			}
		}
	}
	// All ones: many carries.
	ff := make([]byte, 65536)
	for i := range ff {
		ff[i] = 0xff
	}
	if got, want := packet.Checksum(ff), refChecksum(ff); got != want {
		t.Fatalf("0xff*65536: %#04x, want %#04x", got, want)
	}
}

func TestPseudoHeaderSum(t *testing.T) {
	// Build the RFC 768 pseudo-header explicitly and sum it with the
	// reference.
	src, dst := []byte{10, 0, 0, 1}, []byte{192, 168, 1, 200}
	for _, length := range []int{8, 100, 0xffff, 0x1ffff} {
		ph := append(append(append([]byte{}, src...), dst...), 0, 17, byte(length>>8), byte(length))
		if length > 0xffff {
			// IPv6 uses a 32-bit length (RFC 8200 §8.1).
			ph = append(append(append([]byte{}, src...), dst...), byte(length>>24), byte(length>>16), byte(length>>8), byte(length), 0, 0, 0, 17)
		}
		if got, want := ^packet.Fold(packet.PseudoHeaderSum(src, dst, 17, length)), refChecksum(ph); got != want {
			t.Errorf("length %d: %#04x, want %#04x", length, got, want)
		}
	}
}

func TestUpdateChecksum(t *testing.T) {
	// RFC 1624 §4 example: HC 0xDD2F, m 0x5555 -> m' 0x3285 gives 0x0000.
	if got := packet.UpdateChecksum(0xdd2f, 0x5555, 0x3285); got != 0x0000 {
		t.Errorf("RFC 1624 example: %#04x, want 0x0000", got)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 2000 {
		n := 2 + 2*rng.IntN(40)
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		hc := refChecksum(b)
		i := 2 * rng.IntN(n/2)
		old := uint16(b[i])<<8 | uint16(b[i+1])
		nw := uint16(rng.Uint32())
		if rng.IntN(10) == 0 {
			nw = 0
		}
		b[i], b[i+1] = byte(nw>>8), byte(nw)
		got := packet.UpdateChecksum(hc, old, nw)
		want := refChecksum(b)
		// 0x0000 and 0xFFFF are the same value in one's complement; a
		// full recomputation can only give 0x0000 when all data is zero.
		if got != want && !(got == 0xffff && want == 0 || got == 0 && want == 0xffff) {
			t.Fatalf("update word %d %#04x->%#04x: %#04x, recomputed %#04x", i, old, nw, got, want)
		}
	}
}

// SPDX-License-Identifier: MIT

package packet_test

import (
	"encoding/binary"
	"net/netip"
	"strings"
)

// Raw wire builders for messages miekg/dns refuses to pack (malformed on
// purpose). They follow RFC 1035 §4.1 directly.

func hdr(id, flags, qd, an, ns, ar uint16) []byte {
	return u16(id, flags, qd, an, ns, ar)
}

func u16(v ...uint16) []byte {
	b := make([]byte, 0, 2*len(v))
	for _, x := range v {
		b = binary.BigEndian.AppendUint16(b, x)
	}
	return b
}

func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

// wname encodes labels uncompressed, with the terminating root label.
func wname(labels ...string) []byte {
	var b []byte
	for _, l := range labels {
		b = append(b, byte(len(l)))
		b = append(b, l...)
	}
	return append(b, 0)
}

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// opt is an OPT RR (RFC 6891 §6.1.2) with a root owner.
func opt(size uint16, do bool, rdata []byte) []byte {
	fl := uint16(0)
	if do {
		fl = 0x8000
	}
	return cat([]byte{0}, u16(41, size, 0, fl, uint16(len(rdata))), rdata)
}

func label(c byte, n int) string { return strings.Repeat(string(c), n) }

var (
	cli4 = netip.MustParseAddrPort("10.1.2.3:40000")
	srv4 = netip.MustParseAddrPort("10.53.0.1:53")
	cli6 = netip.MustParseAddrPort("[fd00::1234]:40001")
	srv6 = netip.MustParseAddrPort("[fd00::53]:53")
)

// SPDX-License-Identifier: MIT

package packet_test

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/dnstun/dnstun/internal/pkttest"
	"github.com/dnstun/dnstun/packet"
	"github.com/google/gopacket/layers"
	"github.com/miekg/dns"
)

// ext6 inserts an IPv6 extension header ext after the fixed header of a
// serialised IPv6 packet and makes it the first next header nh.
func ext6(pkt []byte, nh byte, ext []byte) []byte {
	out := cat(pkt[:40], ext, pkt[40:])
	out[6] = nh
	binary.BigEndian.PutUint16(out[4:], uint16(len(out)-40))
	return out
}

func mod(pkt []byte, f func(b []byte)) []byte {
	b := bytes.Clone(pkt)
	f(b)
	return b
}

func TestDecode(t *testing.T) {
	msg := pkttest.Pack(pkttest.Msg(7, "example.com", dns.TypeA))
	ml := len(msg)
	good4 := pkttest.UDP4(cli4, srv4, msg, nil)
	good6 := pkttest.UDP6(cli6, srv6, msg, nil)
	routerAlert := func(ip *layers.IPv4) {
		// RFC 2113 router alert: type 148, length 4, value 0.
		ip.Options = []layers.IPv4Option{{OptionType: 148, OptionLength: 4, OptionData: []byte{0, 0}}}
	}
	opts4 := pkttest.UDP4(cli4, srv4, msg, routerAlert)
	nops4 := pkttest.UDP4(cli4, srv4, msg, func(ip *layers.IPv4) {
		ip.Options = []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 0}}
	})
	mapped := netip.AddrPortFrom(netip.AddrFrom16(cli4.Addr().As16()), cli4.Port())
	// RFC 8200 §4.5 fragment header: next header UDP, offset 0, M=1, id.
	frag6 := cat([]byte{17, 0, 0, 1}, u32(0xabcd))
	// RFC 8200 §4.3 hop-by-hop: next header UDP, length 0, PadN(4).
	hbh6 := []byte{17, 0, 1, 4, 0, 0, 0, 0}

	ok4 := packet.Parsed{Family: 4, Src: cli4, Dst: srv4, PayloadOff: 28, PayloadLen: ml}
	ok6 := packet.Parsed{Family: 6, Src: cli6, Dst: srv6, PayloadOff: 48, PayloadLen: ml}
	tests := []struct {
		name string
		pkt  []byte
		want packet.Reason
		out  packet.Parsed
	}{
		{"v4 good", good4, packet.OK, ok4},
		{"v4 trailing bytes ignored", cat(good4, []byte{1, 2, 3, 4}), packet.OK, ok4},
		{"v4 options", opts4, packet.OK, packet.Parsed{Family: 4, Src: cli4, Dst: srv4, PayloadOff: 32, PayloadLen: ml}},
		{"v4 nop+eol options", nops4, packet.OK, packet.Parsed{Family: 4, Src: cli4, Dst: srv4, PayloadOff: 32, PayloadLen: ml}},
		{"v4 option length 2", mod(opts4, func(b []byte) { b[21] = 2 }), packet.DropBadHeader, packet.Parsed{}},
		{"v4 option overruns header", mod(opts4, func(b []byte) { b[21] = 5 }), packet.DropBadHeader, packet.Parsed{}},
		{"v4 fragment MF", pkttest.UDP4(cli4, srv4, msg, func(ip *layers.IPv4) { ip.Flags = layers.IPv4MoreFragments }), packet.DropFragment, packet.Parsed{}},
		{"v4 fragment offset", pkttest.UDP4(cli4, srv4, msg, func(ip *layers.IPv4) { ip.FragOffset = 100 }), packet.DropFragment, packet.Parsed{}},
		{"v4 DF is fine", pkttest.UDP4(cli4, srv4, msg, func(ip *layers.IPv4) { ip.Flags = layers.IPv4DontFragment }), packet.OK, ok4},
		{"v4 tcp", pkttest.UDP4(cli4, srv4, msg, func(ip *layers.IPv4) { ip.Protocol = layers.IPProtocolTCP }), packet.DropNotUDP, packet.Parsed{}},
		{"v4 port 5353", pkttest.UDP4(cli4, netip.AddrPortFrom(srv4.Addr(), 5353), msg, nil), packet.DropNotDNS, packet.Parsed{}},
		{"v4 from port 53 to high port", pkttest.UDP4(srv4, cli4, msg, nil), packet.DropNotDNS, packet.Parsed{}},
		{"v4 truncated", good4[:len(good4)-5], packet.DropShort, packet.Parsed{}},
		{"v4 shorter than header", good4[:19], packet.DropShort, packet.Parsed{}},
		{"v4 IHL 4", mod(good4, func(b []byte) { b[0] = 0x44 }), packet.DropBadHeader, packet.Parsed{}},
		{"v4 IHL beyond buffer", mod(good4[:40], func(b []byte) { b[0] = 0x4f }), packet.DropShort, packet.Parsed{}},
		{"v4 total length 0", mod(good4, func(b []byte) { b[2], b[3] = 0, 0 }), packet.DropBadHeader, packet.Parsed{}},
		{"v4 total length leaves no UDP header", mod(good4, func(b []byte) { b[2], b[3] = 0, 24 }), packet.DropBadHeader, packet.Parsed{}},
		{"v4 UDP length +1", mod(good4, func(b []byte) { b[25]++ }), packet.DropBadHeader, packet.Parsed{}},
		{"v4 UDP length -1", mod(good4, func(b []byte) { b[25]-- }), packet.DropBadHeader, packet.Parsed{}},
		{"v4 UDP length 0", mod(good4, func(b []byte) { b[24], b[25] = 0, 0 }), packet.DropBadHeader, packet.Parsed{}},
		{"version 5", mod(good4, func(b []byte) { b[0] = 0x55 }), packet.DropVersion, packet.Parsed{}},
		{"version 0", []byte{0}, packet.DropVersion, packet.Parsed{}},
		{"empty", nil, packet.DropShort, packet.Parsed{}},

		{"v6 good", good6, packet.OK, ok6},
		{"v6 trailing bytes ignored", cat(good6, make([]byte, 9)), packet.OK, ok6},
		{"v6 v4-mapped source kept", pkttest.UDP6(mapped, srv6, msg, nil), packet.OK, packet.Parsed{Family: 6, Src: mapped, Dst: srv6, PayloadOff: 48, PayloadLen: ml}},
		{"v6 fragment header", ext6(good6, 44, frag6), packet.DropFragment, packet.Parsed{}},
		{"v6 hop-by-hop", ext6(good6, 0, hbh6), packet.DropIPv6Ext, packet.Parsed{}},
		{"v6 destination options", ext6(good6, 60, hbh6), packet.DropIPv6Ext, packet.Parsed{}},
		{"v6 routing", ext6(good6, 43, hbh6), packet.DropIPv6Ext, packet.Parsed{}},
		{"v6 tcp", pkttest.UDP6(cli6, srv6, msg, func(ip *layers.IPv6) { ip.NextHeader = layers.IPProtocolTCP }), packet.DropNotUDP, packet.Parsed{}},
		{"v6 no next header", mod(good6, func(b []byte) { b[6] = 59 }), packet.DropNotUDP, packet.Parsed{}},
		{"v6 port 5353", pkttest.UDP6(cli6, netip.AddrPortFrom(srv6.Addr(), 5353), msg, nil), packet.DropNotDNS, packet.Parsed{}},
		{"v6 truncated", good6[:len(good6)-1], packet.DropShort, packet.Parsed{}},
		{"v6 shorter than header", good6[:39], packet.DropShort, packet.Parsed{}},
		{"v6 payload length 0", mod(good6, func(b []byte) { b[4], b[5] = 0, 0 }), packet.DropBadHeader, packet.Parsed{}},
		{"v6 payload length 7", mod(good6[:47], func(b []byte) { b[4], b[5] = 0, 7 }), packet.DropBadHeader, packet.Parsed{}},
		{"v6 UDP length +1", mod(good6, func(b []byte) { b[45]++ }), packet.DropBadHeader, packet.Parsed{}},
		{"v6 UDP length 0 (jumbo)", mod(good6, func(b []byte) { b[44], b[45] = 0, 0 }), packet.DropBadHeader, packet.Parsed{}},
	}
	p := packet.NewParser()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := packet.Parsed{Family: 99, PayloadOff: -1} // must be overwritten
			if got := p.Decode(tc.pkt, &out); got != tc.want {
				t.Fatalf("Decode = %v, want %v", got, tc.want)
			}
			if out != tc.out {
				t.Fatalf("Parsed = %+v, want %+v", out, tc.out)
			}
			if tc.want == packet.OK && !bytes.Equal(tc.pkt[out.PayloadOff:out.PayloadOff+out.PayloadLen], msg) {
				t.Fatalf("payload at %d+%d is not the message", out.PayloadOff, out.PayloadLen)
			}
		})
	}
}

// TestDecodeKeepsNoBuffer checks that a decode result does not change when
// the packet buffer is overwritten afterwards (addresses are copied).
func TestDecodeKeepsNoBuffer(t *testing.T) {
	msg := pkttest.Pack(pkttest.Msg(7, "example.com", dns.TypeA))
	p := packet.NewParser()
	for _, pkt := range [][]byte{pkttest.UDP4(cli4, srv4, msg, nil), pkttest.UDP6(cli6, srv6, msg, nil)} {
		var out packet.Parsed
		if r := p.Decode(pkt, &out); r != packet.OK {
			t.Fatal(r)
		}
		want := out
		clear(pkt)
		if out != want {
			t.Fatalf("Parsed changed with the buffer: %+v", out)
		}
	}
}

func TestReasonStrings(t *testing.T) {
	seen := map[string]bool{}
	for r := packet.OK; r < packet.NumReasons; r++ {
		s := r.String()
		if s == "" || s == "unknown" || seen[s] {
			t.Errorf("Reason(%d).String() = %q", r, s)
		}
		seen[s] = true
	}
	if got := packet.NumReasons.String(); got != "unknown" {
		t.Errorf("NumReasons.String() = %q", got)
	}
	for _, tc := range []struct {
		r      packet.Reason
		rcode  uint8
		answer bool
	}{
		{packet.OK, 0, false},
		{packet.DropFragment, 0, false},
		{packet.DropShortDNS, 0, false},
		{packet.DropResponse, 0, false},
		{packet.NotImp, dns.RcodeNotImplemented, true},
		{packet.FormErr, dns.RcodeFormatError, true},
		{packet.NumReasons, 0, false},
	} {
		rc, a := tc.r.Rcode()
		if rc != tc.rcode || a != tc.answer {
			t.Errorf("%v.Rcode() = %d, %v; want %d, %v", tc.r, rc, a, tc.rcode, tc.answer)
		}
	}
}

// SPDX-License-Identifier: MIT

package packet_test

import (
	"net/netip"
	"testing"

	"github.com/dnstun/dnstun/packet"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// gopacketOracle decodes the packets Decode accepts a second time, with
// gopacket, the reference the raw decoder is held to.
type gopacketOracle struct {
	ip4     layers.IPv4
	ip6     layers.IPv6
	udp     layers.UDP
	p4, p6  *gopacket.DecodingLayerParser
	decoded []gopacket.LayerType
}

func newOracle() *gopacketOracle {
	o := &gopacketOracle{}
	o.p4 = gopacket.NewDecodingLayerParser(layers.LayerTypeIPv4, &o.ip4, &o.udp)
	o.p6 = gopacket.NewDecodingLayerParser(layers.LayerTypeIPv6, &o.ip6, &o.udp)
	o.p4.IgnoreUnsupported = true
	o.p6.IgnoreUnsupported = true
	return o
}

// agree fails t unless gopacket decodes pkt, which Decode accepted as out,
// to IP and UDP without error and to the same addresses, ports and payload.
func (o *gopacketOracle) agree(t *testing.T, pkt []byte, out *packet.Parsed) {
	t.Helper()
	dp := o.p4
	if pkt[0]>>4 == 6 {
		dp = o.p6
	}
	if err := dp.DecodeLayers(pkt, &o.decoded); err != nil || len(o.decoded) != 2 || o.decoded[1] != layers.LayerTypeUDP {
		t.Fatalf("Decode accepted %x, gopacket: %v (layers %v)", pkt, err, o.decoded)
	}
	var want packet.Parsed
	if o.decoded[0] == layers.LayerTypeIPv4 {
		src, _ := netip.AddrFromSlice(o.ip4.SrcIP)
		dst, _ := netip.AddrFromSlice(o.ip4.DstIP)
		want = packet.Parsed{Family: 4, Src: netip.AddrPortFrom(src, uint16(o.udp.SrcPort)), Dst: netip.AddrPortFrom(dst, uint16(o.udp.DstPort)),
			PayloadOff: len(o.ip4.Contents) + packet.UDPHeaderLen}
	} else {
		src, _ := netip.AddrFromSlice(o.ip6.SrcIP)
		dst, _ := netip.AddrFromSlice(o.ip6.DstIP)
		want = packet.Parsed{Family: 6, Src: netip.AddrPortFrom(src, uint16(o.udp.SrcPort)), Dst: netip.AddrPortFrom(dst, uint16(o.udp.DstPort)),
			PayloadOff: packet.IPv6HeaderLen + packet.UDPHeaderLen}
	}
	want.PayloadLen = len(o.udp.Payload)
	if *out != want {
		t.Fatalf("Decode of %x: %+v, gopacket: %+v", pkt, *out, want)
	}
}

// TestDecodeAgreesWithGopacket: on every hot case and seed, Decode and
// gopacket read the same packet.
func TestDecodeAgreesWithGopacket(t *testing.T) {
	o := newOracle()
	p := packet.NewParser()
	n := 0
	for _, hc := range hotCases() {
		var out packet.Parsed
		if r := p.Decode(hc.pkt, &out); r != packet.OK {
			t.Fatalf("%s: %v", hc.name, r)
		}
		o.agree(t, hc.pkt, &out)
		n++
	}
	if n < 3 {
		t.Fatalf("only %d cases", n)
	}
}

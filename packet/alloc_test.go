// SPDX-License-Identifier: MIT

package packet_test

import (
	"net/netip"
	"testing"

	"github.com/dnstun/dnstun/internal/pkttest"
	"github.com/dnstun/dnstun/packet"
	"github.com/google/gopacket/layers"
	"github.com/miekg/dns"
)

// hotCase is one packet run through the hot path by the allocation tests
// and the benchmarks.
type hotCase struct {
	name string
	pkt  []byte
	from netip.AddrPort // upstream, for WrapReply
	to   netip.AddrPort
}

func hotCases() []hotCase {
	m := pkttest.MsgEDNS(0x1234, "www.Example.com", dns.TypeA, 1232, true)
	return []hotCase{
		{"v4", pkttest.Query4(cli4, srv4, m), netip.MustParseAddrPort("9.9.9.9:53"), cli4},
		{"v6", pkttest.Query6(cli6, srv6, m), netip.MustParseAddrPort("[2620:fe::fe]:53"), cli6},
		{"v4opts", pkttest.UDP4(cli4, srv4, pkttest.Pack(m), func(ip *layers.IPv4) {
			ip.Options = []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 1}}
		}), netip.MustParseAddrPort("9.9.9.9:53"), cli4},
	}
}

var hotReply = packet.Reply{TTL: 60, Addrs: []netip.Addr{a1, a2, aaa1}, HasEDE: true, EDE: 15}

func TestZeroAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("AllocsPerRun is slow-ish")
	}
	for _, hc := range hotCases() {
		p := packet.NewParser()
		var parsed packet.Parsed
		var q packet.Question
		buf := make([]byte, 1500)
		// Drops must not allocate either (gopacket is never reached).
		drops := [][]byte{nil, hc.pkt[:10], append([]byte{0x55}, hc.pkt[1:]...)}
		t.Run("Decode/"+hc.name, func(t *testing.T) {
			if n := testing.AllocsPerRun(200, func() {
				if p.Decode(hc.pkt, &parsed) != packet.OK {
					t.Fatal("decode")
				}
				for _, d := range drops {
					p.Decode(d, &parsed)
				}
			}); n != 0 {
				t.Fatalf("%v allocs", n)
			}
		})
		p.Decode(hc.pkt, &parsed)
		msg := hc.pkt[parsed.PayloadOff : parsed.PayloadOff+parsed.PayloadLen]
		t.Run("ReadQuestion/"+hc.name, func(t *testing.T) {
			if n := testing.AllocsPerRun(200, func() {
				if packet.ReadQuestion(msg, &q) != packet.OK || len(q.Name()) == 0 {
					t.Fatal("read")
				}
			}); n != 0 {
				t.Fatalf("%v allocs", n)
			}
		})
		t.Run("AnswerInPlace/"+hc.name, func(t *testing.T) {
			if n := testing.AllocsPerRun(200, func() {
				copy(buf, hc.pkt)
				if packet.AnswerInPlace(buf, &parsed, &q, &hotReply) == 0 {
					t.Fatal("answer")
				}
			}); n != 0 {
				t.Fatalf("%v allocs", n)
			}
		})
		t.Run("WrapReply/"+hc.name, func(t *testing.T) {
			if n := testing.AllocsPerRun(200, func() {
				if packet.WrapReply(buf, packet.MaxHeaderLen, len(msg), hc.from, hc.to) < 0 {
					t.Fatal("wrap")
				}
			}); n != 0 {
				t.Fatalf("%v allocs", n)
			}
		})
	}
}

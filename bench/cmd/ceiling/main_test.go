// SPDX-License-Identifier: MIT

package main

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/dnstun/dnstun/internal/pkttest"
	"github.com/miekg/dns"
)

var (
	client   = netip.MustParseAddrPort("198.19.53.1:40000")
	resolver = netip.MustParseAddrPort("198.19.53.53:53")
)

// TestAnswer: a query becomes its NXDOMAIN answer, from the resolver to the
// client, with lengths and checksums gopacket agrees with (pkttest); what
// is not an IPv4 UDP query to port 53 with one question is left alone.
func TestAnswer(t *testing.T) {
	for _, m := range []*dns.Msg{pkttest.Msg(0x1234, "ads.example.com", dns.TypeA), pkttest.MsgEDNS(7, "x.example", dns.TypeAAAA, 1232, true)} {
		pkt := pkttest.Query4(client, resolver, m)
		n := answer(pkt)
		if n == 0 {
			t.Fatalf("%v: not answered", m.Question[0])
		}
		got := pkttest.Unpack(t, pkttest.VerifyUDP(t, pkt[:n]))
		if got.Id != m.Id || !got.Response || got.Rcode != dns.RcodeNameError || !got.RecursionAvailable ||
			got.RecursionDesired != m.RecursionDesired || len(got.Question) != 1 || got.Question[0] != m.Question[0] ||
			len(got.Answer)+len(got.Ns)+len(got.Extra) != 0 {
			t.Errorf("answer to %v: %v", m.Question[0], got)
		}
		if !bytes.Equal(pkt[12:16], resolver.Addr().AsSlice()) || !bytes.Equal(pkt[16:20], client.Addr().AsSlice()) ||
			pkt[20] != 0 || pkt[21] != 53 || int(pkt[22])<<8|int(pkt[23]) != int(client.Port()) {
			t.Errorf("answer to %v: addresses or ports not swapped: % x", m.Question[0], pkt[12:24])
		}
	}
	q := pkttest.Msg(1, "www.example.com", dns.TypeA)
	reply := q.Copy()
	reply.Response = true
	for name, pkt := range map[string][]byte{
		"IPv6":          pkttest.Query6(netip.MustParseAddrPort("[fd00::1]:40000"), netip.MustParseAddrPort("[fd00::53]:53"), q),
		"port 5353":     pkttest.Query4(client, netip.MustParseAddrPort("198.19.53.53:5353"), q),
		"a response":    pkttest.Query4(client, resolver, reply),
		"cut short":     pkttest.Query4(client, resolver, q)[:35],
		"two questions": twoQuestions(),
	} {
		before := bytes.Clone(pkt)
		if n := answer(pkt); n != 0 || !bytes.Equal(pkt, before) {
			t.Errorf("%s: answered (%d) or changed", name, n)
		}
	}
}

func twoQuestions() []byte {
	m := pkttest.Msg(2, "a.example", dns.TypeA)
	m.Question = append(m.Question, dns.Question{Name: "b.example.", Qtype: dns.TypeA, Qclass: dns.ClassINET})
	return pkttest.Query4(client, resolver, m)
}

func TestAnswerAllocs(t *testing.T) {
	pkt := pkttest.Query4(client, resolver, pkttest.Msg(1, "www.example.com", dns.TypeA))
	buf := make([]byte, len(pkt))
	if a := testing.AllocsPerRun(100, func() { copy(buf, pkt); answer(buf) }); a != 0 {
		t.Errorf("answer: %v allocations", a)
	}
}

// FuzzAnswer: any bytes are answered or left alone, never read or written
// out of bounds; an answer is no longer than the packet it came from.
func FuzzAnswer(f *testing.F) {
	f.Add(pkttest.Query4(client, resolver, pkttest.Msg(1, "www.example.com", dns.TypeA)))
	f.Add(pkttest.Query4(client, resolver, pkttest.MsgEDNS(2, "a.b.c.example", dns.TypeTXT, 4096, false)))
	f.Add(twoQuestions())
	f.Add([]byte{0x45, 0, 0, 20})
	f.Fuzz(func(t *testing.T, pkt []byte) {
		if n := answer(pkt); n < 0 || n > len(pkt) {
			t.Fatalf("answer length %d for a %d-byte packet", n, len(pkt))
		}
	})
}

// SPDX-License-Identifier: MIT

package packet

import (
	"net/netip"
	"testing"

	"github.com/dnstun/dnstun/internal/pkttest"
	"github.com/miekg/dns"
)

// TestAnswerCNAMEAndTXT checks the CNAME and TXT records against
// miekg/dns's unpacking (an independent reader of the wire format).
func TestAnswerCNAMEAndTXT(t *testing.T) {
	target := []byte("\x06target\x07example\x00")
	for _, tc := range []struct {
		name  string
		qtype uint16
		r     Reply
		want  []string // the records, as miekg prints them without TTL details
	}{
		{"cname only", dns.TypeA, Reply{TTL: 60, CNAME: target}, []string{"CNAME target.example."}},
		{"cname and addresses owned by the target", dns.TypeA, Reply{TTL: 60, CNAME: target,
			Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")}},
			[]string{"CNAME target.example.", "A target.example. 192.0.2.1"}},
		{"txt", dns.TypeTXT, Reply{TTL: 30, TXT: [][]byte{[]byte("hello"), []byte("v=spf1 -all")}},
			[]string{"TXT \"hello\"", "TXT \"v=spf1 -all\""}},
		{"txt not for an A question", dns.TypeA, Reply{TXT: [][]byte{[]byte("x")}}, nil},
		{"ptr", dns.TypePTR, Reply{TTL: 60, PTR: []byte("\x07printer\x03lan\x00")}, []string{"PTR printer.lan."}},
		{"ptr not for an A question", dns.TypeA, Reply{PTR: []byte("\x07printer\x03lan\x00")}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pkt := pkttest.Query4(netip.MustParseAddrPort("192.0.2.9:4000"), netip.MustParseAddrPort("198.19.53.53:53"), pkttest.MsgEDNS(7, "Alias.Example", tc.qtype, 1232, false))
			buf := make([]byte, 1500)
			n := copy(buf, pkt)
			var p Parsed
			var q Question
			if NewParser().Decode(buf[:n], &p) != OK || ReadQuestion(buf[p.PayloadOff:p.PayloadOff+p.PayloadLen], &q) != OK {
				t.Fatal("decode")
			}
			m := AnswerInPlace(buf, &p, &q, &tc.r)
			if m == 0 {
				t.Fatal("no answer built")
			}
			msg := pkttest.Unpack(t, pkttest.VerifyUDP(t, buf[:m]))
			var got []string
			for _, rr := range msg.Answer {
				switch rr := rr.(type) {
				case *dns.CNAME:
					if rr.Hdr.Name != "Alias.Example." || rr.Hdr.Ttl != tc.r.TTL {
						t.Errorf("CNAME owner %q ttl %d", rr.Hdr.Name, rr.Hdr.Ttl)
					}
					got = append(got, "CNAME "+rr.Target)
				case *dns.A:
					got = append(got, "A "+rr.Hdr.Name+" "+rr.A.String())
				case *dns.TXT:
					got = append(got, "TXT \""+rr.Txt[0]+"\"")
				case *dns.PTR:
					got = append(got, "PTR "+rr.Ptr)
				default:
					got = append(got, rr.String())
				}
			}
			if len(got) != len(tc.want) {
				t.Fatalf("records %q, want %q", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("record %d = %q, want %q", i, got[i], tc.want[i])
				}
			}
			allocs := testing.AllocsPerRun(100, func() {
				copy(buf, pkt)
				AnswerDNS(buf[p.PayloadOff:], &q, &tc.r)
			})
			if allocs != 0 {
				t.Errorf("AnswerDNS with records allocates %v times", allocs)
			}
		})
	}
}

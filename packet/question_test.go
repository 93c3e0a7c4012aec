// SPDX-License-Identifier: MIT

package packet_test

import (
	"strings"
	"testing"

	"github.com/dnstun/dnstun/internal/pkttest"
	"github.com/dnstun/dnstun/packet"
	"github.com/miekg/dns"
)

type qwant struct {
	name         string
	qtype, class uint16
	edns, do     bool
	size         uint16
	end          int // -1: len(msg) minus trailer
}

func TestReadQuestion(t *testing.T) {
	l63, l64 := label('a', 63), label('b', 64)
	// 3*64 + 62 + 1 = 255 wire bytes: the longest legal name, 253 bytes
	// in text. One more byte is 256.
	max255 := []string{l63, l63, l63, label('c', 61)}
	over256 := []string{l63, l63, l63, label('c', 62)}
	q := func(labels ...string) []byte { return cat(hdr(1, 0x0100, 1, 0, 0, 0), wname(labels...), u16(1, 1)) }
	miekg := func(m *dns.Msg) []byte { return pkttest.Pack(m) }
	edns := miekg(pkttest.MsgEDNS(9, "Example.com", dns.TypeAAAA, 4096, true))
	ednsQuestionEnd := 12 + len(wname("example", "com")) + 4
	pointerTSIG := cat(hdr(1, 0, 1, 0, 0, 2), wname("example", "com"), u16(1, 1),
		opt(1232, false, nil),
		// TSIG-like record (RFC 8945) whose owner is a pointer to the qname.
		[]byte{0xc0, 12}, u16(250, 255), u32(0), u16(6), []byte{1, 2, 3, 4, 5, 6})
	ede := cat(u16(15, 2, 17)) // an option (EDE) in a query, well formed

	tests := []struct {
		name string
		msg  []byte
		want packet.Reason
		q    qwant
	}{
		{"mixed case", miekg(pkttest.Msg(1, "WwW.ExAmPlE.CoM", dns.TypeA)), packet.OK, qwant{name: "www.example.com", qtype: 1, class: 1, end: -1}},
		{"root", miekg(pkttest.Msg(1, ".", dns.TypeNS)), packet.OK, qwant{name: "", qtype: 2, class: 1, end: 17}},
		{"non-letters kept", q("a-Z_0", "\x00\xff.Q"), packet.OK, qwant{name: "a-z_0.\x00\xff.q", qtype: 1, class: 1, end: -1}},
		// Found by FuzzReadQuestion (testdata/fuzz/FuzzReadQuestion/02f6fb31755fe10e):
		// miekg/dns prints this name as 0\.0. (escaped); Name does not escape.
		{"fuzz: dot inside a label", q("0.0"), packet.OK, qwant{name: "0.0", qtype: 1, class: 1, end: -1}},
		{"label 63", q(l63, "com"), packet.OK, qwant{name: l63 + ".com", qtype: 1, class: 1, end: -1}},
		{"label 64", q(l64, "com"), packet.FormErr, qwant{end: 12}},
		{"name 255 wire bytes", q(max255...), packet.OK, qwant{name: strings.Join(max255, "."), qtype: 1, class: 1, end: -1}},
		{"name 256 wire bytes", q(over256...), packet.FormErr, qwant{end: 12}},
		{"pointer in question", cat(hdr(1, 0, 1, 0, 0, 0), []byte{0xc0, 12}, u16(1, 1)), packet.FormErr, qwant{end: 12}},
		{"pointer after label", cat(hdr(1, 0, 1, 0, 0, 0), []byte{3, 'f', 'o', 'o', 0xc0, 12}, u16(1, 1)), packet.FormErr, qwant{end: 12}},
		{"label type 0x40", cat(hdr(1, 0, 1, 0, 0, 0), []byte{0x41, 'x', 0}, u16(1, 1)), packet.FormErr, qwant{end: 12}},
		{"label type 0x80", cat(hdr(1, 0, 1, 0, 0, 0), []byte{0x81, 'x', 0}, u16(1, 1)), packet.FormErr, qwant{end: 12}},
		{"truncated name", cat(hdr(1, 0, 1, 0, 0, 0), []byte{7, 'e', 'x', 'a'}), packet.FormErr, qwant{end: 12}},
		{"no root label", cat(hdr(1, 0, 1, 0, 0, 0), []byte{3, 'c', 'o', 'm'}), packet.FormErr, qwant{end: 12}},
		{"no class", cat(hdr(1, 0, 1, 0, 0, 0), wname("com"), u16(1)), packet.FormErr, qwant{end: 12}},
		{"no question", hdr(1, 0, 1, 0, 0, 0), packet.FormErr, qwant{end: 12}},
		{"QDCOUNT 0", hdr(1, 0, 0, 0, 0, 0), packet.FormErr, qwant{end: 12}},
		{"QDCOUNT 2", cat(hdr(1, 0, 2, 0, 0, 0), wname("a"), u16(1, 1), wname("b"), u16(1, 1)), packet.FormErr, qwant{end: 12}},
		{"ANCOUNT 1", cat(hdr(1, 0, 1, 1, 0, 0), wname("a"), u16(1, 1), []byte{0xc0, 12}, u16(1, 1), u32(5), u16(4), []byte{1, 2, 3, 4}), packet.FormErr, qwant{end: 12}},
		{"NSCOUNT 1", cat(hdr(1, 0, 1, 0, 1, 0), wname("a"), u16(1, 1)), packet.FormErr, qwant{end: 12}},
		{"QR=1", cat(hdr(1, 0x8000, 1, 0, 0, 0), wname("a"), u16(1, 1)), packet.DropResponse, qwant{}},
		{"QR=1 garbage", cat(hdr(1, 0xffff, 0xffff, 0xffff, 0, 0)), packet.DropResponse, qwant{}},
		{"opcode 2 STATUS", cat(hdr(1, 2<<11, 1, 0, 0, 0), wname("a"), u16(1, 1)), packet.NotImp, qwant{end: 12}},
		{"opcode 4 NOTIFY", cat(hdr(1, 4<<11, 1, 0, 0, 0), wname("a"), u16(6, 1)), packet.NotImp, qwant{end: 12}},
		{"opcode 5 UPDATE with counts", cat(hdr(1, 5<<11, 1, 1, 1, 0)), packet.NotImp, qwant{end: 12}},
		{"11 bytes", make([]byte, 11), packet.DropShortDNS, qwant{}},
		{"empty", nil, packet.DropShortDNS, qwant{}},
		{"EDNS DO 4096", edns, packet.OK, qwant{name: "example.com", qtype: 28, class: 1, edns: true, do: true, size: 4096, end: ednsQuestionEnd}},
		{"EDNS no DO 1232", miekg(pkttest.MsgEDNS(9, "example.com", dns.TypeA, 1232, false)), packet.OK, qwant{name: "example.com", qtype: 1, class: 1, edns: true, size: 1232, end: ednsQuestionEnd}},
		{"EDNS size 100 recorded as is", cat(hdr(1, 0, 1, 0, 0, 1), wname("example", "com"), u16(1, 1), opt(100, false, nil)), packet.OK, qwant{name: "example.com", qtype: 1, class: 1, edns: true, size: 100, end: ednsQuestionEnd}},
		{"EDNS with option", cat(hdr(1, 0, 1, 0, 0, 1), wname("example", "com"), u16(1, 1), opt(1400, true, ede)), packet.OK, qwant{name: "example.com", qtype: 1, class: 1, edns: true, do: true, size: 1400, end: ednsQuestionEnd}},
		{"EDNS option overruns rdata", cat(hdr(1, 0, 1, 0, 0, 1), wname("example", "com"), u16(1, 1), opt(1400, true, u16(15, 3, 17))), packet.FormErr, qwant{end: 12}},
		{"EDNS option header cut", cat(hdr(1, 0, 1, 0, 0, 1), wname("example", "com"), u16(1, 1), opt(1400, true, []byte{0, 15, 0})), packet.FormErr, qwant{end: 12}},
		{"two OPTs", cat(hdr(1, 0, 1, 0, 0, 2), wname("example", "com"), u16(1, 1), opt(1232, false, nil), opt(1232, true, nil)), packet.FormErr, qwant{end: 12}},
		{"OPT not at root", cat(hdr(1, 0, 1, 0, 0, 1), wname("example", "com"), u16(1, 1), wname("example"), u16(41, 1232, 0, 0, 0)), packet.FormErr, qwant{end: 12}},
		{"OPT owner pointer to qname", cat(hdr(1, 0, 1, 0, 0, 1), wname("example", "com"), u16(1, 1), []byte{0xc0, 12}, u16(41, 1232, 0, 0, 0)), packet.FormErr, qwant{end: 12}},
		{"OPT owner pointer to root", cat(hdr(1, 0, 1, 0, 0, 1), wname("example", "com"), u16(1, 1), []byte{0xc0, 24}, u16(41, 1232, 0, 0x8000, 0)), packet.OK, qwant{name: "example.com", qtype: 1, class: 1, edns: true, do: true, size: 1232, end: ednsQuestionEnd}},
		{"truncated OPT", edns[:len(edns)-1], packet.FormErr, qwant{end: 12}},
		{"OPT rdata beyond message", cat(hdr(1, 0, 1, 0, 0, 1), wname("example", "com"), u16(1, 1), []byte{0}, u16(41, 1232, 0, 0, 4), []byte{0, 15}), packet.FormErr, qwant{end: 12}},
		{"ARCOUNT 1 but no record", cat(hdr(1, 0, 1, 0, 0, 1), wname("example", "com"), u16(1, 1)), packet.FormErr, qwant{end: 12}},
		{"additional reserved label type", cat(hdr(1, 0, 1, 0, 0, 1), wname("example", "com"), u16(1, 1), []byte{0x40}, u16(1, 1, 0, 0, 0)), packet.FormErr, qwant{end: 12}},
		{"additional cut pointer", cat(hdr(1, 0, 1, 0, 0, 1), wname("example", "com"), u16(1, 1), []byte{0xc0}), packet.FormErr, qwant{end: 12}},
		{"ARCOUNT 2 OPT + TSIG-like with pointer", pointerTSIG, packet.OK, qwant{name: "example.com", qtype: 1, class: 1, edns: true, size: 1232, end: ednsQuestionEnd}},
		{"bytes after the message", cat(edns, []byte{0xde, 0xad, 0xbe, 0xef, 0xc0}), packet.OK, qwant{name: "example.com", qtype: 28, class: 1, edns: true, do: true, size: 4096, end: ednsQuestionEnd}},
		{"bytes after question, ARCOUNT 0", cat(q("x"), []byte{1, 2, 3}), packet.OK, qwant{name: "x", qtype: 1, class: 1, end: 12 + 3 + 4}},
	}
	var got packet.Question
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Dirty q from a previous read must not leak into this one.
			packet.ReadQuestion(edns, &got)
			r := packet.ReadQuestion(tc.msg, &got)
			if r != tc.want {
				t.Fatalf("ReadQuestion = %v, want %v", r, tc.want)
			}
			checkQ(t, tc.msg, &got, tc.want, tc.q)
		})
	}
}

func checkQ(t *testing.T, msg []byte, got *packet.Question, r packet.Reason, w qwant) {
	t.Helper()
	if w.end == -1 {
		w.end = len(msg)
	}
	if string(got.Name()) != w.name || got.QType != w.qtype || got.QClass != w.class ||
		got.EDNS != w.edns || got.DO != w.do || got.UDPSize != w.size || got.End != w.end {
		t.Fatalf("got name %q type %d class %d edns %v do %v size %d end %d\nwant %+v",
			got.Name(), got.QType, got.QClass, got.EDNS, got.DO, got.UDPSize, got.End, w)
	}
	switch r {
	case packet.DropShortDNS, packet.DropResponse:
		if got.ID != 0 || got.Flags != 0 {
			t.Fatalf("dropped message left ID %d flags %#x", got.ID, got.Flags)
		}
	default:
		if got.ID != uint16(msg[0])<<8|uint16(msg[1]) || got.Flags != uint16(msg[2])<<8|uint16(msg[3]) {
			t.Fatalf("ID %d flags %#x do not match the header", got.ID, got.Flags)
		}
	}
}

func TestReadReply(t *testing.T) {
	query := pkttest.MsgEDNS(0x4242, "Mail.Example.ORG", dns.TypeMX, 1232, true)
	reply := new(dns.Msg)
	reply.SetReply(query)
	reply.Answer = append(reply.Answer, &dns.MX{Hdr: dns.RR_Header{Name: "Mail.Example.ORG.", Rrtype: dns.TypeMX, Class: dns.ClassINET, Ttl: 60}, Preference: 10, Mx: "mx.example.org."})
	reply.SetEdns0(1232, true)
	packed := pkttest.Pack(reply)
	qend := 12 + len(wname("mail", "example", "org")) + 4
	tests := []struct {
		name string
		msg  []byte
		want packet.Reason
		q    qwant
	}{
		{"reply with answer and OPT", packed, packet.OK, qwant{name: "mail.example.org", qtype: dns.TypeMX, class: 1, end: qend}},
		{"query is not a reply", pkttest.Pack(query), packet.DropResponse, qwant{}},
		{"QDCOUNT 0", hdr(1, 0x8180, 0, 0, 0, 0), packet.FormErr, qwant{end: 12}},
		{"QDCOUNT 2", cat(hdr(1, 0x8180, 2, 0, 0, 0), wname("a"), u16(1, 1), wname("b"), u16(1, 1)), packet.FormErr, qwant{end: 12}},
		{"pointer in question", cat(hdr(1, 0x8180, 1, 0, 0, 0), []byte{0xc0, 12}, u16(1, 1)), packet.FormErr, qwant{end: 12}},
		{"label 64", cat(hdr(1, 0x8180, 1, 0, 0, 0), wname(label('x', 64)), u16(1, 1)), packet.FormErr, qwant{end: 12}},
		{"truncated question", packed[:qend-1], packet.FormErr, qwant{end: 12}},
		{"answer section garbage is not parsed", cat(packed[:qend], []byte{0xff, 0xff}), packet.OK, qwant{name: "mail.example.org", qtype: dns.TypeMX, class: 1, end: qend}},
		{"opcode is not checked", cat(hdr(1, 0x8000|5<<11, 1, 0, 0, 0), wname("a"), u16(6, 1)), packet.OK, qwant{name: "a", qtype: 6, class: 1, end: 12 + 3 + 4}},
		{"short", packed[:11], packet.DropShortDNS, qwant{}},
	}
	var got packet.Question
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			packet.ReadQuestion(pkttest.Pack(query), &got) // dirty it
			r := packet.ReadReply(tc.msg, &got)
			if r != tc.want {
				t.Fatalf("ReadReply = %v, want %v", r, tc.want)
			}
			checkQ(t, tc.msg, &got, tc.want, tc.q)
		})
	}
}

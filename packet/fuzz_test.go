// SPDX-License-Identifier: MIT

package packet_test

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"

	"github.com/dnstun/dnstun/internal/pkttest"
	"github.com/dnstun/dnstun/packet"
	"github.com/miekg/dns"
)

func seedMsgs() [][]byte {
	return [][]byte{
		// plain A query, mixed case
		pkttest.Pack(pkttest.Msg(1, "WWW.Example.com", dns.TypeA)),
		// AAAA with EDNS, DO, 4096
		pkttest.Pack(pkttest.MsgEDNS(2, "example.org", dns.TypeAAAA, 4096, true)),
		// root NS
		pkttest.Pack(pkttest.Msg(3, ".", dns.TypeNS)),
		// OPT + TSIG-like record with a pointer owner
		cat(hdr(4, 0, 1, 0, 0, 2), wname("example", "com"), u16(1, 1), opt(1232, false, u16(15, 2, 17)),
			[]byte{0xc0, 12}, u16(250, 255), u32(0), u16(2), []byte{1, 2}),
		// pointer in the question (FORMERR)
		cat(hdr(5, 0, 1, 0, 0, 0), []byte{0xc0, 12}, u16(1, 1)),
		// NOTIFY (NOTIMP)
		cat(hdr(6, 4<<11, 1, 0, 0, 0), wname("a"), u16(6, 1)),
		// a response (dropped)
		cat(hdr(7, 0x8180, 1, 0, 0, 0), wname("a"), u16(1, 1)),
		// 255-byte name
		cat(hdr(8, 0, 1, 0, 0, 0), wname(label('a', 63), label('b', 63), label('c', 63), label('d', 61)), u16(1, 1)),
		// a '.' and a NUL inside labels
		cat(hdr(9, 0, 1, 0, 0, 0), wname("a.b", "\x00c"), u16(1, 1)),
		// short
		{0, 1, 2},
	}
}

func FuzzDecode(f *testing.F) {
	for _, m := range seedMsgs()[:3] {
		f.Add(pkttest.Query4(cli4, srv4, mustUnpack(m)))                 // good IPv4 query
		f.Add(pkttest.Query6(cli6, srv6, mustUnpack(m)))                 // good IPv6 query
		f.Add(cat(pkttest.Query4(cli4, srv4, mustUnpack(m)), []byte{1})) // trailing byte
	}
	for _, hc := range hotCases() {
		f.Add(hc.pkt) // includes IPv4 with options
	}
	f.Add([]byte{})                                  // empty
	f.Add([]byte{0x45})                              // IPv4 nibble, 1 byte
	f.Add([]byte{0x60, 0, 0, 0, 0, 0, 44, 64})       // IPv6 fragment, cut
	f.Add(append([]byte{0x4f}, make([]byte, 59)...)) // IHL 15, zero lengths
	p := packet.NewParser()
	o := newOracle()
	f.Fuzz(func(t *testing.T, pkt []byte) {
		in := bytes.Clone(pkt)
		var out packet.Parsed
		r := p.Decode(pkt, &out)
		if !bytes.Equal(in, pkt) {
			t.Fatal("Decode changed the packet")
		}
		if r >= packet.NumReasons {
			t.Fatalf("reason %d", r)
		}
		if r != packet.OK {
			if out != (packet.Parsed{}) {
				t.Fatalf("%v with non-zero Parsed %+v", r, out)
			}
			return
		}
		if out.Family != 4 && out.Family != 6 || out.PayloadOff < 28 || out.PayloadLen < 0 ||
			out.PayloadOff+out.PayloadLen > len(pkt) || out.Dst.Port() != 53 ||
			!out.Src.Addr().IsValid() || !out.Dst.Addr().IsValid() {
			t.Fatalf("bad Parsed %+v for %d bytes", out, len(pkt))
		}
		o.agree(t, pkt, &out)
	})
}

func mustUnpack(b []byte) *dns.Msg {
	m := new(dns.Msg)
	if err := m.Unpack(b); err != nil {
		panic(err)
	}
	return m
}

// simpleName reports whether miekg/dns prints name without escapes other
// than "\." for a '.' inside a label.
func simpleName(name []byte) bool {
	for _, c := range name {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// miekgName turns a miekg/dns question name into the form Name returns: a
// '.' inside a label is not escaped (see Question.Name), no trailing dot,
// lower case. Only valid for names that pass simpleName.
func miekgName(s string) string {
	s = strings.ReplaceAll(strings.ToLower(s), `\.`, ".")
	return strings.TrimSuffix(s, ".")
}

func FuzzReadQuestion(f *testing.F) {
	for _, m := range seedMsgs() {
		f.Add(m)
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		var q packet.Question
		in := bytes.Clone(msg)
		r := packet.ReadQuestion(msg, &q)
		if !bytes.Equal(in, msg) {
			t.Fatal("ReadQuestion changed the message")
		}
		checkQInvariants(t, msg, &q, r)
		if r == packet.OK {
			m := new(dns.Msg)
			if err := m.Unpack(msg); err == nil && len(m.Question) == 1 {
				mq := m.Question[0]
				if mq.Qtype != q.QType || mq.Qclass != q.QClass {
					t.Fatalf("type/class %d/%d, miekg %d/%d", q.QType, q.QClass, mq.Qtype, mq.Qclass)
				}
				if simpleName(q.Name()) && miekgName(mq.Name) != string(q.Name()) {
					t.Fatalf("name %q, miekg %q", q.Name(), mq.Name)
				}
			}
		}
		rr := packet.ReadReply(msg, &q)
		checkQInvariants(t, msg, &q, rr)
		if q.EDNS || q.DO || q.UDPSize != 0 {
			t.Fatal("ReadReply set EDNS fields")
		}
	})
}

func checkQInvariants(t *testing.T, msg []byte, q *packet.Question, r packet.Reason) {
	t.Helper()
	name := q.Name()
	if len(name) > 253 || bytes.ContainsFunc(name, func(c rune) bool { return 'A' <= c && c <= 'Z' }) {
		t.Fatalf("name %q", name)
	}
	if q.End > len(msg) {
		t.Fatalf("End %d > %d", q.End, len(msg))
	}
	if r == packet.OK && q.End < 17 {
		t.Fatalf("OK with End %d", q.End)
	}
	if r != packet.OK && (len(name) != 0 || q.QType != 0 || q.EDNS) {
		t.Fatalf("%v left question data", r)
	}
}

func FuzzAnswerInPlace(f *testing.F) {
	for i, m := range seedMsgs() {
		f.Add(m, i%2 == 0, uint16(200)) // each seed message over IPv4 and IPv6, roomy
	}
	f.Add(seedMsgs()[1], true, uint16(3))   // EDNS query with too little room for OPT+EDE
	f.Add(seedMsgs()[0], false, uint16(20)) // no room for records: TC
	reply := packet.Reply{TTL: 30, Addrs: []netip.Addr{a1, aaa1, a2}, HasEDE: true, EDE: 15}
	p := packet.NewParser()
	f.Fuzz(func(t *testing.T, msg []byte, v6 bool, extra uint16) {
		if len(msg) > 60000 {
			return
		}
		var pkt []byte
		if v6 {
			pkt = pkttest.UDP6(cli6, srv6, msg, nil)
		} else {
			pkt = pkttest.UDP4(cli4, srv4, msg, nil)
		}
		buf := make([]byte, len(pkt)+int(extra))
		copy(buf, pkt)
		var parsed packet.Parsed
		if r := p.Decode(buf[:len(pkt)], &parsed); r != packet.OK {
			t.Fatalf("Decode of a gopacket-built packet: %v", r)
		}
		var q packet.Question
		r := packet.ReadQuestion(buf[parsed.PayloadOff:parsed.PayloadOff+parsed.PayloadLen], &q)
		rp := reply
		if r != packet.OK {
			rc, ok := r.Rcode()
			if !ok {
				return
			}
			rp.Rcode = rc
		}
		n := packet.AnswerInPlace(buf, &parsed, &q, &rp)
		if n > len(buf) || n < 0 {
			t.Fatalf("n %d > len %d", n, len(buf))
		}
		if n == 0 {
			if int(extra) >= 17 {
				t.Fatalf("no answer with %d bytes of room", extra)
			}
			return
		}
		payload := pkttest.VerifyUDP(t, buf[:n])
		m := pkttest.Unpack(t, payload)
		if m.Id != q.ID || !m.Response || (m.IsEdns0() != nil) != q.EDNS {
			t.Fatalf("answer %v for question %+v", m, q)
		}
		if limit := max(512, int(q.UDPSize)); len(payload) > limit {
			t.Fatalf("answer %d bytes > client limit %d", len(payload), limit)
		}
	})
}

// FuzzReadReplyTruncate reads arbitrary bytes as an upstream's reply (what
// a receiver reads from an upstream socket or stream), and cuts what reads
// to the header and question with TC, as a receiver does for a UDP client:
// never a panic, and the cut message is a well-formed response to the same
// question, with TC and no records.
func FuzzReadReplyTruncate(f *testing.F) {
	for _, m := range seedMsgs() {
		f.Add(m)
	}
	ans := pkttest.Msg(10, "www.example.com", dns.TypeA)
	ans.Response = true
	ans.Answer = append(ans.Answer, &dns.A{Hdr: dns.RR_Header{Name: "www.example.com.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: []byte{192, 0, 2, 1}})
	f.Add(pkttest.Pack(ans))
	f.Fuzz(func(t *testing.T, msg []byte) {
		var q packet.Question
		if packet.ReadReply(msg, &q) != packet.OK {
			return
		}
		if q.End < 12 || q.End > len(msg) {
			t.Fatalf("question ends at %d of %d bytes", q.End, len(msg))
		}
		// A reply miekg/dns reads whole is well-formed to us too (we never
		// drop a good answer); one we call well-formed has every record
		// inside the message.
		var m dns.Msg
		if m.Unpack(msg) == nil && !packet.WellFormed(msg, q.End) {
			t.Fatalf("miekg/dns reads the reply, WellFormed refuses it: %v", &m)
		}
		name, qtype := string(q.Name()), q.QType
		buf := bytes.Clone(msg)
		n := packet.Truncate(buf, q.End)
		if n != q.End {
			t.Fatalf("Truncate returned %d, want the question's end %d", n, q.End)
		}
		var q2 packet.Question
		if r := packet.ReadReply(buf[:n], &q2); r != packet.OK {
			t.Fatalf("the cut reply does not read: %v", r)
		}
		if string(q2.Name()) != name || q2.QType != qtype || q2.Flags&0x0200 == 0 {
			t.Fatalf("cut reply: %q %d flags %#x, want %q %d with TC", q2.Name(), q2.QType, q2.Flags, name, qtype)
		}
	})
}

// TestWellFormed: a reply whose records are all there reads; one cut
// inside a record, or whose counts promise more, does not.
func TestWellFormed(t *testing.T) {
	m := pkttest.Msg(1, "www.example.com", dns.TypeA)
	m.Response = true
	for i := range 3 {
		m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: "www.example.com.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: []byte{192, 0, 2, byte(i)}})
	}
	m.SetEdns0(1232, false)
	b := pkttest.Pack(m)
	var q packet.Question
	if packet.ReadReply(b, &q) != packet.OK {
		t.Fatal("reply does not read")
	}
	if !packet.WellFormed(b, q.End) {
		t.Fatal("a whole reply is not well-formed")
	}
	// The records: three A answers of 31 bytes (the owner name in full),
	// then the 11-byte OPT. A cut inside any of them fails.
	if len(b) != q.End+3*31+11 {
		t.Fatalf("unexpected layout: %d bytes, question ends at %d", len(b), q.End)
	}
	for cut := q.End + 1; cut < len(b); cut++ {
		if (cut-q.End)%31 == 0 && cut-q.End <= 93 {
			continue // between two records
		}
		if packet.WellFormed(b[:cut], q.End) {
			t.Fatalf("cut at %d of %d bytes: still well-formed", cut, len(b))
		}
	}
	// Counts that announce more than there is, the message ending after a
	// whole record: read as truncated, as stub resolvers do.
	short := bytes.Clone(b[:len(b)-11]) // without the OPT record
	if !packet.WellFormed(short, q.End) {
		t.Error("a reply ending after a whole record, its counts announcing one more, was refused")
	}
}

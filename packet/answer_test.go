// SPDX-License-Identifier: MIT

package packet_test

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"

	"github.com/dnstun/dnstun/internal/pkttest"
	"github.com/dnstun/dnstun/packet"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/miekg/dns"
)

var (
	a1   = netip.MustParseAddr("192.0.2.1")
	a2   = netip.MustParseAddr("192.0.2.2")
	aaa1 = netip.MustParseAddr("2001:db8::1")
)

// answer runs Decode, ReadQuestion and AnswerInPlace on query packet pkt
// inside a buffer of the given room, and returns the answer packet.
func answer(t *testing.T, pkt []byte, room int, r *packet.Reply) []byte {
	t.Helper()
	buf := make([]byte, room)
	copy(buf, pkt)
	var p packet.Parsed
	if rs := packet.NewParser().Decode(buf[:len(pkt)], &p); rs != packet.OK {
		t.Fatalf("Decode: %v", rs)
	}
	var q packet.Question
	if rs := packet.ReadQuestion(buf[p.PayloadOff:p.PayloadOff+p.PayloadLen], &q); rs != packet.OK {
		if _, ok := rs.Rcode(); !ok {
			t.Fatalf("ReadQuestion: %v", rs)
		}
	}
	n := packet.AnswerInPlace(buf, &p, &q, r)
	if n == 0 {
		return nil
	}
	if n > room {
		t.Fatalf("answer %d bytes > room %d", n, room)
	}
	return buf[:n]
}

// checkIP checks the IP header fields we promise, as decoded by gopacket.
func checkIP(t *testing.T, pkt []byte, from, to netip.AddrPort) {
	t.Helper()
	first := layers.LayerTypeIPv4
	if pkt[0]>>4 == 6 {
		first = layers.LayerTypeIPv6
	}
	gp := gopacket.NewPacket(pkt, first, gopacket.Default)
	var src, dst netip.Addr
	switch ip := gp.NetworkLayer().(type) {
	case *layers.IPv4:
		if ip.IHL != 5 || ip.TTL != 64 || ip.Flags != layers.IPv4DontFragment || ip.Id != 0 || ip.TOS != 0 || ip.Protocol != layers.IPProtocolUDP {
			t.Errorf("IPv4 header: IHL %d TTL %d flags %v id %d tos %d proto %v", ip.IHL, ip.TTL, ip.Flags, ip.Id, ip.TOS, ip.Protocol)
		}
		src, _ = netip.AddrFromSlice(ip.SrcIP)
		dst, _ = netip.AddrFromSlice(ip.DstIP)
	case *layers.IPv6:
		if ip.HopLimit != 64 || ip.TrafficClass != 0 || ip.FlowLabel != 0 || ip.NextHeader != layers.IPProtocolUDP {
			t.Errorf("IPv6 header: hop limit %d tc %d flow %d next %v", ip.HopLimit, ip.TrafficClass, ip.FlowLabel, ip.NextHeader)
		}
		src, _ = netip.AddrFromSlice(ip.SrcIP)
		dst, _ = netip.AddrFromSlice(ip.DstIP)
	}
	udp := gp.Layer(layers.LayerTypeUDP).(*layers.UDP)
	gotFrom := netip.AddrPortFrom(src, uint16(udp.SrcPort))
	gotTo := netip.AddrPortFrom(dst, uint16(udp.DstPort))
	if gotFrom != from || gotTo != to {
		t.Errorf("packet %v -> %v, want %v -> %v", gotFrom, gotTo, from, to)
	}
}

func ede(m *dns.Msg) (uint16, bool) {
	o := m.IsEdns0()
	if o == nil {
		return 0, false
	}
	for _, op := range o.Option {
		if e, ok := op.(*dns.EDNS0_EDE); ok {
			return e.InfoCode, true
		}
	}
	return 0, false
}

func TestAnswerInPlace(t *testing.T) {
	type want struct {
		rcode int
		addrs []netip.Addr
		tc    bool
	}
	blocked := &packet.Reply{Rcode: dns.RcodeNameError, TTL: 10, HasEDE: true, EDE: 15}
	refused := &packet.Reply{Rcode: dns.RcodeRefused, HasEDE: true, EDE: 17}
	local := &packet.Reply{TTL: 300, Addrs: []netip.Addr{a1, aaa1, a2}}
	servfail := &packet.Reply{Rcode: dns.RcodeServerFailure}
	cases := []struct {
		name  string
		qname string
		qtype uint16
		r     *packet.Reply
		w     want
	}{
		{"NXDOMAIN blocked", "Ads.Example.COM", dns.TypeA, blocked, want{rcode: dns.RcodeNameError}},
		{"REFUSED", "example.net", dns.TypeA, refused, want{rcode: dns.RcodeRefused}},
		{"NOERROR two A", "Local.Test", dns.TypeA, local, want{addrs: []netip.Addr{a1, a2}}},
		{"AAAA gets only v6", "local.test", dns.TypeAAAA, local, want{addrs: []netip.Addr{aaa1}}},
		{"NODATA for TXT", "local.test", dns.TypeTXT, local, want{}},
		{"SERVFAIL", "slow.test", dns.TypeA, servfail, want{rcode: dns.RcodeServerFailure}},
		{"root NS", ".", dns.TypeNS, local, want{}},
	}
	for _, fam := range []struct {
		name     string
		cli, srv netip.AddrPort
	}{{"v4", cli4, srv4}, {"v6", cli6, srv6}} {
		for _, withEDNS := range []bool{false, true} {
			for _, tc := range cases {
				name := fam.name + "/" + tc.name
				if withEDNS {
					name += "/edns"
				}
				t.Run(name, func(t *testing.T) {
					qm := pkttest.Msg(0xbeef, tc.qname, tc.qtype)
					qm.CheckingDisabled = true
					qm.AuthenticatedData = true
					if withEDNS {
						qm.SetEdns0(4096, true)
					}
					out := answer(t, pkttest.Query(fam.cli, fam.srv, qm), 1500, tc.r)
					if out == nil {
						t.Fatal("AnswerInPlace = 0")
					}
					checkIP(t, out, fam.srv, fam.cli)
					m := pkttest.Unpack(t, pkttest.VerifyUDP(t, out))
					if m.Id != 0xbeef || !m.Response || m.Opcode != dns.OpcodeQuery || m.Authoritative ||
						m.Truncated != tc.w.tc || !m.RecursionDesired || !m.RecursionAvailable ||
						m.Zero || m.AuthenticatedData || !m.CheckingDisabled || m.Rcode != tc.w.rcode {
						t.Errorf("header: %v", m.MsgHdr)
					}
					if len(m.Question) != 1 || m.Question[0] != qm.Question[0] {
						t.Errorf("question %v, want %v (case kept)", m.Question, qm.Question)
					}
					if len(m.Answer) != len(tc.w.addrs) || len(m.Ns) != 0 {
						t.Fatalf("answer %v ns %v, want %v", m.Answer, m.Ns, tc.w.addrs)
					}
					for i, rr := range m.Answer {
						var got netip.Addr
						switch rr := rr.(type) {
						case *dns.A:
							got, _ = netip.AddrFromSlice(rr.A.To4())
						case *dns.AAAA:
							got, _ = netip.AddrFromSlice(rr.AAAA)
						}
						h := rr.Header()
						if got != tc.w.addrs[i] || h.Ttl != tc.r.TTL || h.Class != dns.ClassINET || h.Rrtype != tc.qtype || h.Name != qm.Question[0].Name {
							t.Errorf("answer %d: %v, want %v ttl %d", i, rr, tc.w.addrs[i], tc.r.TTL)
						}
					}
					o := m.IsEdns0()
					if (o != nil) != withEDNS {
						t.Fatalf("OPT present %v, query EDNS %v", o != nil, withEDNS)
					}
					if o != nil && (o.UDPSize() != 1232 || !o.Do() || o.Version() != 0) {
						t.Errorf("OPT %v", o)
					}
					code, has := ede(m)
					if has != (withEDNS && tc.r.HasEDE) || code != tc.r.EDE && has {
						t.Errorf("EDE %d present %v; want %d when EDNS", code, has, tc.r.EDE)
					}
				})
			}
		}
	}
}

func TestAnswerInPlaceSpecial(t *testing.T) {
	many := &packet.Reply{TTL: 5}
	for i := range 40 { // 40*16 = 640 bytes of records: more than 512
		many.Addrs = append(many.Addrs, netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}))
	}
	bigEDNS := pkttest.MsgEDNS(1, "many.test", dns.TypeA, 4096, false)
	t.Run("v4 no EDNS over 512 sets TC", func(t *testing.T) {
		out := answer(t, pkttest.Query4(cli4, srv4, pkttest.Msg(1, "many.test", dns.TypeA)), 1500, many)
		m := pkttest.Unpack(t, pkttest.VerifyUDP(t, out))
		if !m.Truncated || len(m.Answer) != 0 || m.Rcode != 0 || len(m.Question) != 1 {
			t.Fatalf("%v", m)
		}
	})
	t.Run("v6 EDNS 4096 fits all", func(t *testing.T) {
		out := answer(t, pkttest.Query6(cli6, srv6, bigEDNS), 1500, many)
		m := pkttest.Unpack(t, pkttest.VerifyUDP(t, out))
		if m.Truncated || len(m.Answer) != 40 {
			t.Fatalf("TC %v, %d answers", m.Truncated, len(m.Answer))
		}
	})
	t.Run("v6 EDNS small buffer sets TC", func(t *testing.T) {
		pkt := pkttest.Query6(cli6, srv6, bigEDNS)
		out := answer(t, pkt, len(pkt)+100, many)
		m := pkttest.Unpack(t, pkttest.VerifyUDP(t, out))
		if !m.Truncated || len(m.Answer) != 0 || m.IsEdns0() == nil {
			t.Fatalf("%v", m)
		}
	})
	t.Run("EDNS size below 512 treated as 512", func(t *testing.T) {
		two := &packet.Reply{Addrs: []netip.Addr{a1, a2}}
		out := answer(t, pkttest.Query4(cli4, srv4, pkttest.MsgEDNS(1, "x.test", dns.TypeA, 100, false)), 1500, two)
		m := pkttest.Unpack(t, pkttest.VerifyUDP(t, out))
		if m.Truncated || len(m.Answer) != 2 {
			t.Fatalf("%v", m)
		}
	})
	t.Run("no room for OPT+EDE returns 0", func(t *testing.T) {
		pkt := pkttest.Query4(cli4, srv4, pkttest.MsgEDNS(1, "x.test", dns.TypeA, 1232, false))
		if out := answer(t, pkt, len(pkt)+5, &packet.Reply{Rcode: 3, HasEDE: true, EDE: 15}); out != nil {
			t.Fatalf("got %d bytes, want 0", len(out))
		}
		// Exactly enough room: the 6 EDE bytes.
		if out := answer(t, pkt, len(pkt)+6, &packet.Reply{Rcode: 3, HasEDE: true, EDE: 15}); out == nil {
			t.Fatal("got 0 with exactly enough room")
		}
	})
	t.Run("v4 with options", func(t *testing.T) {
		pkt := pkttest.UDP4(cli4, srv4, pkttest.Pack(pkttest.Msg(77, "opt.test", dns.TypeA)), func(ip *layers.IPv4) {
			ip.Options = []layers.IPv4Option{{OptionType: 148, OptionLength: 4, OptionData: []byte{0, 0}}, {OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 0}}
		})
		if pkt[0] != 0x47 {
			t.Fatalf("test packet IHL: %#x", pkt[0])
		}
		out := answer(t, pkt, len(pkt)+64, &packet.Reply{TTL: 9, Addrs: []netip.Addr{a1}})
		checkIP(t, out, srv4, cli4)
		m := pkttest.Unpack(t, pkttest.VerifyUDP(t, out))
		if m.Id != 77 || len(m.Answer) != 1 || m.Answer[0].(*dns.A).A.String() != a1.String() || m.Question[0].Name != "opt.test." {
			t.Fatalf("%v", m)
		}
	})
	t.Run("FORMERR for QDCOUNT 2: header only", func(t *testing.T) {
		msg := cat(hdr(55, 0x0100, 2, 0, 0, 0), wname("a"), u16(1, 1), wname("b"), u16(1, 1))
		out := answer(t, pkttest.UDP6(cli6, srv6, msg, nil), 1500, &packet.Reply{Rcode: 1})
		m := pkttest.Unpack(t, pkttest.VerifyUDP(t, out))
		if m.Id != 55 || m.Rcode != dns.RcodeFormatError || len(m.Question) != 0 || !m.Response || !m.RecursionDesired {
			t.Fatalf("%v", m)
		}
	})
	t.Run("NOTIMP keeps opcode", func(t *testing.T) {
		msg := cat(hdr(56, 4<<11, 1, 0, 0, 0), wname("a"), u16(6, 1))
		out := answer(t, pkttest.UDP4(cli4, srv4, msg, nil), 1500, &packet.Reply{Rcode: 4})
		m := pkttest.Unpack(t, pkttest.VerifyUDP(t, out))
		if m.Id != 56 || m.Rcode != dns.RcodeNotImplemented || m.Opcode != dns.OpcodeNotify || len(m.Question) != 0 {
			t.Fatalf("%v", m)
		}
	})
	t.Run("extended rcode BADVERS via OPT", func(t *testing.T) {
		out := answer(t, pkttest.Query4(cli4, srv4, pkttest.MsgEDNS(1, "x.test", dns.TypeA, 1232, false)), 1500, &packet.Reply{Rcode: dns.RcodeBadVers})
		m := pkttest.Unpack(t, pkttest.VerifyUDP(t, out))
		if m.Rcode != dns.RcodeBadVers {
			t.Fatalf("rcode %d", m.Rcode)
		}
	})
	t.Run("inconsistent Parsed returns 0", func(t *testing.T) {
		pkt := pkttest.Query4(cli4, srv4, pkttest.Msg(1, "x.test", dns.TypeA))
		var q packet.Question
		if r := packet.ReadQuestion(pkt[28:], &q); r != packet.OK {
			t.Fatal(r)
		}
		good := packet.Parsed{Family: 4, Src: cli4, Dst: srv4, PayloadOff: 28, PayloadLen: len(pkt) - 28}
		for _, p := range []packet.Parsed{
			{},
			{Family: 6, Src: cli4, Dst: srv4, PayloadOff: 48, PayloadLen: len(pkt) - 48},
			{Family: 4, Src: cli6, Dst: srv6, PayloadOff: 28, PayloadLen: len(pkt) - 28},
			{Family: 4, Src: cli4, Dst: srv4, PayloadOff: 20, PayloadLen: len(pkt) - 20},
			{Family: 4, Src: cli4, Dst: srv4, PayloadOff: 28, PayloadLen: len(pkt)},
			{Family: 4, Src: cli4, Dst: srv4, PayloadOff: 28, PayloadLen: 12},
			{Family: 4, Src: cli4, Dst: srv4, PayloadOff: len(pkt) + 1, PayloadLen: -1},
		} {
			if n := packet.AnswerInPlace(bytes.Clone(pkt), &p, &q, &packet.Reply{}); n != 0 {
				t.Errorf("%+v: %d, want 0", p, n)
			}
		}
		if n := packet.AnswerInPlace(bytes.Clone(pkt), &good, &q, &packet.Reply{}); n == 0 {
			t.Error("good Parsed: 0")
		}
	})
}

func TestAnswerDNSBounds(t *testing.T) {
	msg := pkttest.Pack(pkttest.Msg(1, "x.test", dns.TypeA))
	var q packet.Question
	if r := packet.ReadQuestion(msg, &q); r != packet.OK {
		t.Fatal(r)
	}
	if n := packet.AnswerDNS(msg[:q.End-1], &q, &packet.Reply{}); n != 0 {
		t.Errorf("buffer shorter than question: %d", n)
	}
	if n := packet.AnswerDNS(bytes.Clone(msg), &q, &packet.Reply{Addrs: []netip.Addr{a1}}); n != len(msg) {
		t.Errorf("no room for a record: %d, want %d (TC)", n, len(msg))
	}
	var zero packet.Question
	if n := packet.AnswerDNS(make([]byte, 512), &zero, &packet.Reply{}); n != 0 {
		t.Errorf("zero Question: %d", n)
	}
}

func TestWrapReply(t *testing.T) {
	up4 := netip.MustParseAddrPort("9.9.9.9:53")
	up6 := netip.MustParseAddrPort("[2620:fe::fe]:53")
	mapped := func(ap netip.AddrPort) netip.AddrPort {
		return netip.AddrPortFrom(netip.AddrFrom16(ap.Addr().As16()), ap.Port())
	}
	reply := new(dns.Msg)
	reply.SetReply(pkttest.Msg(3, "wrap.test", dns.TypeA))
	payload := pkttest.Pack(reply)
	tests := []struct {
		name     string
		off      int
		from, to netip.AddrPort
		start    int
		wantFrom netip.AddrPort
		wantTo   netip.AddrPort
	}{
		{"v4 at 28", 28, srv4, cli4, 0, srv4, cli4},
		{"v4 at 48", 48, srv4, cli4, 20, srv4, cli4},
		{"v6 at 48", 48, srv6, cli6, 0, srv6, cli6},
		{"v6 at 64", 64, up6, cli6, 16, up6, cli6},
		{"v4-mapped unmapped", 48, mapped(up4), mapped(cli4), 20, up4, cli4},
		{"v4-mapped with v4", 48, mapped(up4), cli4, 20, up4, cli4},
		{"v4 payloadOff too small", 27, srv4, cli4, -1, srv4, cli4},
		{"v6 payloadOff too small", 47, srv6, cli6, -1, srv6, cli6},
		{"families differ", 48, up4, cli6, -1, up4, cli6},
		{"invalid address", 48, netip.AddrPort{}, cli4, -1, up4, cli4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			buf := make([]byte, tc.off+len(payload)+10)
			copy(buf[tc.off:], payload)
			start := packet.WrapReply(buf, tc.off, len(payload), tc.from, tc.to)
			if start != tc.start {
				t.Fatalf("start %d, want %d", start, tc.start)
			}
			if start < 0 {
				return
			}
			pkt := buf[start : tc.off+len(payload)]
			checkIP(t, pkt, tc.wantFrom, tc.wantTo)
			if got := pkttest.VerifyUDP(t, pkt); !bytes.Equal(got, payload) {
				t.Fatalf("payload changed")
			}
		})
	}
	t.Run("sizes", func(t *testing.T) {
		buf := make([]byte, 70000)
		if s := packet.WrapReply(buf, 28, 65535-28, srv4, cli4); s != 0 {
			t.Errorf("65535-byte v4 packet: %d", s)
		}
		if s := packet.WrapReply(buf, 28, 65535-27, srv4, cli4); s != -1 {
			t.Errorf("65536-byte v4 packet: %d", s)
		}
		if s := packet.WrapReply(buf, 48, 65535-47, srv6, cli6); s != -1 {
			t.Errorf("65536-byte v6 packet: %d", s)
		}
		if s := packet.WrapReply(buf[:100], 48, 53, srv6, cli6); s != -1 {
			t.Errorf("payload beyond buffer: %d", s)
		}
		if s := packet.WrapReply(buf[:100], 48, -1, srv6, cli6); s != -1 {
			t.Errorf("negative length: %d", s)
		}
		if s := packet.WrapReply(buf[:100], 101, 0, srv6, cli6); s != -1 {
			t.Errorf("payloadOff beyond buffer: %d", s)
		}
		if s := packet.WrapReply(buf[:100], 48, 52, srv6, cli6); s != 0 {
			t.Errorf("payload filling the buffer: %d", s)
		}
	})
}

func TestTruncate(t *testing.T) {
	m := new(dns.Msg)
	m.SetQuestion("big.example.", dns.TypeTXT)
	m.Response = true
	for range 20 {
		m.Answer = append(m.Answer, &dns.TXT{Hdr: dns.RR_Header{Name: "big.example.", Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: []string{strings.Repeat("x", 200)}})
	}
	m.SetEdns0(4096, false)
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	var q packet.Question
	if r := packet.ReadReply(b, &q); r != packet.OK {
		t.Fatalf("ReadReply: %v", r)
	}
	n := packet.Truncate(b, q.End)
	var got dns.Msg
	if err := got.Unpack(b[:n]); err != nil {
		t.Fatal(err)
	}
	if !got.Truncated || got.Id != m.Id || len(got.Question) != 1 || got.Question[0].Name != "big.example." || len(got.Answer)+len(got.Ns)+len(got.Extra) != 0 || n > 512 {
		t.Errorf("truncated to %d bytes: %v", n, &got)
	}
	if packet.Truncate(b, 5) != 0 || packet.Truncate(b[:10], 12) != 0 {
		t.Error("a bad question end was accepted")
	}
}

// TestReplyInPlace: a payload overwritten in place (as a cache hit does)
// becomes the answer packet, from v4, v6 and v4 with options, and the
// independent oracle accepts its headers and checksums.
func TestReplyInPlace(t *testing.T) {
	msg := pkttest.Msg(0x1234, "Cached.Example", dns.TypeA)
	routerAlert := func(ip *layers.IPv4) {
		ip.Options = []layers.IPv4Option{{OptionType: 148, OptionLength: 4, OptionData: []byte{0, 0}}}
	}
	for _, c := range []struct {
		name     string
		pkt      []byte
		cli, srv netip.AddrPort
	}{
		{"v4", pkttest.Query(cli4, srv4, msg), cli4, srv4},
		{"v6", pkttest.Query(cli6, srv6, msg), cli6, srv6},
		{"v4 options", pkttest.UDP4(cli4, srv4, pkttest.Pack(msg), routerAlert), cli4, srv4},
	} {
		t.Run(c.name, func(t *testing.T) {
			buf := make([]byte, 1500)
			copy(buf, c.pkt)
			var p packet.Parsed
			if r := packet.NewParser().Decode(buf[:len(c.pkt)], &p); r != packet.OK {
				t.Fatal(r)
			}
			am := msg.Copy()
			am.Response = true
			rr, _ := dns.NewRR("Cached.Example. 60 IN A 192.0.2.9")
			am.Answer = []dns.RR{rr}
			wire := pkttest.Pack(am)
			n := copy(buf[p.PayloadOff:], wire)
			out := packet.ReplyInPlace(buf, &p, n)
			if out == 0 {
				t.Fatal("ReplyInPlace = 0")
			}
			checkIP(t, buf[:out], c.srv, c.cli)
			m := pkttest.Unpack(t, pkttest.VerifyUDP(t, buf[:out]))
			if m.Id != 0x1234 || len(m.Answer) != 1 || m.Answer[0].String() != rr.String() {
				t.Errorf("answer %v", m)
			}
		})
	}
	var p packet.Parsed
	if packet.ReplyInPlace(make([]byte, 100), &p, 50) != 0 {
		t.Error("built a reply from an undecoded packet")
	}
}

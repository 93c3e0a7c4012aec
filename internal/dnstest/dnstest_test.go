// SPDX-License-Identifier: MIT

package dnstest

import (
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// exchange sends one A query for www.example.com to s over UDP from a
// socket that accepts datagrams from any source, and returns the first
// datagram that comes back and where it came from.
func exchange(t *testing.T, s *Server, edns uint16) ([]byte, net.Addr) {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	q := new(dns.Msg)
	q.SetQuestion("www.example.com.", dns.TypeA)
	q.Id = 0x1234
	if edns > 0 {
		q.SetEdns0(edns, false)
	}
	b, _ := q.Pack()
	if _, err := c.WriteTo(b, net.UDPAddrFromAddrPort(s.Addr())); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 65536)
	n, from, err := c.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	return buf[:n], from
}

func TestLies(t *testing.T) {
	zone, err := ParseZone("www.example.com. 300 IN A 192.0.2.80", "www.example.com. 300 IN AAAA 2001:db8::80")
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := Serve(pc, zone)
	defer s.Close()
	liar, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer liar.Close()
	s.SetLiar(liar)
	unpack := func(t *testing.T, b []byte) *dns.Msg {
		t.Helper()
		m := new(dns.Msg)
		if err := m.Unpack(b); err != nil {
			t.Fatalf("%d bytes do not parse: %v", len(b), err)
		}
		return m
	}
	for _, tc := range []struct {
		name  string
		lie   Lie
		edns  uint16
		check func(t *testing.T, b []byte, from net.Addr)
	}{
		{"honest", Honest, 0, func(t *testing.T, b []byte, from net.Addr) {
			m := unpack(t, b)
			if m.Id != 0x1234 || len(m.Answer) != 1 || m.Answer[0].(*dns.A).A.String() != "192.0.2.80" || from.String() != s.Addr().String() {
				t.Errorf("%v from %v", m, from)
			}
		}},
		{"id", LieID, 0, func(t *testing.T, b []byte, _ net.Addr) {
			if m := unpack(t, b); m.Id == 0x1234 || len(m.Answer) != 1 {
				t.Errorf("%v", m)
			}
		}},
		{"source", LieSource, 0, func(t *testing.T, b []byte, from net.Addr) {
			if m := unpack(t, b); m.Id != 0x1234 || from.String() != liar.LocalAddr().String() {
				t.Errorf("%v from %v, want from %v", m, from, liar.LocalAddr())
			}
		}},
		{"question", LieQuestion, 0, func(t *testing.T, b []byte, _ net.Addr) {
			if m := unpack(t, b); m.Question[0].Name != "lie.www.example.com." || m.Answer[0].Header().Name != "lie.www.example.com." {
				t.Errorf("%v", m)
			}
		}},
		{"type", LieType, 0, func(t *testing.T, b []byte, _ net.Addr) {
			if m := unpack(t, b); m.Question[0].Qtype != dns.TypeAAAA || len(m.Answer) != 1 || m.Answer[0].Header().Rrtype != dns.TypeAAAA {
				t.Errorf("%v", m)
			}
		}},
		{"record type", LieRecordType, 0, func(t *testing.T, b []byte, _ net.Addr) {
			if m := unpack(t, b); m.Question[0].Qtype != dns.TypeA || len(m.Answer) != 1 || m.Answer[0].Header().Rrtype != dns.TypeAAAA {
				t.Errorf("%v", m)
			}
		}},
		{"malformed", LieMalformed, 0, func(t *testing.T, b []byte, _ net.Addr) {
			if len(b) < 12 || b[0] != 0x12 || b[1] != 0x34 || b[2]&0x80 == 0 {
				t.Errorf("not a reply's header: %x", b)
			}
			if err := new(dns.Msg).Unpack(b); err == nil {
				t.Errorf("%d bytes parse", len(b))
			}
		}},
		{"garbage", LieGarbage, 0, func(t *testing.T, b []byte, _ net.Addr) {
			if len(b) >= 12 || b[0] != 0x12 || b[1] != 0x34 {
				t.Errorf("%x", b)
			}
		}},
		{"truncated", LieTruncated, 0, func(t *testing.T, b []byte, _ net.Addr) {
			if m := unpack(t, b); !m.Truncated || len(m.Answer) != 0 {
				t.Errorf("%v", m)
			}
		}},
		{"oversize", LieOversize, 512, func(t *testing.T, b []byte, _ net.Addr) {
			if m := unpack(t, b); len(b) <= 1232 || len(m.Answer) != 1+oversizeRecords || m.Truncated {
				t.Errorf("%d bytes, %d records", len(b), len(m.Answer))
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := s.Lies()
			s.SetLie(tc.lie)
			b, from := exchange(t, s, tc.edns)
			tc.check(t, b, from)
			if told := s.Lies() - before; told != 0 && tc.lie == Honest || told != 1 && tc.lie != Honest {
				t.Errorf("Lies moved by %d", told)
			}
		})
	}
	// Over TCP a truncated lie is no lie: the answer is whole.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := ServeTCP(l, zone)
	defer ts.Close()
	ts.SetLie(LieTruncated)
	q := new(dns.Msg)
	q.SetQuestion("www.example.com.", dns.TypeA)
	r, _, err := (&dns.Client{Net: "tcp", Timeout: 2 * time.Second}).Exchange(q, ts.Addr().String())
	if err != nil || r.Truncated || len(r.Answer) != 1 {
		t.Errorf("TCP with LieTruncated: %v %v", r, err)
	}
}

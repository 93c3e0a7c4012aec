// SPDX-License-Identifier: MIT

package cache_test

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/dnstun/dnstun/cache"
	"github.com/dnstun/dnstun/internal/pkttest"
	"github.com/dnstun/dnstun/packet"
	"github.com/miekg/dns"
)

// Answers are built with miekg/dns, an oracle independent of the code
// under test, and answers read back with it.

const sec = int64(time.Second)

func newCache(t testing.TB, o cache.Options) *cache.Cache {
	t.Helper()
	if o.MaxBytes == 0 {
		o.MaxBytes = 4 << 20
	}
	c, err := cache.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func rr(t testing.TB, s string) dns.RR {
	t.Helper()
	r, err := dns.NewRR(s)
	if err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return r
}

// reply is the upstream answer to a query for name and qtype with the
// records given (zone-file lines; a section is chosen by the prefix "ns:"
// or "ar:", the answer section otherwise).
func reply(t testing.TB, name string, qtype uint16, rcode int, records ...string) *dns.Msg {
	t.Helper()
	q := pkttest.Msg(0x4242, name, qtype)
	m := new(dns.Msg)
	m.SetRcode(q, rcode)
	m.RecursionAvailable = true
	m.Compress = true // as upstreams send them
	for _, s := range records {
		switch {
		case len(s) > 3 && s[:3] == "ns:":
			m.Ns = append(m.Ns, rr(t, s[3:]))
		case len(s) > 3 && s[:3] == "ar:":
			m.Extra = append(m.Extra, rr(t, s[3:]))
		default:
			m.Answer = append(m.Answer, rr(t, s))
		}
	}
	return m
}

func withEDNS(m *dns.Msg, size uint16, do bool) *dns.Msg {
	m.SetEdns0(size, do)
	return m
}

func pack(t testing.TB, m *dns.Msg) []byte {
	t.Helper()
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func store(t testing.TB, c *cache.Cache, m *dns.Msg, now int64) {
	t.Helper()
	if err := c.Store(pack(t, m), now); err != nil {
		t.Fatalf("Store %s: %v", m.Question[0].Name, err)
	}
}

// lookup asks c with the query m (packed into a buffer of room bytes) and
// returns the answer read back by miekg/dns, nil on no answer, and the raw
// bytes.
type looked struct {
	msg *dns.Msg
	raw []byte
	res cache.Result
}

func ask(t testing.TB, c *cache.Cache, m *dns.Msg, limit, room int, now int64, stale bool) looked {
	t.Helper()
	buf := make([]byte, room)
	n := copy(buf, pack(t, m))
	if n != len(pack(t, m)) {
		t.Fatalf("query of %d bytes does not fit %d", n, room)
	}
	var q packet.Question
	if r := packet.ReadQuestion(buf[:n], &q); r != packet.OK {
		t.Fatalf("ReadQuestion: %v", r)
	}
	if limit == 0 {
		limit = packet.ClientLimit(&q)
	}
	var res cache.Result
	if stale {
		n, res = c.LookupStale(buf, &q, limit, now)
	} else {
		n, res = c.Lookup(buf, &q, limit, now)
	}
	if n < 0 || n > len(buf) || n > limit {
		t.Fatalf("Lookup returned %d bytes, buffer %d, limit %d", n, len(buf), limit)
	}
	if (n > 0) != (res.Status == cache.Hit || res.Status == cache.Stale) {
		t.Fatalf("Lookup returned %d bytes with %+v", n, res)
	}
	l := looked{res: res}
	if n == 0 {
		return l
	}
	l.raw = buf[:n]
	l.msg = new(dns.Msg)
	if err := l.msg.Unpack(l.raw); err != nil {
		t.Fatalf("answer does not unpack: %v\n% x", err, l.raw)
	}
	return l
}

func lookup(t testing.TB, c *cache.Cache, m *dns.Msg, now int64) looked {
	t.Helper()
	return ask(t, c, m, 0, 4096, now, false)
}

// ttls returns the TTLs of every record but the OPT.
func ttls(m *dns.Msg) []uint32 {
	var out []uint32
	for _, sec := range [][]dns.RR{m.Answer, m.Ns, m.Extra} {
		for _, r := range sec {
			if r.Header().Rrtype != dns.TypeOPT {
				out = append(out, r.Header().Ttl)
			}
		}
	}
	return out
}

// aReply is a NOERROR answer for name with one A record, built by hand to
// keep the long runs fast: header, question, and the record owned by a
// pointer to the question (RFC 1035 §4.1.4).
func aReply(buf []byte, name string, ttl uint32) []byte {
	return manyA(buf, name, ttl, 1, 0)
}

// manyA is a NOERROR answer for name with k A records and, when txt > 0, a
// TXT record of about txt bytes in the additional section.
func manyA(buf []byte, name string, ttl uint32, k, txt int) []byte {
	b := append(buf[:0], 0, 0, 0x81, 0x80, 0, 1, 0, byte(k), 0, 0, 0, 0)
	if txt > 0 {
		b[11] = 1
	}
	start := 0
	for i := 0; i <= len(name); i++ {
		if i == len(name) || name[i] == '.' {
			b = append(b, byte(i-start))
			b = append(b, name[start:i]...)
			start = i + 1
		}
	}
	b = append(b, 0, 0, 1, 0, 1)
	for i := range k {
		b = append(b, 0xc0, 12, 0, 1, 0, 1)
		b = binary.BigEndian.AppendUint32(b, ttl)
		b = append(b, 0, 4, 192, 0, 2, byte(i))
	}
	if txt > 0 {
		rd := txt + (txt+254)/255
		b = append(b, 0xc0, 12, 0, 16, 0, 1)
		b = binary.BigEndian.AppendUint32(b, ttl)
		b = binary.BigEndian.AppendUint16(b, uint16(rd))
		for n := txt; n > 0; n -= 255 {
			l := min(n, 255)
			b = append(b, byte(l))
			for range l {
				b = append(b, 'x')
			}
		}
	}
	return b
}

// aQuery is the query aReply answers, with RD, in buf.
func aQuery(buf []byte, name string) []byte {
	b := aReply(buf, name, 0)
	b = b[:len(b)-16]
	b[2], b[3], b[7] = 0x01, 0x00, 0 // a query with RD; ANCOUNT 0
	return b
}

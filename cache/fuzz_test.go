// SPDX-License-Identifier: MIT

package cache_test

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/dnstun/dnstun/cache"
	"github.com/dnstun/dnstun/packet"
	"github.com/miekg/dns"
)

// seedAnswers are real-looking upstream answers: the fuzz target's seeds.
func seedAnswers(t testing.TB) [][]byte {
	const soa = "ns:example.com. 3600 IN SOA ns.example.com. admin.example.com. 1 7200 3600 1209600 300"
	msgs := []*dns.Msg{
		reply(t, "www.example.com", dns.TypeA, 0, "www.example.com. 300 IN A 192.0.2.1", "www.example.com. 300 IN A 192.0.2.2"),
		withEDNS(reply(t, "www.example.com", dns.TypeAAAA, 0, "www.example.com. 300 IN AAAA 2001:db8::1"), 1232, false),
		reply(t, "www.example.com", dns.TypeA, 0,
			"www.example.com. 300 IN CNAME web.example.com.", "web.example.com. 200 IN CNAME edge.example.net.",
			"edge.example.net. 20 IN A 192.0.2.10", "ns:example.net. 3600 IN NS ns1.example.net.", "ar:ns1.example.net. 3600 IN A 192.0.2.53"),
		reply(t, "nx.example.com", dns.TypeA, dns.RcodeNameError, soa),
		withEDNS(reply(t, "nx.example.com", dns.TypeA, dns.RcodeNameError, soa), 1232, true),
		reply(t, "www.example.com", dns.TypeMX, 0, "www.example.com. 300 IN CNAME example.com.", soa),
		reply(t, "example.com", dns.TypeMX, 0, "example.com. 300 IN MX 10 mail.example.com.", "ar:mail.example.com. 300 IN A 192.0.2.25"),
		withEDNS(reply(t, "example.com", dns.TypeA, 0, "example.com. 60 IN A 192.0.2.1",
			"example.com. 60 IN RRSIG A 13 2 60 20300101000000 20200101000000 12345 example.com. AAAA"), 1232, true),
		reply(t, "txt.example.com", dns.TypeTXT, 0, bigTXT("txt.example.com.", 1500)),
		reply(t, "servfail.example.com", dns.TypeA, dns.RcodeServerFailure),
	}
	var out [][]byte
	for _, m := range msgs {
		out = append(out, pack(t, m))
	}
	nc := reply(t, "raw.example.com", dns.TypeA, 0, "raw.example.com. 60 IN A 192.0.2.1")
	nc.Compress = false
	return append(out, pack(t, nc), []byte{}, []byte{0, 0, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1})
}

// FuzzStore stores arbitrary messages and asks for them back with queries
// of the same question (letter case flipped by mask) without and with
// EDNS, at once and after elapsed seconds, into a buffer of room bytes
// with the given limit. It
// checks that nothing panics, Store leaves its input alone, an accepted
// answer is found at once, the answer fits buffer and limit, has the
// query's ID and question, and reads back with miekg/dns, with the stored
// records (TTLs aside) when the input read back too.
func FuzzStore(f *testing.F) {
	for i, m := range seedAnswers(f) {
		f.Add(m, uint64(0x5555), uint8(i), uint16(1232), uint32(i*7), uint16(1232), uint16(1500))
		f.Add(m, uint64(0), uint8(1), uint16(512), uint32(4000), uint16(512), uint16(600))
	}
	f.Fuzz(func(t *testing.T, msg []byte, mask uint64, opts uint8, size uint16, elapsed uint32, limit, room uint16) {
		stale, ad := opts&1 != 0, opts&2 != 0
		c, err := cache.New(cache.Options{MaxBytes: 1 << 20, StaleFor: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		in := bytes.Clone(msg)
		err = c.Store(msg, 0)
		if !bytes.Equal(in, msg) {
			t.Fatal("Store changed its input")
		}
		if err != nil {
			if st := c.Stats(); st.Entries != 0 {
				t.Fatalf("%v, yet %d entries", err, st.Entries)
			}
			return
		}
		var rq packet.Question
		if packet.ReadReply(msg, &rq) != packet.OK {
			t.Fatal("stored an answer packet.ReadReply refuses")
		}
		// The query: the answer's question, case flipped by mask, RD, the
		// answer's CD, AD if asked, without EDNS, then with an OPT of
		// size without and with DO: the stored key matches one of them.
		found := false
		for _, v := range []struct{ edns, do bool }{{false, false}, {true, false}, {true, true}} {
			query := binary.BigEndian.AppendUint16(nil, 0xa5a5)
			flags := uint16(0x0100) | rq.Flags&0x0010
			if ad {
				flags |= 0x0020
			}
			query = binary.BigEndian.AppendUint16(query, flags)
			query = append(query, 0, 1, 0, 0, 0, 0, 0, 0)
			for i, b := range msg[12:rq.End] {
				if i < rq.End-12-4 && mask>>(i%64)&1 != 0 && ('a' <= b && b <= 'z' || 'A' <= b && b <= 'Z') {
					b ^= 0x20 // the name's letters only, not QTYPE or QCLASS
				}
				query = append(query, b)
			}
			if v.edns {
				query[11] = 1 // ARCOUNT
				fl := byte(0)
				if v.do {
					fl = 0x80
				}
				query = append(query, 0, 0, 41, byte(size>>8), byte(size), 0, 0, fl, 0, 0, 0)
			}
			var q packet.Question
			if r := packet.ReadQuestion(query, &q); r != packet.OK {
				t.Fatalf("query from the stored question: %v", r)
			}
			buf := make([]byte, max(int(room), len(query)))
			copy(buf, query)
			n, res := c.Lookup(buf, &q, packet.StreamLimit, 0)
			if res.Status == cache.Miss {
				continue // another key (the buffer holds the query, so header, question and OPT fit)
			}
			if res.Status != cache.Hit || n == 0 {
				t.Fatalf("just stored: %+v, %d bytes", res, n)
			}
			found = true
			checkAnswer(t, in, query, buf, n, res, len(buf))

			copy(buf, query)
			at := int64(elapsed) * int64(time.Second)
			if stale {
				n, res = c.LookupStale(buf, &q, int(limit), at)
			} else {
				n, res = c.Lookup(buf, &q, int(limit), at)
			}
			if (n > 0) != (res.Status == cache.Hit || res.Status == cache.Stale) {
				t.Fatalf("%d bytes with %+v", n, res)
			}
			if n > 0 {
				checkAnswer(t, in, query, buf, n, res, min(int(limit), len(buf)))
			}
		}
		if !found {
			t.Fatal("stored answer not found by its own question")
		}
	})
}

// checkAnswer checks the answer buf[:n] to query against the stored input.
func checkAnswer(t *testing.T, input, query, buf []byte, n int, res cache.Result, bound int) {
	t.Helper()
	if n > bound || n > len(buf) {
		t.Fatalf("answer of %d bytes, bound %d, buffer %d", n, bound, len(buf))
	}
	var q packet.Question
	packet.ReadQuestion(query, &q)
	out := buf[:n]
	if !bytes.Equal(out[:2], query[:2]) || !bytes.Equal(out[12:q.End], query[12:q.End]) {
		t.Fatalf("ID or question not the query's:\n% x\n% x", out[:q.End], query[:q.End])
	}
	tc := out[2]&0x02 != 0
	if tc != res.Truncated || out[2]&0x80 == 0 {
		t.Fatalf("flags %#x with %+v", out[2:4], res)
	}
	var got, want dns.Msg
	if err := want.Unpack(input); err != nil {
		// miekg/dns refuses the input (say, a record's RDATA it cannot
		// read): the cache passes such answers on as it got them, so
		// the answer need not read back either. Its header, question and
		// TTL layout are checked above and by Store.
		return
	}
	if err := got.Unpack(out); err != nil {
		t.Fatalf("answer does not unpack: %v\n% x", err, out)
	}
	if (got.IsEdns0() != nil) != q.EDNS {
		t.Fatalf("OPT %v for a query with EDNS %v", got.IsEdns0(), q.EDNS)
	}
	if tc {
		if len(got.Answer)+len(got.Ns) != 0 {
			t.Fatalf("truncated answer with records: %v", &got)
		}
		return
	}
	strip := func(m *dns.Msg, ours bool) []string {
		var s []string
		for _, sec := range [][]dns.RR{m.Answer, m.Ns, m.Extra} {
			for _, r := range sec {
				if r.Header().Rrtype == dns.TypeOPT {
					continue
				}
				r = dns.Copy(r)
				if ours && r.Header().Ttl > uint32(cache.DefaultMaxTTL/time.Second) {
					t.Fatalf("TTL %d above the cap", r.Header().Ttl)
				}
				r.Header().Ttl = 0
				s = append(s, strings.ToLower(r.String()))
			}
		}
		return s
	}
	if g, w := strip(&got, true), strip(&want, false); strings.Join(g, "\n") != strings.Join(w, "\n") || got.Rcode != want.Rcode {
		t.Fatalf("records:\n%s\nwant:\n%s", strings.Join(g, "\n"), strings.Join(w, "\n"))
	}
}

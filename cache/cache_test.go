// SPDX-License-Identifier: MIT

package cache_test

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dnstun/dnstun/cache"
	"github.com/dnstun/dnstun/internal/pkttest"
	"github.com/dnstun/dnstun/packet"
	"github.com/miekg/dns"
)

func TestNewOptions(t *testing.T) {
	for _, tc := range []struct {
		o    cache.Options
		want string // "" for accepted
	}{
		{cache.Options{MaxBytes: cache.MinBytes}, ""},
		{cache.Options{MaxBytes: 1 << 30, MinTTL: time.Hour, MaxTTL: 7 * 24 * time.Hour, StaleFor: 24 * time.Hour}, ""},
		{cache.Options{}, "MaxBytes 0 is below the minimum"},
		{cache.Options{MaxBytes: cache.MinBytes - 1}, "below the minimum"},
		{cache.Options{MaxBytes: 1 << 20, MinTTL: -time.Second}, "MinTTL -1s is not a non-negative number of whole seconds"},
		{cache.Options{MaxBytes: 1 << 20, MaxTTL: 1500 * time.Millisecond}, "MaxTTL 1.5s is not"},
		{cache.Options{MaxBytes: 1 << 20, MaxTTL: 8 * 24 * time.Hour}, "above 168h0m0s"},
		{cache.Options{MaxBytes: 1 << 20, MinTTL: 2 * time.Hour, MaxTTL: time.Hour}, "MinTTL 2h0m0s is above MaxTTL 1h0m0s"},
		{cache.Options{MaxBytes: 1 << 20, MinTTL: 25 * time.Hour}, "above MaxTTL 24h0m0s"},
		{cache.Options{MaxBytes: 1 << 20, StaleFor: 25 * time.Hour}, "StaleFor 25h0m0s is outside"},
		{cache.Options{MaxBytes: 1 << 20, StaleFor: -1}, "StaleFor -1ns is outside"},
	} {
		_, err := cache.New(tc.o)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("New(%+v) = %v, want %q", tc.o, err, tc.want)
		}
	}
}

func TestTTLDecreases(t *testing.T) {
	c := newCache(t, cache.Options{})
	store(t, c, reply(t, "www.example.com", dns.TypeA, dns.RcodeSuccess,
		"www.example.com. 300 IN A 192.0.2.1", "www.example.com. 600 IN A 192.0.2.2",
		"ns:example.com. 900 IN NS ns.example.com.", "ar:ns.example.com. 1200 IN A 192.0.2.53"), 5*sec)
	q := pkttest.Msg(7, "www.example.com", dns.TypeA)
	for _, tc := range []struct {
		at   int64
		want []uint32
	}{
		{5 * sec, []uint32{300, 600, 900, 1200}},
		{15*sec + sec/2, []uint32{290, 590, 890, 1190}}, // whole seconds spent
		{304 * sec, []uint32{1, 301, 601, 901}},
	} {
		l := lookup(t, c, q, tc.at)
		if l.res.Status != cache.Hit || !slices.Equal(ttls(l.msg), tc.want) {
			t.Errorf("at %v: %v TTLs %v, want hit %v", time.Duration(tc.at), l.res.Status, ttls(l.msg), tc.want)
		}
	}
	if l := lookup(t, c, q, 305*sec); l.res.Status != cache.Miss {
		t.Errorf("at expiry: %v, want miss", l.res.Status)
	}
	if st := c.Stats(); st.Hits != 3 || st.Misses != 1 || st.Entries != 1 {
		t.Errorf("stats %+v, want 3 hits, 1 miss, 1 entry", st)
	}
}

// A reader whose clock reads a little earlier than the receiver's that
// stored the answer gets the full TTLs, not wrapped ones.
func TestReaderClockBehindStore(t *testing.T) {
	c := newCache(t, cache.Options{})
	store(t, c, reply(t, "example.com", dns.TypeA, 0, "example.com. 300 IN A 192.0.2.1"), 10*sec)
	l := lookup(t, c, pkttest.Msg(1, "example.com", dns.TypeA), 10*sec-3*sec/2)
	if l.res.Status != cache.Hit || !slices.Equal(ttls(l.msg), []uint32{300}) {
		t.Errorf("%v, TTLs %v; want a hit with 300", l.res.Status, ttls(l.msg))
	}
}

func TestClientCaseAndIDEchoed(t *testing.T) {
	c := newCache(t, cache.Options{})
	store(t, c, reply(t, "www.example.com", dns.TypeA, dns.RcodeSuccess, "www.example.com. 60 IN A 192.0.2.1"), 0)
	q := pkttest.Msg(0xbeef, "wWw.ExAmPlE.CoM", dns.TypeA)
	l := lookup(t, c, q, sec)
	if l.res.Status != cache.Hit {
		t.Fatalf("%v, want hit", l.res.Status)
	}
	qw := pack(t, q)
	if l.msg.Id != 0xbeef || !bytes.Equal(l.raw[12:len(qw)], qw[12:]) {
		t.Errorf("id %#x, question % x; want 0xbeef and the query's % x", l.msg.Id, l.raw[12:len(qw)], qw[12:])
	}
	// The record's owner is a pointer to the question: it reads in the
	// client's case too, as upstreams answer.
	if got := l.msg.Answer[0].Header().Name; got != "wWw.ExAmPlE.CoM." {
		t.Errorf("owner %q", got)
	}
	if !l.msg.Response || l.msg.Authoritative || !l.msg.RecursionDesired || !l.msg.RecursionAvailable {
		t.Errorf("flags: %v", l.msg.MsgHdr)
	}
}

func TestDOAndCDKeptApart(t *testing.T) {
	c := newCache(t, cache.Options{})
	signed := withEDNS(reply(t, "example.com", dns.TypeA, dns.RcodeSuccess,
		"example.com. 60 IN A 192.0.2.1",
		"example.com. 60 IN RRSIG A 13 2 60 20300101000000 20200101000000 12345 example.com. AAAA"), 1232, true)
	store(t, c, signed, 0)

	plain := pkttest.MsgEDNS(1, "example.com", dns.TypeA, 1232, false)
	if l := lookup(t, c, plain, sec); l.res.Status != cache.Miss {
		t.Fatalf("DO answer given to a non-DO query: %v", l.msg)
	}
	if l := lookup(t, c, pkttest.Msg(1, "example.com", dns.TypeA), sec); l.res.Status != cache.Miss {
		t.Fatalf("DO answer given to a non-EDNS query: %v", l.msg)
	}
	l := lookup(t, c, pkttest.MsgEDNS(1, "example.com", dns.TypeA, 1232, true), sec)
	if l.res.Status != cache.Hit || len(l.msg.Answer) != 2 || !l.msg.IsEdns0().Do() {
		t.Fatalf("DO query: %v %v", l.res.Status, l.msg)
	}

	store(t, c, reply(t, "example.com", dns.TypeA, dns.RcodeSuccess, "example.com. 60 IN A 192.0.2.9"), 0)
	if l := lookup(t, c, plain, sec); l.res.Status != cache.Hit || len(l.msg.Answer) != 1 {
		t.Fatalf("non-DO query after a non-DO answer: %v %v", l.res.Status, l.msg)
	}
	if l := lookup(t, c, pkttest.MsgEDNS(1, "example.com", dns.TypeA, 1232, true), sec); len(l.msg.Answer) != 2 {
		t.Fatalf("the non-DO answer replaced the DO one: %v", l.msg)
	}

	cd := reply(t, "example.com", dns.TypeA, dns.RcodeSuccess, "example.com. 60 IN A 192.0.2.66")
	cd.CheckingDisabled = true
	store(t, c, cd, 0)
	qcd := pkttest.Msg(1, "example.com", dns.TypeA)
	qcd.CheckingDisabled = true
	if l := lookup(t, c, qcd, sec); l.res.Status != cache.Hit || l.msg.Answer[0].(*dns.A).A.String() != "192.0.2.66" || !l.msg.CheckingDisabled {
		t.Fatalf("CD query: %v %v", l.res.Status, l.msg)
	}
	if l := lookup(t, c, plain, sec); l.msg.Answer[0].(*dns.A).A.String() != "192.0.2.9" {
		t.Fatalf("the CD answer reached a query without CD: %v", l.msg)
	}
}

func TestADOnlyWhenAsked(t *testing.T) {
	c := newCache(t, cache.Options{})
	m := reply(t, "example.com", dns.TypeA, dns.RcodeSuccess, "example.com. 60 IN A 192.0.2.1")
	m.AuthenticatedData = true
	store(t, c, m, 0)
	q := pkttest.Msg(1, "example.com", dns.TypeA)
	if l := lookup(t, c, q, 0); l.msg.AuthenticatedData {
		t.Error("AD to a query with neither AD nor DO (RFC 6840 §5.8)")
	}
	q.AuthenticatedData = true
	if l := lookup(t, c, q, 0); !l.msg.AuthenticatedData {
		t.Error("no AD to a query with AD")
	}
}

func TestEDNSMatchesQuery(t *testing.T) {
	c := newCache(t, cache.Options{})
	// The upstream's OPT (size 4096, a padding option) is not replayed.
	up := withEDNS(reply(t, "example.com", dns.TypeAAAA, dns.RcodeSuccess, "example.com. 60 IN AAAA 2001:db8::1"), 4096, false)
	up.IsEdns0().Option = append(up.IsEdns0().Option, &dns.EDNS0_PADDING{Padding: make([]byte, 20)})
	store(t, c, up, 0)

	l := lookup(t, c, pkttest.Msg(1, "example.com", dns.TypeAAAA), 0)
	if l.res.Status != cache.Hit || l.msg.IsEdns0() != nil || len(l.msg.Extra) != 0 {
		t.Fatalf("non-EDNS query got %v", l.msg)
	}
	l = lookup(t, c, pkttest.MsgEDNS(1, "example.com", dns.TypeAAAA, 4000, false), 0)
	o := l.msg.IsEdns0()
	if l.res.Status != cache.Hit || o == nil || o.UDPSize() != 1232 || o.Do() || len(o.Option) != 0 || len(l.msg.Answer) != 1 {
		t.Fatalf("EDNS query got %v", l.msg)
	}
	// A newer EDNS version is the upstream's to answer (BADVERS).
	q := pkttest.MsgEDNS(1, "example.com", dns.TypeAAAA, 4000, false)
	q.IsEdns0().SetVersion(1)
	if l := lookup(t, c, q, 0); l.res.Status != cache.Miss {
		t.Errorf("EDNS version 1: %v", l.res.Status)
	}
	q = pkttest.Msg(1, "example.com", dns.TypeAAAA)
	q.RecursionDesired = false
	if l := lookup(t, c, q, 0); l.res.Status != cache.Miss {
		t.Errorf("RD=0: %v", l.res.Status)
	}
}

func TestTruncatedToClientSize(t *testing.T) {
	c := newCache(t, cache.Options{})
	var recs []string
	for i := range 60 {
		recs = append(recs, "big.example.com. 60 IN A 192.0.2."+string(rune('0'+i%10)))
	}
	for i := range recs {
		recs[i] = strings.Replace(recs[i], "192.0.2.", "192.0."+string(rune('0'+i/10))+".", 1)
	}
	up := withEDNS(reply(t, "big.example.com", dns.TypeA, dns.RcodeSuccess, recs...), 1232, false)
	full := len(pack(t, up)) // 60*16 + header, question and OPT: between 512 and 1232
	if full <= 512 || full > 1232 {
		t.Fatalf("test answer of %d bytes", full)
	}
	store(t, c, up, 0)

	q := pkttest.Msg(9, "BIG.example.com", dns.TypeA)
	l := lookup(t, c, q, 0)
	if l.res.Status != cache.Hit || !l.res.Truncated || !l.msg.Truncated || len(l.msg.Answer)+len(l.msg.Ns)+len(l.msg.Extra) != 0 ||
		len(l.raw) != len(pack(t, q)) || l.msg.Question[0].Name != "BIG.example.com." {
		t.Fatalf("512-byte client: %+v %v", l.res, l.msg)
	}
	// An EDNS client too small for it gets TC and still an OPT (RFC 6891
	// §6.1.1).
	l = lookup(t, c, pkttest.MsgEDNS(9, "big.example.com", dns.TypeA, 600, false), 0)
	if !l.res.Truncated || !l.msg.Truncated || len(l.msg.Answer) != 0 || l.msg.IsEdns0() == nil {
		t.Fatalf("600-byte EDNS client: %+v %v", l.res, l.msg)
	}
	l = lookup(t, c, pkttest.MsgEDNS(9, "big.example.com", dns.TypeA, 1232, false), 0)
	if l.res.Truncated || l.msg.Truncated || len(l.msg.Answer) != 60 {
		t.Fatalf("1232-byte client: %+v, %d records", l.res, len(l.msg.Answer))
	}
	// TCP: the stream limit, whatever the query's EDNS says.
	l = ask(t, c, q, packet.StreamLimit, 4096, 0, false)
	if l.res.Truncated || len(l.msg.Answer) != 60 {
		t.Fatalf("TCP: %+v, %d records", l.res, len(l.msg.Answer))
	}
	// A buffer smaller than the limit bounds the answer too.
	l = ask(t, c, q, packet.StreamLimit, 700, 0, false)
	if !l.res.Truncated || len(l.raw) > 700 {
		t.Fatalf("700-byte buffer: %+v, %d bytes", l.res, len(l.raw))
	}
}

func TestNegativeCaching(t *testing.T) {
	const soa = "ns:example.com. %d IN SOA ns.example.com. admin.example.com. 1 7200 3600 1209600 %d"
	for _, tc := range []struct {
		name   string
		rcode  int
		qtype  uint16
		soaTTL int
		min    int
		extra  []string
		want   int64 // seconds the answer is cached
	}{
		{"nxdomain, MINIMUM lower", dns.RcodeNameError, dns.TypeA, 3600, 60, nil, 60},
		{"nxdomain, SOA TTL lower", dns.RcodeNameError, dns.TypeA, 30, 600, nil, 30},
		{"nodata", dns.RcodeSuccess, dns.TypeAAAA, 900, 300, nil, 300},
		{"nodata after a CNAME", dns.RcodeSuccess, dns.TypeAAAA, 900, 300, []string{"x.example.com. 100 IN CNAME y.example.com."}, 100},
		{"capped at 3 hours", dns.RcodeNameError, dns.TypeA, 86400, 86400, nil, 3 * 3600},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCache(t, cache.Options{MinTTL: time.Hour}) // MinTTL raises positive answers only
			recs := append(tc.extra, strings.Replace(strings.Replace(soa, "%d", strconv.Itoa(tc.soaTTL), 1), "%d", strconv.Itoa(tc.min), 1))
			store(t, c, reply(t, "x.example.com", tc.qtype, tc.rcode, recs...), 0)
			q := pkttest.Msg(3, "x.example.com", tc.qtype)
			l := lookup(t, c, q, (tc.want-1)*sec)
			if l.res.Status != cache.Hit || l.msg.Rcode != tc.rcode {
				t.Fatalf("before expiry: %v %v", l.res.Status, l.msg)
			}
			for _, ttl := range ttls(l.msg) {
				if ttl != 1 {
					t.Errorf("TTLs %v a second before expiry, want all 1", ttls(l.msg))
					break
				}
			}
			if l := lookup(t, c, q, tc.want*sec); l.res.Status != cache.Miss {
				t.Fatalf("at expiry: %v", l.res.Status)
			}
		})
	}
}

func TestTTLClamps(t *testing.T) {
	c := newCache(t, cache.Options{MinTTL: 30 * time.Second, MaxTTL: time.Minute})
	store(t, c, reply(t, "short.example.com", dns.TypeA, dns.RcodeSuccess, "short.example.com. 5 IN A 192.0.2.1"), 0)
	store(t, c, reply(t, "long.example.com", dns.TypeA, dns.RcodeSuccess,
		"long.example.com. 3600 IN A 192.0.2.1", "ar:x.example.com. 10 IN A 192.0.2.7"), 0)
	l := lookup(t, c, pkttest.Msg(1, "short.example.com", dns.TypeA), 20*sec)
	if l.res.Status != cache.Hit || !slices.Equal(ttls(l.msg), []uint32{10}) {
		t.Errorf("MinTTL: %v %v, want hit with TTL 10", l.res.Status, ttls(l.msg))
	}
	if l := lookup(t, c, pkttest.Msg(1, "short.example.com", dns.TypeA), 30*sec); l.res.Status != cache.Miss {
		t.Errorf("MinTTL: %v at 30 s", l.res.Status)
	}
	// Every TTL lies within [entry TTL, MaxTTL], additional records too.
	l = lookup(t, c, pkttest.Msg(1, "long.example.com", dns.TypeA), 50*sec)
	if l.res.Status != cache.Hit || !slices.Equal(ttls(l.msg), []uint32{10, 10}) {
		t.Errorf("MaxTTL: %v %v, want hit with TTLs 10 10", l.res.Status, ttls(l.msg))
	}
	if l := lookup(t, c, pkttest.Msg(1, "long.example.com", dns.TypeA), 60*sec); l.res.Status != cache.Miss {
		t.Errorf("MaxTTL: %v at 60 s", l.res.Status)
	}
}

func TestStoreRefuses(t *testing.T) {
	const soa = "ns:example.com. 60 IN SOA ns.example.com. admin.example.com. 1 7200 3600 1209600 60"
	a := "x.example.com. 60 IN A 192.0.2.1"
	edit := func(m *dns.Msg, f func(*dns.Msg)) *dns.Msg { f(m); return m }
	raw := func(m *dns.Msg, f func([]byte) []byte) []byte { return f(pack(t, m)) }
	for _, tc := range []struct {
		name string
		msg  []byte
		want error
	}{
		{"truncated", pack(t, edit(reply(t, "x.example.com", dns.TypeA, 0, a), func(m *dns.Msg) { m.Truncated = true })), cache.ErrTruncated},
		{"servfail", pack(t, reply(t, "x.example.com", dns.TypeA, dns.RcodeServerFailure)), cache.ErrRcode},
		{"refused", pack(t, reply(t, "x.example.com", dns.TypeA, dns.RcodeRefused)), cache.ErrRcode},
		{"badvers", pack(t, edit(withEDNS(reply(t, "x.example.com", dns.TypeA, 0, a), 1232, false), func(m *dns.Msg) { m.Rcode = dns.RcodeBadVers })), cache.ErrRcode},
		{"nxdomain without SOA", pack(t, reply(t, "x.example.com", dns.TypeA, dns.RcodeNameError)), cache.ErrNoSOA},
		{"nodata without SOA", pack(t, reply(t, "x.example.com", dns.TypeAAAA, 0, a)), cache.ErrNoSOA},
		{"referral", pack(t, reply(t, "x.example.com", dns.TypeA, 0, "ns:example.com. 60 IN NS ns.example.com.")), cache.ErrNoSOA},
		{"TTL 0", pack(t, reply(t, "x.example.com", dns.TypeA, 0, "x.example.com. 0 IN A 192.0.2.1")), cache.ErrZeroTTL},
		{"negative TTL 0", pack(t, reply(t, "x.example.com", dns.TypeA, 3, strings.Replace(soa, "1209600 60", "1209600 0", 1))), cache.ErrZeroTTL},
		{"RD=0", pack(t, edit(reply(t, "x.example.com", dns.TypeA, 0, a), func(m *dns.Msg) { m.RecursionDesired = false })), cache.ErrUncacheable},
		{"ANY", pack(t, reply(t, "x.example.com", dns.TypeANY, 0, a)), cache.ErrUncacheable},
		{"AXFR", pack(t, reply(t, "x.example.com", dns.TypeAXFR, 0, a)), cache.ErrUncacheable},
		{"class ANY", pack(t, edit(reply(t, "x.example.com", dns.TypeA, 0, a), func(m *dns.Msg) { m.Question[0].Qclass = dns.ClassANY })), cache.ErrUncacheable},
		{"opcode NOTIFY", pack(t, edit(reply(t, "x.example.com", dns.TypeA, 0, a), func(m *dns.Msg) { m.Opcode = dns.OpcodeNotify })), cache.ErrUncacheable},
		{"TSIG", pack(t, edit(reply(t, "x.example.com", dns.TypeA, 0, a), func(m *dns.Msg) {
			m.Extra = append(m.Extra, &dns.TSIG{Hdr: dns.RR_Header{Name: "key.", Rrtype: dns.TypeTSIG, Class: dns.ClassANY},
				Algorithm: dns.HmacSHA256, TimeSigned: 1700000000, Fudge: 300, OrigId: 0x4242})
		})), cache.ErrSigned},
		{"OPT not last", raw(reply(t, "x.example.com", dns.TypeA, 0, a), func(b []byte) []byte {
			b[11] = 2 // ARCOUNT: an OPT, then an A record owned by the question's name
			b = append(b, 0, 0, 41, 4, 0xd0, 0, 0, 0, 0, 0, 0)
			return append(b, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 2)
		}), cache.ErrOPTNotLast},
		{"a query", pkttest.Pack(pkttest.Msg(1, "x.example.com", dns.TypeA)), cache.ErrMalformed},
		{"short", []byte{0, 1, 0x81}, cache.ErrMalformed},
		{"record cut", raw(reply(t, "x.example.com", dns.TypeA, 0, a), func(b []byte) []byte { return b[:len(b)-1] }), cache.ErrMalformed},
		{"count too high", raw(reply(t, "x.example.com", dns.TypeA, 0, a), func(b []byte) []byte { b[7] = 2; return b }), cache.ErrMalformed},
		{"forward pointer", raw(reply(t, "x.example.com", dns.TypeA, 0, a), func(b []byte) []byte { b[len(b)-16] = 0xc0; b[len(b)-15] = 0xff; return b }), cache.ErrMalformed},
		{"pointer to itself", raw(reply(t, "x.example.com", dns.TypeA, 0, a), func(b []byte) []byte { b[len(b)-15] = byte(len(b) - 16); return b }), cache.ErrMalformed},
		{"short SOA", raw(reply(t, "x.example.com", dns.TypeA, 3), func(b []byte) []byte {
			b[9] = 1 // NSCOUNT: an SOA whose RDATA cannot hold MINIMUM
			return append(b, 0xc0, 12, 0, 6, 0, 1, 0, 0, 0, 60, 0, 4, 1, 2, 3, 4)
		}), cache.ErrMalformed},
		{"too large", pack(t, reply(t, "x.example.com", dns.TypeTXT, 0, bigTXT("x.example.com.", 60000))), cache.ErrTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCache(t, cache.Options{MaxBytes: cache.MinBytes, MinTTL: 0})
			if err := c.Store(tc.msg, 0); !errors.Is(err, tc.want) {
				t.Fatalf("Store = %v, want %v", err, tc.want)
			}
			if st := c.Stats(); st.Entries != 0 {
				t.Fatalf("%d entries after a refused Store", st.Entries)
			}
		})
	}
}

// bigTXT is a TXT record of about n bytes of strings.
func bigTXT(owner string, n int) string {
	var b strings.Builder
	b.WriteString(owner + " 60 IN TXT")
	for ; n > 0; n -= 255 {
		b.WriteString(` "` + strings.Repeat("x", min(n, 254)) + `"`)
	}
	return b.String()
}

func TestServeStale(t *testing.T) {
	up := withEDNS(reply(t, "example.com", dns.TypeA, dns.RcodeSuccess, "example.com. 60 IN A 192.0.2.1", "ns:example.com. 3600 IN NS ns.example.com."), 1232, false)
	q := pkttest.MsgEDNS(1, "example.com", dns.TypeA, 1232, false)

	c := newCache(t, cache.Options{StaleFor: time.Hour})
	store(t, c, up, 0)
	if l := ask(t, c, q, 0, 4096, 59*sec, true); l.res.Status != cache.Hit || !slices.Equal(ttls(l.msg), []uint32{1, 3541}) {
		t.Fatalf("fresh via LookupStale: %v %v", l.res.Status, ttls(l.msg))
	}
	if l := lookup(t, c, q, 60*sec); l.res.Status != cache.Expired {
		t.Fatalf("Lookup after expiry: %v, want expired", l.res.Status)
	}
	l := ask(t, c, q, 0, 4096, 60*sec+59*time.Minute.Nanoseconds(), true)
	if l.res.Status != cache.Stale || !slices.Equal(ttls(l.msg), []uint32{30, 30}) {
		t.Fatalf("LookupStale after expiry: %v %v, want stale with TTL 30", l.res.Status, ttls(l.msg))
	}
	var ede *dns.EDNS0_EDE
	for _, o := range l.msg.IsEdns0().Option {
		if e, ok := o.(*dns.EDNS0_EDE); ok {
			ede = e
		}
	}
	if ede == nil || ede.InfoCode != dns.ExtendedErrorCodeStaleAnswer {
		t.Errorf("stale answer without EDE Stale Answer: %v", l.msg.IsEdns0())
	}
	if l := ask(t, c, pkttest.Msg(1, "example.com", dns.TypeA), 0, 4096, 61*sec, true); l.res.Status != cache.Stale || l.msg.IsEdns0() != nil {
		t.Errorf("stale to a non-EDNS client: %v %v", l.res.Status, l.msg)
	}
	if l := ask(t, c, q, 0, 4096, 60*sec+time.Hour.Nanoseconds(), true); l.res.Status != cache.Miss {
		t.Fatalf("LookupStale past StaleFor: %v", l.res.Status)
	}
	if st := c.Stats(); st.Stale != 2 || st.Hits != 1 || st.Prefetch != 0 {
		t.Errorf("stats %+v", st)
	}

	off := newCache(t, cache.Options{})
	store(t, off, up, 0)
	if l := lookup(t, off, q, 60*sec); l.res.Status != cache.Miss {
		t.Errorf("StaleFor 0: Lookup %v, want miss", l.res.Status)
	}
	if l := ask(t, off, q, 0, 4096, 60*sec, true); l.res.Status != cache.Miss {
		t.Errorf("StaleFor 0: LookupStale %v, want miss", l.res.Status)
	}
}

func TestPrefetchOnce(t *testing.T) {
	c := newCache(t, cache.Options{})
	up := reply(t, "example.com", dns.TypeA, dns.RcodeSuccess, "example.com. 100 IN A 192.0.2.1")
	store(t, c, up, 0)
	q := pkttest.Msg(1, "example.com", dns.TypeA)
	var got []bool
	for _, at := range []int64{1, 89, 91, 92, 95} { // window: the last 10 s
		got = append(got, lookup(t, c, q, at*sec).res.Prefetch)
	}
	if !slices.Equal(got, []bool{false, false, true, false, false}) {
		t.Errorf("prefetch signals %v, want only at 91 s", got)
	}
	// A cold entry (one hit) is not worth a refresh; the refreshed one
	// signals again in its own last tenth.
	store(t, c, up, 100*sec)
	if lookup(t, c, q, 195*sec).res.Prefetch {
		t.Error("prefetch on the first hit")
	}
	if !lookup(t, c, q, 196*sec).res.Prefetch {
		t.Error("no prefetch on the second hit of the new entry")
	}
	if st := c.Stats(); st.Prefetch != 2 {
		t.Errorf("%d prefetch signals counted, want 2", st.Prefetch)
	}
	// The window is at least the last second.
	store(t, c, reply(t, "short.example.com", dns.TypeA, dns.RcodeSuccess, "short.example.com. 5 IN A 192.0.2.1"), 0)
	qs := pkttest.Msg(1, "short.example.com", dns.TypeA)
	if lookup(t, c, qs, 3*sec).res.Prefetch || !lookup(t, c, qs, 4*sec).res.Prefetch {
		t.Error("5-second entry: want a prefetch in its last second only")
	}
}

func TestFlush(t *testing.T) {
	c := newCache(t, cache.Options{})
	all := []string{"example.com", "a.example.com", "b.a.example.com", "xa.example.com", "a.example.org", "notexample.com"}
	for _, n := range all {
		store(t, c, reply(t, n, dns.TypeA, 0, n+". 60 IN A 192.0.2.1"), 0)
		store(t, c, reply(t, n, dns.TypeTXT, 0, n+`. 60 IN TXT "x"`), 0)
	}
	if got := c.FlushName("A.Example.COM."); got != 4 {
		t.Errorf("FlushName removed %d entries, want 4 (two names, two types)", got)
	}
	for _, n := range all {
		gone := n == "a.example.com" || n == "b.a.example.com"
		for _, qt := range []uint16{dns.TypeA, dns.TypeTXT} {
			if l := lookup(t, c, pkttest.Msg(1, n, qt), 0); (l.res.Status == cache.Miss) != gone {
				t.Errorf("%s %s after FlushName(a.example.com): %v", n, dns.TypeToString[qt], l.res.Status)
			}
		}
	}
	if got := c.FlushName("example.com"); got != 4 {
		t.Errorf("FlushName(example.com) removed %d, want 4", got)
	}
	c.Flush()
	if st := c.Stats(); st.Entries != 0 || st.Bytes > 1024*int64(64) {
		t.Errorf("after Flush: %+v", st)
	}
	for _, n := range all {
		if l := lookup(t, c, pkttest.Msg(1, n, dns.TypeA), 0); l.res.Status != cache.Miss {
			t.Errorf("%s after Flush: %v", n, l.res.Status)
		}
	}
	store(t, c, reply(t, "example.com", dns.TypeA, 0, "example.com. 60 IN A 192.0.2.1"), 0)
	if got := c.FlushName("."); got != 1 {
		t.Errorf("FlushName(.) removed %d, want everything (1)", got)
	}
}

func TestCompressedChains(t *testing.T) {
	c := newCache(t, cache.Options{})
	up := withEDNS(reply(t, "www.example.com", dns.TypeA, dns.RcodeSuccess,
		"www.example.com. 300 IN CNAME web.example.com.",
		"web.example.com. 200 IN CNAME edge.cdn.example.net.",
		"edge.cdn.example.net. 20 IN A 192.0.2.10",
		"edge.cdn.example.net. 20 IN A 192.0.2.11",
		"ns:cdn.example.net. 3600 IN NS ns1.cdn.example.net.",
		"ar:ns1.cdn.example.net. 3600 IN A 192.0.2.53"), 1232, false)
	up.Compress = true
	store(t, c, up, 0)
	l := lookup(t, c, pkttest.MsgEDNS(5, "WWW.example.com", dns.TypeA, 1232, false), 19*sec)
	if l.res.Status != cache.Hit {
		t.Fatalf("%v", l.res.Status)
	}
	if !slices.Equal(ttls(l.msg), []uint32{281, 181, 1, 1, 3581, 3581}) {
		t.Errorf("TTLs %v", ttls(l.msg))
	}
	// The records are the upstream's, TTLs aside.
	for i, r := range l.msg.Answer {
		want := dns.Copy(up.Answer[i])
		want.Header().Ttl = r.Header().Ttl
		if !strings.EqualFold(r.String(), want.String()) {
			t.Errorf("record %d: %v, want %v", i, r, want)
		}
	}
	if l := lookup(t, c, pkttest.Msg(5, "www.example.com", dns.TypeA), 20*sec); l.res.Status != cache.Miss {
		t.Errorf("after the shortest TTL: %v", l.res.Status)
	}
}

func TestZeroAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("AllocsPerRun is slow-ish")
	}
	c := newCache(t, cache.Options{StaleFor: time.Hour})
	store(t, c, withEDNS(reply(t, "www.example.com", dns.TypeA, 0, "www.example.com. 300 IN A 192.0.2.1", "www.example.com. 300 IN A 192.0.2.2"), 1232, false), 0)
	query := pack(t, pkttest.MsgEDNS(1, "www.Example.com", dns.TypeA, 1232, false))
	miss := pack(t, pkttest.MsgEDNS(1, "nothere.example.com", dns.TypeA, 1232, false))
	buf := make([]byte, 1500)
	var q packet.Question
	for _, tc := range []struct {
		name  string
		query []byte
		at    int64
		stale bool
		want  cache.Status
	}{
		{"hit", query, sec, false, cache.Hit},
		{"miss", miss, sec, false, cache.Miss},
		{"expired", query, 400 * sec, false, cache.Expired},
		{"stale", query, 400 * sec, true, cache.Stale},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if n := testing.AllocsPerRun(500, func() {
				copy(buf, tc.query)
				if packet.ReadQuestion(buf[:len(tc.query)], &q) != packet.OK {
					t.Fatal("read")
				}
				lookup := c.Lookup
				if tc.stale {
					lookup = c.LookupStale
				}
				if _, res := lookup(buf, &q, packet.ClientLimit(&q), tc.at); res.Status != tc.want {
					t.Fatalf("%v", res.Status)
				}
			}); n != 0 {
				t.Fatalf("%v allocs", n)
			}
		})
	}
}

// TestByteBound stores 100,000 distinct names of varied sizes (1 to 20
// records, some with 3 to 8 KB of TXT) into a 1 MiB cache and checks the
// bound after every Store.
func TestByteBound(t *testing.T) {
	const maxBytes = 1 << 20
	c := newCache(t, cache.Options{MaxBytes: maxBytes})
	n := 100_000
	if testing.Short() {
		n = 20_000
	}
	buf := make([]byte, 10_000)
	var stored int
	for i := range n {
		txt := 0
		if i%97 == 0 {
			txt = 3000 + i%5000
		}
		msg := manyA(buf, fmt.Sprintf("host%d.example.com", i), 60, 1+i%20, txt)
		if err := c.Store(msg, int64(i)); err == nil {
			stored++
		}
		if st := c.Stats(); st.Bytes > maxBytes || st.Bytes < 0 || st.Entries < 0 {
			t.Fatalf("after %d stores: %+v, bound %d", i+1, st, maxBytes)
		}
	}
	st := c.Stats()
	if stored != n || st.Evictions == 0 || int(st.Entries)+int(st.Evictions) != n || st.Bytes < maxBytes*3/4 {
		t.Errorf("stored %d of %d; %+v: want every answer stored, evictions, and the cache mostly full", stored, n, st)
	}
	// Removing entries one by one shrinks the tables too.
	if got := c.FlushName("example.com"); int64(got) != st.Entries {
		t.Errorf("FlushName removed %d of %d", got, st.Entries)
	}
	if st := c.Stats(); st.Entries != 0 || st.Bytes > 64*16*8 {
		t.Errorf("emptied by FlushName: %+v, want at most 16 slots a shard", st)
	}
}

// A miss, an expired entry and a buffer too small for even the header,
// question and OPT leave the query's buffer as it was: the caller
// forwards the query from it.
func TestMissLeavesBuffer(t *testing.T) {
	c := newCache(t, cache.Options{StaleFor: time.Hour})
	store(t, c, reply(t, "example.com", dns.TypeA, 0, "example.com. 60 IN A 192.0.2.1"), 0)
	for _, tc := range []struct {
		name  string
		qname string
		at    int64
		room  int
		want  cache.Status
	}{
		{"miss", "other.example.com", 0, 512, cache.Miss},
		{"expired", "example.com", 61 * sec, 512, cache.Expired},
		{"no room for the OPT", "example.com", 0, 0, cache.Miss},
	} {
		query := pack(t, pkttest.MsgEDNS(1, tc.qname, dns.TypeA, 1232, false))
		buf := make([]byte, max(tc.room, len(query)))
		for i := range buf {
			buf[i] = 0xee
		}
		copy(buf, query)
		before := bytes.Clone(buf)
		var q packet.Question
		if packet.ReadQuestion(buf[:len(query)], &q) != packet.OK {
			t.Fatal("query")
		}
		limit := 1232
		if tc.room == 0 {
			limit = q.End + 5 // less than an OPT
		}
		if n, res := c.Lookup(buf, &q, limit, tc.at); n != 0 || res.Status != tc.want || !bytes.Equal(buf, before) {
			t.Errorf("%s: %d bytes, %v; buffer changed: %v", tc.name, n, res.Status, !bytes.Equal(buf, before))
		}
	}
}

// SPDX-License-Identifier: MIT

package engine

import (
	"testing"

	"github.com/dnstun/dnstun/internal/pkttest"
	"github.com/dnstun/dnstun/packet"
	"github.com/miekg/dns"
)

type parsedQuery struct {
	p packet.Parsed
	q packet.Question
}

func pkttestParsed(tb testing.TB) *parsedQuery {
	tb.Helper()
	var pq parsedQuery
	pkt := pkttest.Query(client4, resolver4, pkttest.Msg(0xabcd, "WWW.example.com", dns.TypeA))
	if r := packet.NewParser().Decode(pkt, &pq.p); r != packet.OK {
		tb.Fatal(r)
	}
	if r := packet.ReadQuestion(pkt[pq.p.PayloadOff:], &pq.q); r != packet.OK {
		tb.Fatal(r)
	}
	return &pq
}

// req describes a query from pq sent to upstream up at now, with the
// per-try and total timeouts.
func req(pq *parsedQuery, up int, now, perTry, total int64) *request {
	r := &request{client: pq.p.Src, resolver: pq.p.Dst, from: viaTUN, now: now, perTry: perTry, total: total}
	r.att[0], r.nAtt = attempt{up: uint8(up), at: now}, 1
	return r
}

func TestPendingMatch(t *testing.T) {
	pq := pkttestParsed(t)
	p := newPending(8)
	msg := pkttest.Pack(pkttest.Msg(0xabcd, "WWW.example.com", dns.TypeA))
	id, ok := p.insert(&pq.q, msg, req(pq, 1, 0, 100, 500))
	if !ok {
		t.Fatal("insert failed")
	}
	if got := uint16(msg[0])<<8 | uint16(msg[1]); got != id {
		t.Errorf("msg carries id %#x, table %#x", got, id)
	}
	reply := pq.q
	reply.ID = id
	var m match
	// Wrong upstream, wrong ID, wrong type, wrong name: no match.
	if p.take(&reply, nil, 0, 0, 0, &m) == takeOK {
		t.Error("matched a reply from an upstream the query was not sent to")
	}
	bad := reply
	bad.ID = id + 1
	if p.take(&bad, nil, 1, 0, 0, &m) == takeOK {
		t.Error("matched a wrong ID")
	}
	bad = reply
	bad.QType = dns.TypeAAAA
	if p.take(&bad, nil, 1, 0, 0, &m) == takeOK {
		t.Error("matched a wrong qtype")
	}
	other := pkttestParsedName(t, "www.example.org")
	other.ID = id
	if p.take(other, nil, 1, 0, 0, &m) == takeOK {
		t.Error("matched a wrong name")
	}
	// The right reply, whatever the case of its name (the reader lowers it).
	if p.take(&reply, nil, 1, 0, 0, &m) != takeOK {
		t.Fatal("the matching reply was not taken")
	}
	if m.client != client4 || m.resolver != resolver4 || m.origID != 0xabcd {
		t.Errorf("match %+v", m)
	}
	if p.take(&reply, nil, 1, 0, 0, &m) == takeOK || p.len() != 0 {
		t.Error("a reply was taken twice")
	}
}

func pkttestParsedName(t *testing.T, name string) *packet.Question {
	var q packet.Question
	if r := packet.ReadQuestion(pkttest.Pack(pkttest.Msg(1, name, dns.TypeA)), &q); r != packet.OK {
		t.Fatal(r)
	}
	return &q
}

func TestPendingFullAndSweep(t *testing.T) {
	pq := pkttestParsed(t)
	p := newPending(3)
	msg := pkttest.Pack(pkttest.Msg(1, "www.example.com", dns.TypeA))
	ids := map[uint16]bool{}
	for i := range 3 {
		id, ok := p.insert(&pq.q, msg, req(pq, 0, int64(i), 100, 250))
		if !ok || ids[id] {
			t.Fatalf("insert %d: ok=%v duplicate=%v", i, ok, ids[id])
		}
		ids[id] = true
	}
	if _, ok := p.insert(&pq.q, msg, req(pq, 0, 0, 100, 250)); ok {
		t.Fatal("insert into a full table succeeded")
	}
	out := make([]expired, 8)
	pos := 0
	// At t=50 nothing has expired.
	if n, done := p.sweep(50, 100, twoUps, &pos, out); n != 0 || !done {
		t.Fatalf("sweep at 50: n=%d done=%v", n, done)
	}
	// At t=101 the first two attempts expired: they move to upstream 1.
	n, _ := p.sweep(101, 100, twoUps, &pos, out)
	if n != 2 || !out[0].retry || out[0].up != 1 || !out[1].retry {
		t.Fatalf("sweep at 101: n=%d %+v", n, out[:n])
	}
	// At t=251 all are past their total deadline (250+start): SERVFAIL.
	n, _ = p.sweep(253, 100, twoUps, &pos, out)
	if n != 3 {
		t.Fatalf("sweep at 253: n=%d", n)
	}
	for _, x := range out[:n] {
		if x.retry || x.origID != pq.q.ID {
			t.Errorf("expired %+v, want SERVFAIL for id %#x", x, pq.q.ID)
		}
	}
	if p.len() != 0 || len(p.free) != 3 {
		t.Errorf("table not empty after the final sweep: len %d free %d", p.len(), len(p.free))
	}
}

func TestPendingRefusedByAllServfails(t *testing.T) {
	pq := pkttestParsed(t)
	p := newPending(2)
	msg := pkttest.Pack(pkttest.Msg(1, "www.example.com", dns.TypeA))
	id, _ := p.insert(&pq.q, msg, req(pq, 0, 0, 100, 10000))
	out := make([]expired, 2)
	pos := 0
	p.expediteSock(0, 0)
	if n, _ := p.sweep(1, 100, twoUps, &pos, out); n != 1 || !out[0].retry || out[0].up != 1 {
		t.Fatalf("first refusal should move the query on: %+v", out[0])
	}
	p.expediteID(id, 1)
	if n, _ := p.sweep(2, 100, twoUps, &pos, out); n != 1 || out[0].retry {
		t.Fatalf("refused by every upstream should SERVFAIL: %+v", out[0])
	}
}

// TestPendingParallelWaitsForAll: a parallel query refused by one of its
// upstreams keeps waiting for the others; refused by all, it ends.
func TestPendingParallelWaitsForAll(t *testing.T) {
	pq := pkttestParsed(t)
	p := newPending(2)
	msg := pkttest.Pack(pkttest.Msg(1, "www.example.com", dns.TypeA))
	r := req(pq, 0, 0, 100, 10000)
	r.att[1], r.nAtt, r.parallel = attempt{up: 1}, 2, true
	id, _ := p.insert(&pq.q, msg, r)
	out := make([]expired, 2)
	pos := 0
	p.expediteID(id, 0)
	if n, _ := p.sweep(1, 100, twoUps, &pos, out); n != 0 {
		t.Fatalf("one refusal of two ended a parallel query: %+v", out[0])
	}
	p.expediteID(id, 1)
	if n, _ := p.sweep(2, 100, twoUps, &pos, out); n != 1 || out[0].retry {
		t.Fatalf("refused by both: %d %+v", n, out[0])
	}
}

// twoUps routes everything to upstreams 0 and 1.
var twoUps = &routing{groups: []upList{{idx: []int{0, 1}, mask: 3}}}

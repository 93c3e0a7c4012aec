// SPDX-License-Identifier: MIT

package engine

import (
	"math/rand/v2"
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
	id, res := p.insert(&pq.q, msg, req(pq, 1, 0, 100, 500))
	if res != insertOK {
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
		id, res := p.insert(&pq.q, msg, req(pq, 0, int64(i), 100, 250))
		if res != insertOK || ids[id] {
			t.Fatalf("insert %d: %v duplicate=%v", i, res, ids[id])
		}
		ids[id] = true
	}
	if _, res := p.insert(&pq.q, msg, req(pq, 0, 0, 100, 250)); res != insertFull {
		t.Fatal("insert into a full table succeeded")
	}
	out := make([]expired, 8)
	// At t=50 nothing has expired.
	if n, done := p.sweep(50, 100, twoUps, out); n != 0 || !done {
		t.Fatalf("sweep at 50: n=%d done=%v", n, done)
	}
	// At t=101 the first two attempts expired: they move to upstream 1.
	n, _ := p.sweep(101, 100, twoUps, out)
	if n != 2 || !out[0].retry || out[0].up != 1 || !out[1].retry {
		t.Fatalf("sweep at 101: n=%d %+v", n, out[:n])
	}
	// At t=251 all are past their total deadline (250+start): SERVFAIL.
	n, _ = p.sweep(253, 100, twoUps, out)
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
	r := req(pq, 0, 0, 100, 10000)
	r.att[0].sock = 7 // an ICMP refusal on its pool socket
	id, _ := p.insert(&pq.q, msg, r)
	out := make([]expired, 2)
	if k := p.expediteSock(0, 8); k != 0 {
		t.Fatalf("a refusal on another socket failed %d queries", k)
	}
	if k := p.expediteSock(0, 7); k != 1 {
		t.Fatalf("the refusal on the query's socket failed %d queries, want 1", k)
	}
	if n, _ := p.sweep(1, 100, twoUps, out); n != 1 || !out[0].retry || out[0].up != 1 {
		t.Fatalf("first refusal should move the query on: %+v", out[0])
	}
	p.expediteID(id, 1)
	if n, _ := p.sweep(2, 100, twoUps, out); n != 1 || out[0].retry {
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
	p.expediteID(id, 0)
	if n, _ := p.sweep(1, 100, twoUps, out); n != 0 {
		t.Fatalf("one refusal of two ended a parallel query: %+v", out[0])
	}
	p.expediteID(id, 1)
	if n, _ := p.sweep(2, 100, twoUps, out); n != 1 || out[0].retry {
		t.Fatalf("refused by both: %d %+v", n, out[0])
	}
}

// twoUps routes everything to upstreams 0 and 1.
var twoUps = &routing{groups: []upList{{idx: []int{0, 1}, mask: 3}}}

// TestPendingIndexesAgainstScan drives the table with random inserts,
// attempts (past maxAttempts, so the oldest give way), refusals by socket
// and by ID, answers and sweeps, and checks after every step that the
// deadline heap and the socket lists say what a scan of the whole table
// says: the heap is ordered and holds every entry once, and a refusal
// fails exactly the queries with an attempt on that socket.
func TestPendingIndexesAgainstScan(t *testing.T) {
	pq := pkttestParsed(t)
	msg := pkttest.Pack(pkttest.Msg(1, "www.example.com", dns.TypeA))
	rng := rand.New(rand.NewPCG(1, 2))
	p := newPending(64)
	out := make([]expired, 8)
	now := int64(0)
	live := map[uint16]bool{}
	check := func(step int) {
		t.Helper()
		if len(p.heap) != p.n {
			t.Fatalf("step %d: heap holds %d, table %d", step, len(p.heap), p.n)
		}
		for i, s := range p.heap {
			if p.slots[s].hpos != int32(i) || !p.slots[s].used {
				t.Fatalf("step %d: heap position %d holds slot %d (hpos %d, used %v)", step, i, s, p.slots[s].hpos, p.slots[s].used)
			}
			if i > 0 && p.slots[p.heap[(i-1)/2]].deadline > p.slots[s].deadline {
				t.Fatalf("step %d: heap out of order at %d", step, i)
			}
		}
		// Every attempt on a socket is in its bucket's list, once.
		seen := map[int32]int{}
		for b := range p.sockHead {
			for node := p.sockHead[b]; node >= 0; node = p.sockNext[node] {
				seen[node]++
			}
		}
		want := 0
		for s := range p.slots {
			e := &p.slots[s]
			if !e.used {
				continue
			}
			for i, a := range e.att[:e.nAtt] {
				if a.sock != 0 {
					want++
					if seen[int32(s*maxAttempts+i)] != 1 {
						t.Fatalf("step %d: attempt %d of slot %d (sock %d) listed %d times", step, i, s, a.sock, seen[int32(s*maxAttempts+i)])
					}
				}
			}
		}
		if len(seen) != want {
			t.Fatalf("step %d: %d attempts listed, %d in the table", step, len(seen), want)
		}
	}
	for step := range 5000 {
		now += int64(rng.IntN(20))
		switch op := rng.IntN(10); {
		case op < 4:
			r := req(pq, rng.IntN(2), now, int64(50+rng.IntN(100)), int64(200+rng.IntN(300)))
			r.att[0].sock = uint32(1 + rng.IntN(40))
			if id, res := p.insert(&pq.q, msg, r); res == insertOK {
				live[id] = true
			}
		case op < 6:
			for id := range live {
				p.addAttempt(id, rng.IntN(2), uint32(1+rng.IntN(40)), now)
				break
			}
		case op < 7:
			up, sock := rng.IntN(2), uint32(1+rng.IntN(40))
			want := 0
			for s := range p.slots {
				e := &p.slots[s]
				if !e.used {
					continue
				}
				for _, a := range e.att[:e.nAtt] {
					if int(a.up) == up && a.sock == sock {
						want++
						break
					}
				}
			}
			if got := p.expediteSock(up, sock); got != want {
				t.Fatalf("step %d: a refusal on socket %d of upstream %d failed %d queries, a scan finds %d", step, sock, up, got, want)
			}
		case op < 8:
			for id := range live {
				reply := pq.q
				reply.ID = id
				var m match
				e := &p.slots[p.byID[id]-1]
				a := e.att[rng.IntN(int(e.nAtt))]
				if p.take(&reply, nil, int(a.up), a.sock, now, &m) == takeOK {
					delete(live, id)
				}
				break
			}
		default:
			want := 0
			for s := range p.slots {
				if e := &p.slots[s]; e.used && e.deadline <= now {
					want++
				}
			}
			got := 0
			for {
				n, done := p.sweep(now, 100, twoUps, out)
				for _, x := range out[:n] {
					if !x.retry {
						delete(live, x.id)
					}
				}
				got += n
				if done {
					break
				}
			}
			if got != want {
				t.Fatalf("step %d: sweep at %d took %d queries, %d had expired", step, now, got, want)
			}
		}
		check(step)
	}
}

// TestCloseRaceAnswers: a query the reader decided to forward just as the
// engine closed (after its check of closing, before the insert) gets
// SERVFAIL at once; before the table refused inserts once closed, it was
// stored after the final sweep and never answered.
func TestCloseRaceAnswers(t *testing.T) {
	e := newStepEngine(t, 16)
	w := newWorker(e)
	buf := make([]byte, 65536)
	testHookBeforeInsert = func(e *Engine) { e.Close() }
	defer func() { testHookBeforeInsert = nil }()
	pkt := pkttest.Query(client4, resolver4, pkttest.Msg(7, "www.example.com", dns.TypeA))
	m := runStep(w, buf, pkt)
	if m == 0 {
		t.Fatalf("the query was left in the table (%d waiting) with nobody to answer it", e.pending.len())
	}
	if r := pkttest.Unpack(t, pkttest.VerifyUDP(t, buf[:m])); r.Rcode != dns.RcodeServerFailure || r.Id != 7 {
		t.Errorf("answer rcode %d id %d, want SERVFAIL for id 7", r.Rcode, r.Id)
	}
	if n := e.pending.len(); n != 0 {
		t.Errorf("%d queries waiting after close", n)
	}
}

// BenchmarkSweepFullTable is the sweeper's work on a full table of 32,768
// queries of which exactly one expires per sweep: with the deadline heap it
// is the cost of that one (popped, moved to its next attempt, pushed back
// one full round of deadlines later), not of the table (a scan of every
// entry before).
func BenchmarkSweepFullTable(b *testing.B) {
	pq := pkttestParsed(b)
	msg := pkttest.Pack(pkttest.Msg(1, "www.example.com", dns.TypeA))
	p := newPending(MaxPendingLimit)
	const perTry = MaxPendingLimit // deadlines 0, 1, ... 32767 apart by one
	for i := range MaxPendingLimit {
		r := req(pq, 0, int64(i), perTry, 1<<62)
		r.att[0].sock = uint32(1 + i%4096)
		if _, res := p.insert(&pq.q, msg, r); res != insertOK {
			b.Fatal(res)
		}
	}
	out := make([]expired, sweepBatch)
	b.ReportAllocs()
	for b.Loop() {
		now := p.slots[p.heap[0]].deadline // the earliest expires, alone
		if n, _ := p.sweep(now, perTry, twoUps, out); n != 1 {
			b.Fatalf("a sweep took %d queries, want 1", n)
		}
	}
}

// BenchmarkExpediteSock is an ICMP refusal on one socket of a full table.
func BenchmarkExpediteSock(b *testing.B) {
	pq := pkttestParsed(b)
	msg := pkttest.Pack(pkttest.Msg(1, "www.example.com", dns.TypeA))
	p := newPending(MaxPendingLimit)
	for i := range MaxPendingLimit {
		r := req(pq, 0, 0, 1<<40, 1<<41)
		r.att[0].sock = uint32(1 + i%4096)
		p.insert(&pq.q, msg, r)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		p.expediteSock(0, uint32(1+i%4096))
	}
}

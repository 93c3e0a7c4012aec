// SPDX-License-Identifier: MIT

package engine

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/dnstun/dnstun/internal/pkttest"
	"github.com/miekg/dns"
)

func TestPendingShardsFor(t *testing.T) {
	for n, want := range map[int]int{0: 1, 1: 1, 2: 2, 3: 4, 4: 4, 5: 8, 8: 8, 16: 8} {
		if got := pendingShardsFor(n); got != want {
			t.Errorf("pendingShardsFor(%d) = %d, want %d", n, got, want)
		}
	}
}

// TestPendingTableOwnership: the shards own disjoint quarters of the ID
// space, found through owner and rank; the quarters are random (a shard's
// IDs do not share their low bits, or any bits), and differ between
// tables.
func TestPendingTableOwnership(t *testing.T) {
	a, b := newPendingTable(64, 4), newPendingTable(64, 4)
	seen := make([]bool, 1<<16)
	for k, p := range a.shards {
		if len(p.ids) != 1<<14 {
			t.Fatalf("shard %d owns %d IDs, want %d", k, len(p.ids), 1<<14)
		}
		var low [4]int
		for i, id := range p.ids {
			if seen[id] || int(a.owner[id]) != k || int(p.rank[id]) != i {
				t.Fatalf("ID %#04x: seen %v, owner %d, rank %d (shard %d, index %d)", id, seen[id], a.owner[id], p.rank[id], k, i)
			}
			seen[id] = true
			low[id&3]++
		}
		// A random quarter holds each value of the low bits 4,096 times,
		// with a standard deviation of 55.
		for v, c := range low {
			if c < 3700 || c > 4500 {
				t.Errorf("shard %d: %d of its IDs end in %d", k, c, v)
			}
		}
	}
	if *a.owner == *b.owner {
		t.Error("two tables split the IDs the same way")
	}
}

// TestPendingTableShards: a 4-shard table fills its whole capacity from one
// reader (a full shard passes the query to the next), refuses one more,
// counts in-flight queries per upstream over the shards, and gives every
// query back to its reply.
func TestPendingTableShards(t *testing.T) {
	pq := pkttestParsed(t)
	tab := newPendingTable(64, 4)
	msg := pkttest.Pack(pkttest.Msg(1, "www.example.com", dns.TypeA))
	ids := map[uint16]bool{}
	for i := range 64 {
		id, res := tab.insert(0, &pq.q, msg, req(pq, 1, int64(i), 100, 250))
		if res != insertOK || ids[id] {
			t.Fatalf("insert %d: %v, duplicate %v", i, res, ids[id])
		}
		ids[id] = true
		if want := i / 16; int(tab.owner[id]) != want {
			t.Errorf("query %d went to shard %d, want %d (shard 0 first, then the next with room)", i, tab.owner[id], want)
		}
	}
	if _, res := tab.insert(2, &pq.q, msg, req(pq, 1, 0, 100, 250)); res != insertFull {
		t.Fatalf("insert into a full table: %v", res)
	}
	if n := tab.inflight(1); n != 64 {
		t.Errorf("%d in flight to upstream 1, want 64", n)
	}
	var m match
	for id := range ids {
		reply := pq.q
		reply.ID = id
		if r := tab.take(&reply, nil, 1, 0, 5, &m); r != takeOK {
			t.Fatalf("take %#04x: %v", id, r)
		}
	}
	if tab.len() != 0 || tab.inflight(1) != 0 {
		t.Errorf("after every take: len %d, in flight %d", tab.len(), tab.inflight(1))
	}
}

// TestPendingTableIDsRandom: the IDs of one reader's queries, all from one
// shard, are uniform over all 16 bits.
func TestPendingTableIDsRandom(t *testing.T) {
	pq := pkttestParsed(t)
	tab := newPendingTable(4096, 4)
	msg := pkttest.Pack(pkttest.Msg(1, "www.example.com", dns.TypeA))
	const n = 40000
	var bit [16]int
	var m match
	for range n {
		id, res := tab.insert(1, &pq.q, msg, req(pq, 0, 0, 100, 250))
		if res != insertOK || tab.owner[id] != 1 {
			t.Fatalf("insert: %v, shard %d", res, tab.owner[id])
		}
		for b := range 16 {
			bit[b] += int(id >> b & 1)
		}
		reply := pq.q
		reply.ID = id
		if tab.take(&reply, nil, 0, 0, 1, &m) != takeOK {
			t.Fatal("take failed")
		}
	}
	// n/2 = 20,000 with a standard deviation of 100 (and the quarter's own
	// imbalance, about 0.4%).
	for b, c := range bit {
		if c < 19200 || c > 20800 {
			t.Errorf("bit %d set in %d IDs of %d", b, c, n)
		}
	}
}

// TestPendingTableSweepAndExpedite: a socket's refusal fails its queries in
// every shard; a sweep collects the expired queries of every shard, in calls
// as small as out; a closed table refuses.
func TestPendingTableSweepAndExpedite(t *testing.T) {
	pq := pkttestParsed(t)
	tab := newPendingTable(64, 4)
	msg := pkttest.Pack(pkttest.Msg(1, "www.example.com", dns.TypeA))
	for i := range 24 {
		r := req(pq, 0, 0, 100, 1000)
		r.att[0].sock = 7
		if _, res := tab.insert(i, &pq.q, msg, r); res != insertOK {
			t.Fatal(res)
		}
	}
	for k, p := range tab.shards {
		if p.len() != 6 {
			t.Fatalf("shard %d holds %d, want 6", k, p.len())
		}
	}
	if k := tab.expediteSock(0, 7); k != 24 {
		t.Errorf("a refusal on socket 7 failed %d queries, want 24", k)
	}
	// Refused by upstream 0, each moves on to upstream 1 and stays.
	out := make([]expired, 5)
	total := 0
	for calls := 0; ; calls++ {
		n, done := tab.sweep(1, 100, twoUps, out)
		for _, x := range out[:n] {
			if !x.retry || x.up != 1 {
				t.Errorf("expedited query %#04x: retry %v on upstream %d, want a retry on 1", x.id, x.retry, x.up)
			}
		}
		total += n
		if done {
			break
		}
		if n != len(out) || calls > 10 {
			t.Fatalf("a sweep that is not done returned %d of %d", n, len(out))
		}
	}
	if total != 24 || tab.len() != 24 {
		t.Errorf("the sweeps collected %d expedited queries, want 24 (%d left in the table, want 24)", total, tab.len())
	}
	tab.close()
	if _, res := tab.insert(3, &pq.q, msg, req(pq, 0, 0, 100, 250)); res != insertClosed {
		t.Errorf("insert into a closed table: %v", res)
	}
}

// BenchmarkPendingTable: insert and take of one query per iteration from
// goroutines on every core, each inserting into a shard of its own as the
// readers of a multi-queue TUN do (with -cpu 2: two readers' worth of table
// work at once), with the table in 1 and 2 shards. ns/op is the wall time
// per query over all goroutines.
func BenchmarkPendingTable(b *testing.B) {
	for _, shards := range []int{1, 2} {
		b.Run(fmt.Sprintf("shards=%d", shards), func(b *testing.B) {
			tab := newPendingTable(4096, shards)
			var next atomic.Int32
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				k := int(next.Add(1) - 1)
				pq := pkttestParsed(b)
				msg := pkttest.Pack(pkttest.Msg(1, "www.example.com", dns.TypeA))
				q := pq.q
				r := req(pq, 0, 0, 1, 2)
				var m match
				for pb.Next() {
					id, res := tab.insert(k, &q, msg, r)
					if res != insertOK {
						b.Error(res)
						return
					}
					q.ID = id
					if tab.take(&q, msg, 0, 0, 0, &m) != takeOK {
						b.Error("take failed")
						return
					}
				}
			})
		})
	}
}

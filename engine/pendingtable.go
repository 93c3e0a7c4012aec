// SPDX-License-Identifier: MIT

package engine

import (
	"math/bits"
	"math/rand/v2"

	"github.com/dnstun/dnstun/packet"
)

// maxPendingShards bounds the shards of a pendingTable.
const maxPendingShards = 8

// pendingTable is the engine's table of forwarded queries: one pending
// table, or, for the readers of a multi-queue TUN, one shard with its own
// lock per reader, so that readers on different cores neither queue on one
// lock nor pass the table's memory back and forth between their caches.
// The receiver finds a reply's shard from its upstream ID.
//
// Each shard owns a part of the 16-bit ID space, drawn at random when the
// table is made and known to nobody outside the process: a reader draws its
// queries' IDs uniformly from its shard's part, so an off-path forger still
// faces all 65,536 IDs. (Owning IDs by their low bits would let a forger who
// knows which reader got a query, always the same one with one queue, skip
// the other shards' IDs.)
type pendingTable struct {
	shards []*pending
	// owner is each ID's shard (nil with one shard).
	owner *[1 << 16]uint8
}

// pendingShardsFor is how many shards a table for n TUN readers gets: the
// power of two at or above n, at most maxPendingShards; 1 for one reader
// (one lock, as before there were shards).
func pendingShardsFor(n int) int {
	if n <= 1 {
		return 1
	}
	return min(1<<bits.Len(uint(n-1)), maxPendingShards)
}

// newPendingTable returns a table of capacity queries in shards shards (a
// power of two from 1 to maxPendingShards), each holding an equal part.
func newPendingTable(capacity, shards int) *pendingTable {
	if shards < 1 || shards > maxPendingShards || shards&(shards-1) != 0 {
		panic("engine: pending shards must be a power of two from 1 to 8")
	}
	t := &pendingTable{shards: make([]*pending, shards)}
	if shards == 1 {
		t.shards[0] = newPendingShard(capacity, nil, nil)
		return t
	}
	// Deal a random permutation of the IDs out to the shards: ID perm[j]
	// goes to shard j % shards, at rank j / shards.
	t.owner = new([1 << 16]uint8)
	rank := new([1 << 16]uint16)
	ids := make([][]uint16, shards)
	for i := range ids {
		ids[i] = make([]uint16, 0, (1<<16)/shards)
	}
	for j, id := range rand.Perm(1 << 16) {
		k := j % shards
		t.owner[id] = uint8(k)
		rank[id] = uint16(len(ids[k]))
		ids[k] = append(ids[k], uint16(id))
	}
	per := (max(capacity, 1) + shards - 1) / shards
	for i := range t.shards {
		t.shards[i] = newPendingShard(per, ids[i], rank)
	}
	return t
}

// shard is the shard that owns upstream ID id.
func (t *pendingTable) shard(id uint16) *pending {
	if t.owner == nil {
		return t.shards[0]
	}
	return t.shards[t.owner[id]]
}

// setClients gives every shard the clients' counters (see pending.clients).
func (t *pendingTable) setClients(c *clients) {
	for _, p := range t.shards {
		p.clients = c
	}
}

// insert stores a query in shard k (modulo the shards: a worker's own), or
// in the next one that has room when that one is full (see pending.insert).
func (t *pendingTable) insert(k int, q *packet.Question, msg []byte, r *request) (uint16, insertResult) {
	n := len(t.shards)
	for i := range n {
		id, res := t.shards[(k+i)&(n-1)].insert(q, msg, r)
		if res != insertFull {
			return id, res
		}
	}
	return 0, insertFull
}

func (t *pendingTable) addAttempt(id uint16, up int, sock uint32, now int64) bool {
	return t.shard(id).addAttempt(id, up, sock, now)
}

func (t *pendingTable) take(q *packet.Question, msg []byte, up int, sock uint32, now int64, m *match) takeResult {
	return t.shard(q.ID).take(q, msg, up, sock, now, m)
}

func (t *pendingTable) expediteID(id uint16, up int) { t.shard(id).expediteID(id, up) }

func (t *pendingTable) detach(id uint16) { t.shard(id).detach(id) }

// expediteSock fails, in every shard, the queries with an attempt on
// upstream up's pool socket sock.
func (t *pendingTable) expediteSock(up int, sock uint32) int {
	k := 0
	for _, p := range t.shards {
		k += p.expediteSock(up, sock)
	}
	return k
}

// sweep collects expired queries from every shard in turn (see
// pending.sweep): done is false when out filled up first.
func (t *pendingTable) sweep(now, perTry int64, rt *routing, out []expired) (n int, done bool) {
	for _, p := range t.shards {
		k, done := p.sweep(now, perTry, rt, out[n:])
		n += k
		if !done {
			return n, false
		}
	}
	return n, true
}

// close closes every shard: from now on insert refuses.
func (t *pendingTable) close() {
	for _, p := range t.shards {
		p.close()
	}
}

// inflight is how many queries sent to upstream up still wait, over all
// shards.
func (t *pendingTable) inflight(up int) int32 {
	var n int32
	for _, p := range t.shards {
		n += p.inflight[up].Load()
	}
	return n
}

// len is the number of queries waiting, over all shards.
func (t *pendingTable) len() int {
	n := 0
	for _, p := range t.shards {
		n += p.len()
	}
	return n
}

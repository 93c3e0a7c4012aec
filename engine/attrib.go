// SPDX-License-Identifier: MIT

package engine

import (
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/dnstun/dnstun/attrib"
	"github.com/dnstun/dnstun/filter"
	"github.com/dnstun/dnstun/packet"
	"github.com/dnstun/dnstun/querylog"
)

// Attribution: which local process sent a query. The step asks
// Config.Attrib's cache (no system call) and, on a miss, queues a lookup
// that runs on attrib's own goroutine; the query goes on without waiting,
// and the query log finds the owner when it is read. Only when the rule
// set has $process rules does a query whose owner is not known yet wait
// for it: it is copied into a small table of held queries (the step
// returns at once) and released when the lookup ends, or after holdFor,
// and then decided and answered by the releaser goroutine. A query that
// finds the table full is decided without its process.

const (
	// holdFor bounds how long a query waits for its owner (a lookup takes
	// well under a millisecond from the cache of /proc's sockets, a few
	// milliseconds when it scans /proc).
	holdFor = 200 * time.Millisecond
	// maxHeld is how many queries may wait for their owner at once.
	maxHeld = 256
)

// held is a query waiting for its owner.
type held struct {
	key              attrib.Key
	from             via
	client, resolver netip.AddrPort
	arrived          int64 // engine clock
	deadline         int64
	done             bool // the lookup ended: owner is its result
	owner            *attrib.Owner
	n                int
	msg              [MaxQuery]byte
}

// holder is the table of held queries.
type holder struct {
	mu     sync.Mutex
	closed bool    // the releaser's last pass is done: hold refuses
	q      []*held // waiting, in arrival order
	free   []*held
	wake   chan struct{}
}

func newHolder() *holder {
	h := &holder{wake: make(chan struct{}, 1), q: make([]*held, 0, maxHeld), free: make([]*held, maxHeld)}
	for i := range h.free {
		h.free[i] = new(held)
	}
	return h
}

// keyOf is the attribution key of a query from client to resolver.
func keyOf(from via, client, resolver netip.AddrPort) attrib.Key {
	proto := uint8(attrib.ProtoUDP)
	if from == viaTCP {
		proto = attrib.ProtoTCP
	}
	return attrib.Key{Proto: proto, Local: client, Remote: resolver}
}

// protoOf is the query log's protocol of a front-end.
func protoOf(from via) uint8 {
	if from == viaTCP {
		return querylog.ProtoTCP
	}
	return querylog.ProtoUDP
}

// owner finds the process behind the current query for the filter: the
// owner a front-end preset, or attribution's cached one. On a miss it
// queues a lookup and, when the rules need the process and the front-end
// can wait, holds the query (held reports that: nothing more is to be
// done with it now).
func (w *worker) owner(msg []byte, client, resolver netip.AddrPort, from via) (o *attrib.Owner, held bool) {
	e := w.e
	if w.preset {
		w.preset = false
		return w.presetOwner, false
	}
	k := keyOf(from, client, resolver)
	o, known := e.cfg.Attrib.LookupKnown(k)
	if known {
		return o, false // o nil: looked up lately, no process owns it
	}
	if (from == viaTUN || from == viaFlow) && e.usesProcess() && e.hold(msg, k, from, client, resolver) {
		return nil, true
	}
	if e.lookups.take(e.coarse.Load()) {
		e.cfg.Attrib.Request(k)
	} else {
		e.count(AttribSkipped)
	}
	return nil, false
}

// lookupsPerSecond bounds the lookups the step queues for the query log:
// each costs attribution's goroutine 30 to 40 µs of CPU (more when it
// scans /proc), beside the step. 500 a second is at most about 2% of a
// core, and more new client sockets a second than a desktop opens; at
// 2,000, Go's resolver flooding dnstun (a fresh socket per query) cost
// 1.29-1.62x the ceiling's CPU per blocked lookup against 1.12-1.14x at
// 500 (bench/NOTES.md). Past it a query is logged without its process
// (attrib_skipped). Held queries ($process rules) are not bounded by it.
const lookupsPerSecond = 500

// budget counts lookups per second of the engine's clock. Two readers
// crossing into a new second at once may both reset the count: the bound
// is approximate, and allocation- and lock-free.
type budget struct {
	second atomic.Int64
	used   atomic.Int64
}

func (b *budget) take(now int64) bool {
	if s := now / int64(time.Second); b.second.Load() != s {
		b.second.Store(s)
		b.used.Store(0)
	}
	return b.used.Add(1) <= lookupsPerSecond
}

// processRules is what a filter with $process rules implements
// (filter.Set and filter.Live do).
type processRules interface{ UsesProcess() bool }

// usesProcess reports whether the rules serving need each query's process.
func (e *Engine) usesProcess() bool {
	p, ok := e.filter.(processRules)
	return ok && p.UsesProcess()
}

// setProcess fills the filter query's process fields from o.
func setProcess(q *filter.Query, o *attrib.Owner) {
	if o == nil {
		return
	}
	q.Proc = bytesOf(o.Name)
	exe := o.Exe
	if i := strings.LastIndexByte(exe, '/'); i >= 0 {
		exe = exe[i+1:]
	}
	q.Exe = bytesOf(exe)
}

// bytesOf views s as bytes without copying; the filter only reads them.
func bytesOf(s string) []byte {
	if s == "" {
		return nil
	}
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

// hold copies the query into the held table and queues its owner's
// lookup; false if it cannot wait (table full, lookup queue full, too
// large, closing).
func (e *Engine) hold(msg []byte, k attrib.Key, from via, client, resolver netip.AddrPort) bool {
	h := e.held
	if len(msg) > MaxQuery || e.closing.Load() {
		return false
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return false
	}
	if len(h.free) == 0 {
		h.mu.Unlock()
		e.count(AttribUnheld)
		return false
	}
	if !e.cfg.Attrib.Request(k) {
		h.mu.Unlock()
		e.count(AttribUnheld)
		return false
	}
	x := h.free[len(h.free)-1]
	h.free = h.free[:len(h.free)-1]
	x.key, x.from, x.client, x.resolver = k, from, client, resolver
	x.arrived = e.now()
	x.deadline, x.done, x.owner = x.arrived+int64(holdFor), false, nil
	x.n = copy(x.msg[:], msg)
	h.q = append(h.q, x)
	h.mu.Unlock()
	e.count(AttribHeld)
	return true
}

// OwnerResolved tells the engine that attribution's lookup of k ended
// with o (nil: no owner found): the queries held for it are released.
// attrib.Config.OnResolved calls it; it does not block.
func (e *Engine) OwnerResolved(k attrib.Key, o *attrib.Owner) {
	h := e.held
	if h == nil {
		return
	}
	found := false
	h.mu.Lock()
	for _, x := range h.q {
		if x.key == k {
			x.done, x.owner, found = true, o, true
		}
	}
	h.mu.Unlock()
	if found {
		select {
		case h.wake <- struct{}{}:
		default:
		}
	}
}

// routineRelease decides and answers the held queries whose owner is
// known, or whose wait is over; on Close, every held query is released.
func (e *Engine) routineRelease() {
	defer e.wg.Done()
	defer e.relWG.Done()
	h := e.held
	w := newWorker(e)
	buf := make([]byte, replyOff+packet.MaxHeaderLen+65535)
	var bufs [1][]byte
	var ready []*held
	tick := time.NewTicker(holdFor / 4)
	defer tick.Stop()
	for closing := false; !closing; {
		select {
		case <-h.wake:
		case <-tick.C:
		case <-e.closed:
			closing = true
		}
		now := e.now()
		ready = ready[:0]
		h.mu.Lock()
		if closing {
			// The last pass: what is held now is all there will be.
			h.closed = true
		}
		kept := h.q[:0]
		for _, x := range h.q {
			if x.done || now >= x.deadline || closing {
				ready = append(ready, x)
			} else {
				kept = append(kept, x)
			}
		}
		clear(h.q[len(kept):])
		h.q = kept
		h.mu.Unlock()
		for _, x := range ready {
			o := x.owner
			if !x.done {
				o = e.cfg.Attrib.Lookup(x.key) // the lookup may have ended just now
				e.count(AttribLate)
			}
			w.preset, w.presetOwner, w.replay = true, o, true
			msg := buf[replyOff : replyOff+x.n]
			copy(msg, x.msg[:x.n])
			m := 0
			out := w.handle(msg, x.client, x.resolver, x.from)
			switch out {
			case outAnswer:
				m = packet.AnswerDNS(buf[replyOff:], &w.q, &w.r)
			case outCached:
				m = w.cn
			}
			w.preset, w.presetOwner, w.replay = false, nil, false
			if m > 0 {
				e.send(buf, &bufs, m, x.from, x.resolver, x.client)
				if e.cfg.Metrics {
					// From its arrival: the wait is dnstun's too.
					if out == outCached {
						e.observeBatch(e.now()-x.arrived, 0, 1)
					} else {
						e.observeBatch(e.now()-x.arrived, 1, 0)
					}
				}
			}
			h.mu.Lock()
			x.owner = nil
			h.free = append(h.free, x)
			h.mu.Unlock()
		}
	}
}

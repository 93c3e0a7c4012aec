// SPDX-License-Identifier: MIT

package engine

import (
	"encoding/binary"
	"net/netip"

	"github.com/dnstun/dnstun/cache"
	"github.com/dnstun/dnstun/filter"
	"github.com/dnstun/dnstun/packet"
	"github.com/dnstun/dnstun/querylog"
)

// DNS header flags and the OPT record the engine writes into a refresh
// query (RFC 1035 §4.1.1, RFC 6891 §6.1.2).
const (
	flagRD  = 0x0100
	flagCD  = 0x0010
	typeOPT = 41
	optLen  = 11
)

// fromCache answers the query msg (read into w.q) from the cache when it
// holds a fresh answer: the answer is written over msg, within msg's
// capacity, and w.cn is its length (outCached). The answer is inspected
// with the current rules and for this client, as an upstream answer is:
// a blocked one is answered as blocked (outAnswer, w.r). A hot entry near
// its end is refreshed in the background. It returns outDrop on a miss,
// with msg untouched.
func (w *worker) fromCache(msg []byte, client, resolver netip.AddrPort, from via) outcome {
	e := w.e
	limit := packet.ClientLimit(&w.q)
	if from == viaTCP {
		// Over TCP only a whole answer will do: if the buffer cannot take
		// it, the query goes upstream as it came.
		limit = packet.StreamLimit
		w.qsave = append(w.qsave[:0], msg...)
	}
	now := e.now()
	n, res := e.cfg.Cache.Lookup(msg[:cap(msg)], &w.q, limit, now)
	if res.Status != cache.Hit {
		return outDrop
	}
	if res.Truncated && from == viaTCP {
		copy(msg[:cap(msg)], w.qsave)
		return outDrop
	}
	e.count(CacheHits)
	if res.Prefetch {
		w.refresh(msg[:n])
	}
	if packet.ReadAnswers(msg[:n], &w.q, &w.ans) && len(w.ans.Addrs())+len(w.ans.Names()) > 0 {
		if d := e.filter.InspectAnswer(w.ans.Names(), w.ans.Addrs(), client.Addr()); d.Action == filter.Block {
			e.count(AnswerBlocked)
			e.blockReply(&d, &w.r)
			e.logQuery(from, client, resolver, w.cur, w.q.Name(), w.q.QType, querylog.Blocked, w.r.Rcode, netip.AddrPort{}, 0)
			return outAnswer
		}
	}
	if res.Truncated {
		e.count(Truncated)
	}
	e.logQuery(from, client, resolver, w.cur, w.q.Name(), w.q.QType, querylog.Cached, uint8(binary.BigEndian.Uint16(msg[2:])&0xf), netip.AddrPort{}, 0)
	w.cn = n
	return outCached
}

// refresh sends a query for the question of answer (a cache hit, read
// into w.q) upstream with no client: its answer only refreshes the
// cache. The query asks as the cached entry's key does (CD, DO).
func (w *worker) refresh(answer []byte) {
	e := w.e
	end := w.q.End
	if end > len(answer) || end+optLen > len(w.pbuf) {
		return
	}
	b := w.pbuf[:end]
	copy(b, answer[:end])
	binary.BigEndian.PutUint16(b[2:], flagRD|w.q.Flags&flagCD)
	binary.BigEndian.PutUint16(b[4:], 1)
	clear(b[6:12])
	if w.q.EDNS {
		b = b[:end+optLen]
		opt := b[end:]
		opt[0] = 0 // the root
		binary.BigEndian.PutUint16(opt[1:], typeOPT)
		binary.BigEndian.PutUint16(opt[3:], 1232)
		clear(opt[5:])
		if w.q.DO {
			opt[7] = 0x80
		}
		binary.BigEndian.PutUint16(b[10:], 1)
	}
	if packet.ReadQuestion(b, &w.q2) != packet.OK {
		return
	}
	e.count(CachePrefetch)
	w.send(&w.q2, b, netip.AddrPort{}, netip.AddrPort{}, viaNone, nil, 0)
}

// serveStale answers the client of an expired query from an expired cache
// entry (RFC 8767) instead of SERVFAIL, when there is one. x.query holds
// the query as sent upstream (its case restored); buf is the sweeper's.
func (s *sweeper) serveStale(x *expired) bool {
	e := s.e
	if e.cfg.Cache == nil || x.via == viaNone || x.aliasLen > 0 || x.fixed {
		return false
	}
	if s.clientQuery(x) == 0 {
		return false
	}
	msg := s.buf[replyOff:]
	limit := packet.ClientLimit(&s.q)
	if x.via == viaTCP {
		limit = packet.StreamLimit
	}
	m, res := e.cfg.Cache.LookupStale(msg, &s.q, limit, e.now())
	if res.Status != cache.Stale && res.Status != cache.Hit || res.Truncated && x.via == viaTCP {
		return false
	}
	e.count(CacheStale)
	e.logQuery(x.via, x.client, x.resolver, nil, s.q.Name(), s.q.QType, querylog.Stale, uint8(binary.BigEndian.Uint16(msg[2:])&0xf), netip.AddrPort{}, x.start)
	e.send(s.buf, &s.bufs, m, x.via, x.resolver, x.client)
	e.observeForward(x.start)
	return true
}

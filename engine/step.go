// SPDX-License-Identifier: MIT

package engine

import (
	"net/netip"

	"github.com/dnstun/dnstun/filter"
	"github.com/dnstun/dnstun/packet"
	"github.com/dnstun/dnstun/querylog"
)

// DNS constants used on the data path (RFC 1035 §3.2.2, §4.1.1; RFC 8914).
const (
	rcodeServFail = 2
	rcodeNXDomain = 3
	rcodeRefused  = 5
	edeBlocked    = 15
)

// nullAddrs answers blocked names in null mode: 0.0.0.0 for A, :: for AAAA
// (packet.AnswerDNS picks by qtype; other types get NODATA).
var nullAddrs = []netip.Addr{netip.IPv4Unspecified(), netip.IPv6Unspecified()}

// via says where a query came from, and so where its answer goes.
type via uint8

const (
	viaTUN  via = iota // an IP packet read from the TUN
	viaFlow            // a datagram read from the flow-mode UDP socket
)

// outcome is what handle decided for one message.
type outcome uint8

const (
	outDrop    outcome = iota // no reply
	outAnswer                 // answer now with w.r
	outForward                // sent upstream; the answer comes later
)

// worker is the per-reader scratch state; it belongs to one goroutine.
type worker struct {
	e      *Engine
	parser *packet.Parser
	p      packet.Parsed
	q      packet.Question
	r      packet.Reply
	ql     querylog.Entry
}

func newWorker(e *Engine) *worker {
	return &worker{e: e, parser: packet.NewParser()}
}

// step processes one packet read from the TUN: pkt[:n] is the packet and
// pkt has room for its answer to grow. It decodes IP/UDP, then hands the
// DNS message to handle, and answers in place. It returns the length of
// the answer written into pkt (to be written back into the TUN), or 0 when
// nothing is to be sent now (dropped, or forwarded upstream). It allocates
// nothing.
func (w *worker) step(pkt []byte, n int) int {
	w.e.count(Packets)
	if r := w.parser.Decode(pkt[:n], &w.p); r != packet.OK {
		w.e.stats.drops[r].Add(1)
		return 0
	}
	msg := pkt[w.p.PayloadOff : w.p.PayloadOff+w.p.PayloadLen]
	if w.handle(msg, w.p.Src, w.p.Dst, viaTUN) != outAnswer {
		return 0
	}
	return packet.AnswerInPlace(pkt, &w.p, &w.q, &w.r)
}

// handle is the one place that fixes the order of processing of a DNS
// message, whatever front-end it came from: read the header and question,
// decide, then answer (filling w.r) or forward. client is who asked,
// resolver the address it asked.
func (w *worker) handle(msg []byte, client, resolver netip.AddrPort, from via) outcome {
	e := w.e
	if r := packet.ReadQuestion(msg, &w.q); r != packet.OK {
		e.stats.drops[r].Add(1)
		rcode, answer := r.Rcode()
		if !answer {
			return outDrop // garbage gets no reply: any reply could amplify
		}
		e.logQuery(&w.ql, client, nil, 0, querylog.Malformed, rcode, netip.AddrPort{}, 0)
		return w.reply(rcode, nil, 0, false)
	}
	if len(e.healthName) > 0 && string(w.q.Name()) == string(e.healthName) {
		return w.reply(0, nil, 0, false) // the watchdog's probe
	}
	d := e.filter.Decide(w.q.Name(), w.q.QType)
	switch d.Action {
	case filter.Block:
		e.count(Blocked)
		mode := d.Mode
		if mode == filter.ModeDefault {
			mode = e.cfg.BlockMode
		}
		if e.cfg.QueryLog != nil {
			rc := uint8(0)
			switch mode {
			case filter.ModeNXDomain:
				rc = rcodeNXDomain
			case filter.ModeRefused:
				rc = rcodeRefused
			}
			e.logQuery(&w.ql, client, w.q.Name(), w.q.QType, querylog.Blocked, rc, netip.AddrPort{}, 0)
		}
		switch mode {
		case filter.ModeNull:
			return w.reply(0, nullAddrs, e.cfg.BlockTTL, true)
		case filter.ModeRefused:
			return w.reply(rcodeRefused, nil, 0, true)
		case filter.ModeNoData:
			return w.reply(0, nil, 0, true)
		default:
			return w.reply(rcodeNXDomain, nil, 0, true)
		}
	case filter.Answer:
		e.count(Local)
		e.logQuery(&w.ql, client, w.q.Name(), w.q.QType, querylog.Local, 0, netip.AddrPort{}, 0)
		return w.reply(0, d.Addrs, e.cfg.LocalTTL, false)
	}
	return w.forward(msg, client, resolver, from)
}

// reply fills w.r for an answer to the current query.
func (w *worker) reply(rcode uint8, addrs []netip.Addr, ttl uint32, blocked bool) outcome {
	w.r = packet.Reply{Rcode: rcode, TTL: ttl, Addrs: addrs, EDE: edeBlocked, HasEDE: blocked}
	return outAnswer
}

// forward records the query in the pending table and sends it to the first
// healthy upstream. The query leaves with a fresh random ID written into
// msg; the table keeps a copy for retries and SERVFAIL.
func (w *worker) forward(msg []byte, client, resolver netip.AddrPort, from via) outcome {
	e := w.e
	if e.closing.Load() {
		return w.reply(rcodeServFail, nil, 0, false)
	}
	if len(msg) > MaxQuery {
		e.count(TooLarge)
		return w.reply(rcodeRefused, nil, 0, false)
	}
	now := e.now()
	up, fixed := -1, false
	if e.cfg.PassThrough && from == viaTUN && !e.isOwnResolver(resolver.Addr()) {
		// Captured: ask the resolver the client asked.
		up, fixed = e.upstreamFor(resolver), true
	}
	if up < 0 {
		if up = e.pickUpstream(now); up < 0 {
			return w.reply(rcodeServFail, nil, 0, false) // no upstream to ask
		}
	}
	id, ok := e.pending.insert(&w.q, msg, client, resolver, from, up, fixed, now, int64(e.cfg.UpstreamTimeout), int64(e.cfg.TotalTimeout))
	if !ok {
		e.count(Full)
		e.logQuery(&w.ql, client, w.q.Name(), w.q.QType, querylog.Refused, rcodeRefused, netip.AddrPort{}, 0)
		return w.reply(rcodeRefused, nil, 0, false)
	}
	e.count(Forwarded)
	if err := e.ups[up].Load().Send(msg); err != nil {
		e.count(SendErrors)
		e.pending.expediteID(id)
		e.wakeSweeper()
	}
	return outForward
}

// isOwnResolver reports whether a is one of dnstun's virtual resolvers.
func (e *Engine) isOwnResolver(a netip.Addr) bool {
	for _, r := range e.cfg.Resolvers {
		if r == a {
			return true
		}
	}
	return false
}

// pickUpstream returns the first configured upstream not marked down, or,
// when all are down, the one that comes back soonest; -1 when none is
// configured.
func (e *Engine) pickUpstream(now int64) int {
	best, bestUntil := -1, int64(-1)
	for _, i := range e.cfgUps.Load().idx {
		until := e.health[i].downUntil.Load()
		if until <= now {
			return i
		}
		if bestUntil < 0 || until < bestUntil {
			best, bestUntil = i, until
		}
	}
	return best
}

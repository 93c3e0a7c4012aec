// SPDX-License-Identifier: MIT

package engine

import (
	"net/netip"

	"github.com/dnstun/dnstun/attrib"
	"github.com/dnstun/dnstun/filter"
	"github.com/dnstun/dnstun/packet"
	"github.com/dnstun/dnstun/querylog"
	"github.com/dnstun/dnstun/tap"
)

// DNS constants used on the data path (RFC 1035 §3.2.2, §4.1.1; RFC 8914).
const (
	rcodeServFail = 2
	rcodeNXDomain = 3
	rcodeRefused  = 5
	rcodeBadVers  = 16 // RFC 6891 §9: header rcode 0, OPT EXTENDED-RCODE 1
	edeBlocked    = 15
	typeCNAME     = 5
	dnsHeaderLen  = 12
)

// nullAddrs answers blocked names in null mode: 0.0.0.0 for A, :: for AAAA
// (packet.AnswerDNS picks by qtype; other types get NODATA).
var nullAddrs = []netip.Addr{netip.IPv4Unspecified(), netip.IPv6Unspecified()}

// via says where a query came from, and so where its answer goes.
type via uint8

const (
	viaTUN  via = iota // an IP packet read from the TUN
	viaFlow            // a datagram read from the flow-mode UDP socket
	viaTCP             // a message of a TCP connection through the TUN
	viaNone            // no client: a cache refresh, whose answer only goes into the cache
)

// outcome is what handle decided for one message.
type outcome uint8

const (
	outDrop    outcome = iota // no reply
	outAnswer                 // answer now with w.r
	outForward                // sent upstream; the answer comes later
	outCached                 // answered from the cache: w.cn bytes written over the message
)

// worker is the per-reader scratch state; it belongs to one goroutine.
type worker struct {
	e      *Engine
	lane   *lane // the worker's counters
	shard  int   // the pending table's shard it inserts into (modulo theirs)
	parser *packet.Parser
	p      packet.Parsed
	q      packet.Question
	q2     packet.Question // the rewritten question of a CNAME rewrite
	r      packet.Reply
	fq     filter.Query
	abuf   [MaxQuery]byte // a CNAME rewrite's query to the target
	req    request        // a forwarded query's record
	cn     int            // outCached: the answer's length
	out    outcome        // what step's last packet came to
	// cur is the process that sent the current query (nil: unknown);
	// presetOwner is one a front-end found before calling handle (preset).
	cur         *attrib.Owner
	preset      bool
	presetOwner *attrib.Owner
	// replay: handle runs again for a query it held (already counted
	// and tapped when it arrived).
	replay bool
	qsave  []byte                    // a TCP query kept while the cache is asked
	pbuf   [packet.MaxName + 64]byte // a cache refresh's query
	ans    packet.Answers            // a cache hit's records, for answer inspection
}

func newWorker(e *Engine) *worker {
	return &worker{e: e, parser: packet.NewParser(), lane: e.stats.newLane(), shard: int(e.workers.Add(1) - 1)}
}

// count counts one c in the worker's own lane.
func (w *worker) count(c Counter) { w.lane.add(c) }

// step processes one packet read from the TUN: pkt[:n] is the packet and
// pkt has room for its answer to grow. It decodes IP/UDP, then hands the
// DNS message to handle, and answers in place. It returns the length of
// the answer written into pkt (to be written back into the TUN), or 0 when
// nothing is to be sent now (dropped, or forwarded upstream). It allocates
// nothing.
func (w *worker) step(pkt []byte, n int) int {
	// Packets: counted per read by routineRead, per queue (QueuePackets).
	if r := w.parser.Decode(pkt[:n], &w.p); r != packet.OK {
		if r == packet.DropNotUDP && w.e.tcp != nil && isTCP(pkt) {
			// DNS over TCP: the userspace stack terminates it and hands
			// each message back to handle.
			w.count(TCPSegments)
			w.e.tcp.inject(pkt[:n])
			return 0
		}
		w.e.stats.drops[r].Add(1)
		return 0
	}
	msg := pkt[w.p.PayloadOff : w.p.PayloadOff+w.p.PayloadLen]
	w.out = w.handle(msg, w.p.Src, w.p.Dst, viaTUN)
	m := 0
	switch w.out {
	case outAnswer:
		m = packet.AnswerInPlace(pkt, &w.p, &w.q, &w.r)
	case outCached:
		m = packet.ReplyInPlace(pkt, &w.p, w.cn)
	}
	if m > 0 && w.e.cfg.Tap != nil {
		w.e.tapClient(tap.ClientResponse, viaTUN, w.p.Src, w.p.Dst, pkt[udpHeaderLen(w.p.Family):m])
	}
	return m
}

// handle is the one place that fixes the order of processing of a DNS
// message, whatever front-end it came from: read the header and question,
// decide, then answer (filling w.r) or forward. client is who asked,
// resolver the address it asked.
func (w *worker) handle(msg []byte, client, resolver netip.AddrPort, from via) outcome {
	e := w.e
	if e.cfg.Metrics && from != viaNone && !w.replay {
		e.metrics.queries[transportOf(from)].Add(1)
	}
	if r := packet.ReadQuestion(msg, &w.q); r != packet.OK {
		e.stats.drops[r].Add(1)
		rcode, answer := r.Rcode()
		if !answer {
			return outDrop // garbage gets no reply: any reply could amplify
		}
		e.logQuery(from, client, resolver, nil, nil, 0, querylog.Malformed, rcode, netip.AddrPort{}, 0)
		return w.reply(rcode, nil, 0, false)
	}
	if e.cfg.Tap != nil && !w.replay {
		e.tapClient(tap.ClientQuery, from, client, resolver, msg)
	}
	if len(e.healthName) > 0 && string(w.q.Name()) == string(e.healthName) {
		if e.cfg.Metrics {
			e.metrics.answers[querylog.Local][0].Add(1) // counted, not logged
		}
		return w.reply(0, nil, 0, false) // the watchdog's probe
	}
	if e.cfg.ClientRate > 0 && from != viaNone && !w.replay && !e.clients.allow(e.clients.bucket(client.Addr()), e.coarse.Load()) {
		w.count(RateLimited)
		e.logQuery(from, client, resolver, nil, w.q.Name(), w.q.QType, querylog.Refused, rcodeRefused, netip.AddrPort{}, 0)
		return w.reply(rcodeRefused, nil, 0, false)
	}
	w.fq = filter.Query{Name: w.q.Name(), QType: w.q.QType, Client: client.Addr()}
	w.cur = nil
	if e.cfg.Attrib != nil && from != viaNone {
		o, held := w.owner(msg, client, resolver, from)
		if held {
			return outDrop // decided when its process is known
		}
		w.cur = o
		setProcess(&w.fq, o)
	}
	d := e.filter.DecideQuery(&w.fq)
	if w.q.EDNSVersion != 0 && d.Action != filter.Forward {
		// dnstun answers this one itself, and speaks EDNS version 0 only
		// (RFC 6891 §6.1.3): BADVERS, with an OPT of version 0. Forwarded
		// queries get their upstream's answer to the version.
		w.count(BadVers)
		e.logQuery(from, client, resolver, w.cur, w.q.Name(), w.q.QType, querylog.Malformed, rcodeBadVers&0xf, netip.AddrPort{}, 0)
		return w.reply(rcodeBadVers, nil, 0, false)
	}
	switch d.Action {
	case filter.Block:
		w.count(Blocked)
		e.blockReply(&d, &w.r)
		e.logQuery(from, client, resolver, w.cur, w.q.Name(), w.q.QType, querylog.Blocked, w.r.Rcode, netip.AddrPort{}, 0)
		return outAnswer
	case filter.Answer:
		if len(d.CNAME) > 0 && len(d.Addrs) == 0 && d.Rcode == 0 && w.q.QType != typeCNAME {
			// A CNAME rewrite: the target is resolved through the
			// normal path, and the answer spliced under the client's name.
			w.count(Rewritten)
			return w.forwardAlias(msg, client, resolver, from, &d)
		}
		w.count(Local)
		ttl := d.TTL
		if ttl == 0 {
			ttl = e.cfg.LocalTTL
		}
		w.r = packet.Reply{Rcode: d.Rcode, TTL: ttl, Addrs: d.Addrs, CNAME: d.CNAME, PTR: d.PTR, TXT: d.TXT, EDE: d.EDE, HasEDE: d.EDE != 0}
		e.logQuery(from, client, resolver, w.cur, w.q.Name(), w.q.QType, querylog.Local, d.Rcode, netip.AddrPort{}, 0)
		return outAnswer
	}
	if e.cfg.Cache != nil && !e.passThrough(w.q.Name(), resolver, from) {
		if out := w.fromCache(msg, client, resolver, from); out != outDrop {
			return out
		}
	}
	return w.forward(msg, client, resolver, from)
}

// testHookBeforeInsert, when set by a test, runs just before a forwarded
// query is recorded: it lets a test close the engine exactly between the
// reader's check of closing and the insert.
var testHookBeforeInsert func(*Engine)

// blockReply fills r with the block answer d asks for: the rule's or list's
// mode, else the engine's; its TTL, else the engine's; its EDE, else
// Blocked (RFC 8914), sent when the query had EDNS.
func (e *Engine) blockReply(d *filter.Decision, r *packet.Reply) {
	mode := d.Mode
	addrs := d.Addrs
	if mode == filter.ModeDefault {
		mode, addrs = e.cfg.BlockMode, e.cfg.BlockAddrs
	}
	ttl := d.TTL
	if ttl == 0 {
		ttl = e.cfg.BlockTTL
	}
	ede := d.EDE
	if ede == 0 {
		ede = edeBlocked
	}
	*r = packet.Reply{TTL: ttl, EDE: ede, HasEDE: true}
	switch mode {
	case filter.ModeNull:
		r.Addrs = nullAddrs
	case filter.ModeCustom:
		r.Addrs = addrs
	case filter.ModeRefused:
		r.Rcode = rcodeRefused
	case filter.ModeNoData:
	default:
		r.Rcode = rcodeNXDomain
	}
}

// reply fills w.r for an answer to the current query.
func (w *worker) reply(rcode uint8, addrs []netip.Addr, ttl uint32, blocked bool) outcome {
	w.r = packet.Reply{Rcode: rcode, TTL: ttl, Addrs: addrs, EDE: edeBlocked, HasEDE: blocked}
	return outAnswer
}

// forward records the query in the pending table and sends it upstream.
// The query leaves with a fresh random ID written into msg; the table
// keeps a copy for retries and SERVFAIL.
func (w *worker) forward(msg []byte, client, resolver netip.AddrPort, from via) outcome {
	e := w.e
	if e.closing.Load() {
		e.logQuery(from, client, resolver, w.cur, w.q.Name(), w.q.QType, querylog.Failed, rcodeServFail, netip.AddrPort{}, 0)
		return w.reply(rcodeServFail, nil, 0, false)
	}
	if len(msg) > MaxQuery {
		w.count(TooLarge)
		e.logQuery(from, client, resolver, w.cur, w.q.Name(), w.q.QType, querylog.Refused, rcodeRefused, netip.AddrPort{}, 0)
		return w.reply(rcodeRefused, nil, 0, false)
	}
	return w.send(&w.q, msg, client, resolver, from, nil, 0)
}

// send chooses the upstream(s) for the query msg (read into q), records it
// and sends it. alias is a CNAME rewrite's client name (nil otherwise).
func (w *worker) send(q *packet.Question, msg []byte, client, resolver netip.AddrPort, from via, alias []byte, aliasTTL uint32) outcome {
	e := w.e
	r := &w.req
	r.client, r.resolver, r.from, r.alias, r.aliasTTL = client, resolver, from, alias, aliasTTL
	r.now, r.perTry, r.total = e.now(), int64(e.cfg.UpstreamTimeout), int64(e.cfg.TotalTimeout)
	r.cb = -1
	if from != viaNone {
		// The client's share of the table (clients.go).
		cb := e.clients.bucket(client.Addr())
		if !e.clients.hold(cb) {
			w.count(ClientFull)
			e.logQuery(from, client, resolver, w.cur, q.Name(), q.QType, querylog.Refused, rcodeRefused, netip.AddrPort{}, 0)
			return w.reply(rcodeRefused, nil, 0, false)
		}
		r.cb = int32(cb)
	}
	if !e.chooseUpstream(q.Name(), resolver, from, r) {
		e.clients.releaseOf(r.cb)
		if from == viaNone {
			return outDrop
		}
		e.logQuery(from, client, resolver, w.cur, w.q.Name(), w.q.QType, querylog.Failed, rcodeServFail, netip.AddrPort{}, 0)
		return w.reply(rcodeServFail, nil, 0, false) // no upstream to ask
	}
	r.hasFlip = e.cfg.Case0x20
	if r.hasFlip {
		randomizeCase(msg, q.End-4, &r.flip)
	}
	failed := uint32(0)
	for i := range r.nAtt {
		if e.prepare(r.sl[i], &r.att[i], from) != nil {
			failed |= 1 << i
		}
	}
	if testHookBeforeInsert != nil {
		testHookBeforeInsert(e)
	}
	id, res := e.pending.insert(w.shard, q, msg, r)
	if res != insertOK {
		e.clients.releaseOf(r.cb)
		for i := range r.nAtt {
			if r.att[i].sock != 0 {
				e.pool.Unpick(r.att[i].sock)
			}
		}
		if r.hasFlip {
			unflip(msg, &r.flip)
		}
		if from == viaNone {
			return outDrop // a refresh: the entry expires as it would have
		}
		if res == insertClosed {
			// The engine closed after this query was read: SERVFAIL, as
			// every query still waiting gets.
			e.logQuery(from, client, resolver, w.cur, q.Name(), q.QType, querylog.Failed, rcodeServFail, netip.AddrPort{}, 0)
			return w.reply(rcodeServFail, nil, 0, false)
		}
		w.count(Full)
		e.logQuery(from, client, resolver, w.cur, q.Name(), q.QType, querylog.Refused, rcodeRefused, netip.AddrPort{}, 0)
		return w.reply(rcodeRefused, nil, 0, false)
	}
	w.count(Forwarded)
	for i := range r.nAtt {
		if failed&(1<<i) != 0 || e.transmit(r.sl[i], r.att[i], from, msg) != nil {
			e.pending.expediteID(id, int(r.att[i].up))
			e.wakeSweeper()
		}
	}
	return outForward
}

// isTCP reports whether the IP packet pkt (already checked to be a well
// formed IPv4 or IPv6 header by the decoder) carries TCP.
func isTCP(pkt []byte) bool {
	const protoTCP = 6
	if pkt[0]>>4 == 4 {
		return pkt[9] == protoTCP
	}
	return pkt[6] == protoTCP
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

// passThrough reports whether a query for name that client sent to
// resolver goes to that resolver itself (capture, following the system):
// such answers are neither taken from nor put into the cache, which holds
// the configured upstreams' answers only.
func (e *Engine) passThrough(name []byte, resolver netip.AddrPort, from via) bool {
	return e.cfg.PassThrough && from != viaFlow && from != viaNone && !e.isOwnResolver(resolver.Addr()) && e.route.Load().groupFor(name) == 0
}

// chooseUpstream picks where a query for name goes, into r: in
// pass-through, a captured query goes to the resolver it was sent to
// (fixed: every attempt there); otherwise to its domain's group of
// upstreams, by the strategy. It returns false when there is none.
func (e *Engine) chooseUpstream(name []byte, resolver netip.AddrPort, from via, r *request) bool {
	rt := e.route.Load()
	r.fixed, r.parallel, r.group = false, false, 0
	if e.cfg.PassThrough && from != viaFlow && from != viaNone && !e.isOwnResolver(resolver.Addr()) {
		// A routed domain keeps its upstreams in capture too.
		if r.group = rt.groupFor(name); r.group == 0 {
			if up, s := e.upstreamFor(resolver); up >= 0 {
				r.fixed = true
				r.att[0], r.sl[0], r.nAtt = attempt{up: uint8(up), at: r.now}, s, 1
				return true
			}
		}
	} else {
		r.group = rt.groupFor(name)
	}
	if !e.pick(rt.group(r.group), r.now, r) {
		return false
	}
	r.parallel = r.nAtt > 1
	return true
}

// forwardAlias asks the upstream for a rewrite's target instead of the
// client's name; the reply is spliced under the client's name (see
// receiver.deliver). The query keeps the client's header and additional
// section (EDNS), only the question changes.
func (w *worker) forwardAlias(msg []byte, client, resolver netip.AddrPort, from via, d *filter.Decision) outcome {
	e := w.e
	q := &w.q
	nameEnd := q.End - 4 // QTYPE and QCLASS follow the name
	size := dnsHeaderLen + len(d.CNAME) + 4 + (len(msg) - q.End)
	if size > MaxQuery || len(d.CNAME) > packet.MaxName {
		w.count(TooLarge)
		e.logQuery(from, client, resolver, w.cur, q.Name(), q.QType, querylog.Refused, rcodeRefused, netip.AddrPort{}, 0)
		return w.reply(rcodeRefused, nil, 0, false)
	}
	b := w.abuf[:size]
	n := copy(b, msg[:dnsHeaderLen])
	n += copy(b[n:], d.CNAME)
	n += copy(b[n:], msg[nameEnd:q.End])
	copy(b[n:], msg[q.End:])
	if packet.ReadQuestion(b, &w.q2) != packet.OK {
		e.logQuery(from, client, resolver, w.cur, q.Name(), q.QType, querylog.Failed, rcodeServFail, netip.AddrPort{}, 0)
		return w.reply(rcodeServFail, nil, 0, false)
	}
	ttl := d.TTL
	if ttl == 0 {
		ttl = e.cfg.LocalTTL
	}
	return w.send(&w.q2, b, client, resolver, from, msg[dnsHeaderLen:nameEnd], ttl)
}

// SPDX-License-Identifier: MIT

package engine

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"syscall"
	"time"

	"github.com/dnstun/dnstun/filter"
	"github.com/dnstun/dnstun/packet"
	"github.com/dnstun/dnstun/querylog"
	"github.com/dnstun/dnstun/tap"
	"github.com/dnstun/dnstun/tun"
	"github.com/dnstun/dnstun/upstream"
)

// Health: an upstream whose attempts time out this many times in a row, or
// that refuses (ICMP port unreachable), is skipped as first choice for
// downFor; queries still fail over to it when the others fail too.
const (
	downAfterTimeouts = 3
	downFor           = 10 * time.Second
)

// routineRead reads batches from dev, the TUN or one of its queues, runs
// step on each packet, and writes the in-place answers back once per batch,
// on dev: the kernel keeps steering a flow to the queue its answers are
// written on. Each queue has its own reader, worker and batch; read counts
// its packets, and shard is the queue's number: its queries go into that
// shard of the pending table.
func (e *Engine) routineRead(dev tun.Device, read *queueCount, shard int) error {
	w := newWorker(e)
	w.shard = shard
	b := tun.NewBatch(dev.BatchSize())
	for {
		n, err := dev.Read(b.Bufs, b.Sizes, tun.Headroom)
		if err != nil {
			if e.closing.Load() || errors.Is(err, os.ErrClosed) {
				return err
			}
			e.count(ReadErrors)
			if e.logLimit.allow(e.now()) {
				e.log.Warn("tun read failed; continuing", "err", err)
			}
			if !errors.Is(err, tun.ErrTooManySegments) && n == 0 {
				continue
			}
		}
		read.n.Add(uint64(n))
		var start int64
		if e.cfg.Metrics {
			start = e.now()
		}
		b.Out = b.Out[:0]
		cached := 0
		for i := range n {
			if m := w.step(b.Bufs[i][tun.Headroom:], b.Sizes[i]); m > 0 {
				b.Out = append(b.Out, b.Bufs[i][:tun.Headroom+m])
				if w.out == outCached {
					cached++
				}
			}
		}
		if len(b.Out) > 0 {
			if _, err := dev.Write(b.Out, tun.Headroom); err != nil {
				e.count(WriteErrors)
			}
			if e.cfg.Metrics {
				e.observeBatch(e.now()-start, len(b.Out)-cached, cached)
			}
		}
	}
}

// observeBatch counts the latency d of a batch's answers: local ones
// answered in the step, and cached ones.
func (e *Engine) observeBatch(d int64, local, cached int) {
	if local > 0 {
		e.metrics.latency[PathLocal].observe(d, uint64(local))
	}
	if cached > 0 {
		e.metrics.latency[PathCache].observe(d, uint64(cached))
	}
}

// receiver is the scratch state of one goroutine delivering upstream
// answers.
type receiver struct {
	e    *Engine
	buf  []byte
	bufs [1][]byte
	q    packet.Question
	m    match
	ans  packet.Answers
	r    packet.Reply
	out  []byte // a spliced CNAME-rewrite reply
	lane *lane  // the receiver's counters
	// batch, when set, collects the answers for the TUN: the receive loop
	// writes a whole batch with one Device.Write (writeBatch).
	batch *tunBatch
}

// tunBatch is the answers for the TUN one receive batch produced, written
// together, and when each one's query was decided (for its latency).
type tunBatch struct {
	out    [recvBatch][]byte
	starts [recvBatch]int64
	n      int
}

// replyOff is where an upstream reply is read into a receive buffer: room
// for the TUN headroom and the largest IP+UDP header in front, so that
// packet.WrapReply prepends the headers without copying the reply.
const replyOff = tun.Headroom + packet.MaxHeaderLen

// recvBatch is how many answers one receive call may return.
const recvBatch = 8

// routineReceive delivers the answers of every plain UDP upstream socket.
func (e *Engine) routineReceive() {
	defer e.wg.Done()
	defer e.recvWG.Done()
	var ms [recvBatch]upstream.Msg
	rs := make([]receiver, recvBatch)
	batch := new(tunBatch)
	lane := e.stats.newLane()
	for i := range ms {
		rs[i] = receiver{e: e, buf: make([]byte, replyOff+tun.MaxPacket), batch: batch, lane: lane}
		ms[i] = upstream.Msg{Buf: rs[i].buf, Off: replyOff}
	}
	for {
		n, err := e.pool.Recv(ms[:])
		if err != nil {
			if upstream.IsClosed(err) || e.closing.Load() {
				return
			}
			e.count(RecvErrors)
			if e.logLimit.allow(e.now()) {
				e.log.Warn("upstream receive failed", "err", err)
			}
			continue
		}
		for i := range n {
			m := &ms[i]
			up, sl := e.slotOfDest(m.Dest)
			if sl == nil {
				e.count(Unmatched)
				continue
			}
			if m.Err != nil {
				e.count(RecvErrors)
				if errors.Is(m.Err, syscall.ECONNREFUSED) {
					// The upstream answered the query on this socket
					// with ICMP port unreachable: it is down. Move that
					// query on now (only it: another socket's refusal
					// would be a forger's guess).
					sl.downUntil.Store(e.now() + int64(downFor))
					e.pending.expediteSock(up, m.Sock)
					e.wakeSweeper()
				} else if e.logLimit.allow(e.now()) {
					e.log.Warn("upstream receive failed", "upstream", m.Dest.Addr(), "err", m.Err)
				}
				continue
			}
			if rs[i].deliver(m.Buf, m.N, up, m.Sock) {
				e.pool.Answered(m.Sock)
			}
		}
		e.writeBatch(batch)
	}
}

// writeBatch writes the answers b holds into the TUN, with one Device.Write,
// and counts their latency.
func (e *Engine) writeBatch(b *tunBatch) {
	if b.n == 0 {
		return
	}
	if _, err := e.dev.Write(b.out[:b.n], tun.Headroom); err != nil {
		e.count(WriteErrors)
	}
	for _, start := range b.starts[:b.n] {
		e.observeForward(start)
	}
	clear(b.out[:b.n])
	b.n = 0
}

// slotOfDest returns the plain upstream d and its table index, or nil.
func (e *Engine) slotOfDest(d *upstream.Dest) (int, *slot) {
	for i := range e.slots {
		if s := e.slots[i].Load(); s != nil && s.dest == d {
			return i, s
		}
	}
	return -1, nil
}

// deliver matches one upstream reply of n bytes (at buf[replyOff:]) that
// arrived from upstream up on socket sock to its pending query, and writes
// it to the client. It reports whether the reply was taken.
func (r *receiver) deliver(buf []byte, n, up int, sock uint32) bool {
	e := r.e
	msg := buf[replyOff : replyOff+n]
	if packet.ReadReply(msg, &r.q) != packet.OK {
		r.lane.add(Unmatched)
		return false
	}
	if !packet.WellFormed(msg, r.q.End) {
		// A record cut short, a count that lies: not an answer. The
		// query stays waiting and moves on at the upstream's timeout, as
		// for any reply that does not match.
		r.lane.add(UpstreamMalformed)
		return false
	}
	now := e.now()
	switch e.pending.take(&r.q, msg, up, sock, now, &r.m) {
	case takeOK:
		if e.cfg.Tap != nil {
			e.tapUpstream(tap.ForwarderResponse, e.slots[up].Load(), r.m.via, msg)
		}
	case takeHeld:
		r.lane.add(Held)
		return true
	case takeCase:
		r.lane.add(CaseMismatch)
		return false
	default:
		r.lane.add(Unmatched)
		return false
	}
	for _, o := range r.m.others[:r.m.nOthers] {
		// The query's other attempts' sockets: no answer will be taken on
		// them, so the pool may close them now.
		e.pool.Answered(o)
	}
	if s := e.slots[up].Load(); s != nil {
		s.answers.Add(1)
		if s.timeouts.Load() != 0 {
			s.timeouts.Store(0)
		}
		if d := s.downUntil.Load(); d != 0 && s.downUntil.CompareAndSwap(d, 0) {
			e.log.Info("upstream reachable now: it answered", "upstream", s.url)
		}
		if e.cfg.Metrics {
			s.latency.observe(r.m.rtt, 1)
		}
		// An average over about the last 8 answers.
		old := s.rtt.Load()
		if old == 0 {
			s.rtt.Store(r.m.rtt)
		} else {
			s.rtt.Store(old + (r.m.rtt-old)/8)
		}
	}
	if r.m.hasFlip {
		unflip(msg, &r.m.flip)
	}
	if c := e.cfg.Cache; c != nil && !r.m.fixed && r.m.aliasLen == 0 {
		// As the upstream gave it, before inspection (which depends on
		// the client, and is redone on every hit) and before it is cut
		// to the client's size. An answer the cache does not take (TC,
		// SERVFAIL, no SOA...) is still delivered.
		c.Store(msg, now)
	}
	if r.m.via == viaNone {
		return true // a refresh: the cache was all it was for
	}
	if r.m.aliasLen > 0 {
		// A CNAME rewrite: the reply was for the target; give it the
		// client's question, with the CNAME first (slow path).
		if r.out == nil {
			r.out = make([]byte, tun.MaxPacket)
		}
		m, err := upstream.SpliceAlias(msg, r.m.alias[:r.m.aliasLen], r.m.aliasTTL, r.out)
		if err != nil || m > len(buf)-replyOff {
			// The query is taken: its client gets SERVFAIL now, not
			// silence until its own timeout.
			r.lane.add(UpstreamMalformed)
			if k := r.aliasServfail(msg); k > 0 {
				binary.BigEndian.PutUint16(buf[replyOff:], r.m.origID)
				r.lane.add(ServFail)
				e.logQuery(r.m.via, r.m.client, r.m.resolver, nil, r.q.Name(), r.q.QType, querylog.Failed, rcodeServFail, netip.AddrPort{}, r.m.start)
				e.send(buf, &r.bufs, k, r.m.via, r.m.resolver, r.m.client)
			}
			return true
		}
		n = copy(buf[replyOff:], r.out[:m])
		msg = buf[replyOff : replyOff+n]
	} else if packet.ReadAnswers(msg, &r.q, &r.ans) && len(r.ans.Addrs())+len(r.ans.Names()) > 0 {
		// Response inspection: CNAME cloaking and IP rules.
		if d := e.filter.InspectAnswer(r.ans.Names(), r.ans.Addrs(), r.m.client.Addr()); d.Action == filter.Block {
			r.lane.add(AnswerBlocked)
			e.blockReply(&d, &r.r)
			if m := packet.AnswerDNS(buf[replyOff:], &r.q, &r.r); m > 0 {
				n = m
				msg = buf[replyOff : replyOff+n]
			}
		}
	}
	if n > int(r.m.limit) {
		// Larger than the client may receive over UDP (a spliced CNAME
		// rewrite, or an upstream ignoring the query's size): the client
		// gets TC and asks again over TCP.
		if n = packet.Truncate(msg, r.q.End); n == 0 {
			r.lane.add(Unmatched)
			return true
		}
		msg = msg[:n]
		r.lane.add(Truncated)
	}
	binary.BigEndian.PutUint16(msg, r.m.origID)
	r.lane.add(Replied)
	var from netip.AddrPort
	if s := e.slots[up].Load(); s != nil {
		from = s.addr
	}
	e.logQuery(r.m.via, r.m.client, r.m.resolver, nil, r.q.Name(), r.q.QType, querylog.Forwarded, uint8(r.q.Flags&0xf), from, r.m.start)
	if b := r.batch; b != nil && r.m.via == viaTUN {
		// Written with the rest of the receive batch.
		if e.cfg.Tap != nil {
			e.tapClient(tap.ClientResponse, viaTUN, r.m.client, r.m.resolver, msg)
		}
		if p := e.wrapTUN(buf, n, r.m.resolver, r.m.client); p != nil {
			b.out[b.n], b.starts[b.n] = p, r.m.start
			b.n++
		}
		return true
	}
	e.send(buf, &r.bufs, n, r.m.via, r.m.resolver, r.m.client)
	e.observeForward(r.m.start)
	return true
}

// aliasServfail writes, over the reply msg (at buf[replyOff:]), a SERVFAIL
// for the question the client of a CNAME rewrite asked (its name, and the
// type and class of the target's question), and returns its length; 0 if
// it cannot be built.
func (r *receiver) aliasServfail(msg []byte) int {
	if r.q.End < dnsHeaderLen+4 || r.q.End > len(msg) {
		return 0
	}
	out := msg[:cap(msg)]
	var tail [4]byte
	copy(tail[:], msg[r.q.End-4:r.q.End])
	n := dnsHeaderLen + copy(out[dnsHeaderLen:], r.m.alias[:r.m.aliasLen])
	n += copy(out[n:], tail[:])
	out[2] &^= 0x80 // a query again (QR 0), as the client sent it
	binary.BigEndian.PutUint16(out[4:], 1)
	for _, off := range []int{6, 8, 10} {
		binary.BigEndian.PutUint16(out[off:], 0)
	}
	if packet.ReadQuestion(out[:n], &r.q) != packet.OK {
		return 0
	}
	r.r = packet.Reply{Rcode: rcodeServFail}
	return packet.AnswerDNS(out[:min(len(out), MaxQuery+512)], &r.q, &r.r)
}

// send delivers the DNS message buf[replyOff:replyOff+n] to client: through
// the flow socket, or wrapped into IP/UDP from resolver and written into the
// TUN. bufs is the caller's one-element batch.
func (e *Engine) send(buf []byte, bufs *[1][]byte, n int, to via, resolver, client netip.AddrPort) {
	if e.cfg.Tap != nil {
		e.tapClient(tap.ClientResponse, to, client, resolver, buf[replyOff:replyOff+n])
	}
	if to == viaTCP {
		e.tcp.deliver(client, resolver, buf[replyOff:replyOff+n])
		return
	}
	if to == viaFlow {
		if _, err := e.flow.WriteToUDPAddrPort(buf[replyOff:replyOff+n], client); err != nil {
			e.count(WriteErrors)
		}
		return
	}
	if bufs[0] = e.wrapTUN(buf, n, resolver, client); bufs[0] == nil {
		return
	}
	if _, err := e.dev.Write(bufs[:], tun.Headroom); err != nil {
		e.count(WriteErrors)
	}
}

// wrapTUN puts the IP and UDP headers from resolver to client in front of
// the answer of n bytes at buf[replyOff:] and returns the packet with its
// headroom, ready for Device.Write; nil (counted) if it cannot.
func (e *Engine) wrapTUN(buf []byte, n int, resolver, client netip.AddrPort) []byte {
	start := packet.WrapReply(buf, replyOff, n, resolver, client)
	if start < tun.Headroom {
		e.count(WriteErrors)
		return nil
	}
	return buf[start-tun.Headroom : replyOff+n]
}

func (e *Engine) wakeSweeper() {
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// sweepBatch is how many expired queries the sweeper copies out per lock.
const sweepBatch = 32

// sweeper holds the sweeper's buffers: expired queries copied out of the
// table, and a packet buffer for SERVFAIL answers.
type sweeper struct {
	e    *Engine
	out  [sweepBatch]expired
	buf  []byte
	bufs [1][]byte
	q    packet.Question
	r    packet.Reply
}

func newSweeper(e *Engine) *sweeper {
	// Room for a stale answer from the cache, as large as TCP allows.
	return &sweeper{e: e, buf: make([]byte, replyOff+packet.StreamLimit)}
}

// routineSweep moves queries whose attempt timed out to the next upstream,
// or answers SERVFAIL when their time is up.
func (e *Engine) routineSweep() {
	defer e.wg.Done()
	s := newSweeper(e)
	tick := time.NewTicker(sweepInterval(e.cfg.UpstreamTimeout))
	defer tick.Stop()
	nextReap := e.now() + int64(time.Second)
	for {
		select {
		case <-e.closed:
			return
		case <-tick.C:
		case <-e.kick:
		}
		now := e.now()
		e.coarse.Store(now)
		s.sweep()
		e.pool.Reap(time.Now())
		if now >= nextReap {
			nextReap = now + int64(time.Second)
			e.reapIdle(now)
		}
	}
}

// sweepInterval is the deadline granularity: a tenth of the per-upstream
// timeout, between 10 and 100 ms.
func sweepInterval(perTry time.Duration) time.Duration {
	return min(max(perTry/10, 10*time.Millisecond), 100*time.Millisecond)
}

func (s *sweeper) sweep() {
	e := s.e
	for {
		now := e.now()
		n, done := e.pending.sweep(now, int64(e.cfg.UpstreamTimeout), e.route.Load(), s.out[:])
		for i := range n {
			x := &s.out[i]
			if !x.retry {
				s.servfail(x)
				continue
			}
			e.count(Retried)
			if e.cfg.Cache != nil && x.via != viaNone && s.serveStale(x) {
				// The upstream is slow and an expired answer is at
				// hand (RFC 8767): the client has it now; the query
				// goes on, and its answer only refreshes the cache.
				e.pending.detach(x.id)
			}
			if sl := e.slots[x.prev].Load(); sl != nil {
				sl.expired.Add(1)
				if sl.timeouts.Add(1) >= downAfterTimeouts {
					sl.downUntil.Store(now + int64(downFor))
				}
			}
			a, sl := attempt{up: x.up, at: now}, e.slots[x.up].Load()
			if x.up == x.prev && sl != nil && (sl.ex != nil || x.via == viaTCP) {
				// The same stream or encrypted transport: it still
				// carries the query (it fails it, or the total timeout
				// ends it); a second copy would only be refused.
				continue
			}
			if err := e.prepare(sl, &a, x.via); err != nil {
				e.pending.expediteID(x.id, int(x.up))
				e.wakeSweeper()
				continue
			}
			if !e.pending.addAttempt(x.id, int(x.up), a.sock, now) {
				if a.sock != 0 {
					e.pool.Unpick(a.sock)
				}
				continue // answered meanwhile
			}
			if err := e.transmit(sl, a, x.via, x.query[:x.qlen]); err != nil {
				e.pending.expediteID(x.id, int(x.up))
				e.wakeSweeper()
			}
		}
		if done {
			return
		}
	}
}

// servfail answers the client of an expired query with SERVFAIL, built from
// the stored query.
func (s *sweeper) servfail(x *expired) {
	e := s.e
	if x.via == viaNone {
		return // a cache refresh that failed: the entry expires as it would have
	}
	if s.serveStale(x) {
		return
	}
	e.count(ServFail)
	msg := s.buf[replyOff:]
	n := s.clientQuery(x)
	if n == 0 {
		return // cannot happen: the query was read before it was stored
	}
	if x.aliasLen > 0 {
		// A CNAME rewrite: answer the client's question, not the target's.
		var tail [4]byte
		copy(tail[:], msg[s.q.End-4:s.q.End])
		n = dnsHeaderLen + copy(msg[dnsHeaderLen:], x.alias[:x.aliasLen])
		n += copy(msg[n:], tail[:])
		binary.BigEndian.PutUint16(msg[10:], 0) // no additional records
		if packet.ReadQuestion(msg[:n], &s.q) != packet.OK {
			return
		}
	}
	s.r = packet.Reply{Rcode: rcodeServFail}
	e.logQuery(x.via, x.client, x.resolver, nil, s.q.Name(), s.q.QType, querylog.Failed, rcodeServFail, netip.AddrPort{}, x.start)
	// The answer may not grow past the stored query's buffer.
	m := packet.AnswerDNS(msg[:MaxQuery+512], &s.q, &s.r)
	if m == 0 {
		return
	}
	e.send(s.buf, &s.bufs, m, x.via, x.resolver, x.client)
	e.observeForward(x.start)
}

// observeForward counts the latency of a forwarded query's answer, just
// written: from its decision (start, engine clock) to now.
func (e *Engine) observeForward(start int64) {
	if e.cfg.Metrics {
		e.metrics.latency[PathForward].observe(e.now()-start, 1)
	}
}

// clientQuery copies the stored query of x into the sweeper's buffer as
// its client sent it (the client's ID and letter case), reads it into s.q,
// and returns its length; 0 if it does not read.
func (s *sweeper) clientQuery(x *expired) int {
	msg := s.buf[replyOff:]
	n := copy(msg, x.query[:x.qlen])
	binary.BigEndian.PutUint16(msg, x.origID)
	if x.hasFlip {
		unflip(msg[:n], &x.flip)
	}
	if packet.ReadQuestion(msg[:n], &s.q) != packet.OK {
		return 0
	}
	return n
}

// failAll answers SERVFAIL to every query still waiting; used on Close,
// after the upstream sockets are closed and the receivers have stopped.
// The table is closed first: a query the reader decided to forward before
// it saw the engine closing finds it closed and gets SERVFAIL at once,
// instead of waiting in a table nobody sweeps again.
func (e *Engine) failAll() {
	e.pending.close()
	s := newSweeper(e)
	for {
		// A deadline in the far future makes every entry expire for good.
		const forever = int64(1) << 62
		n, done := e.pending.sweep(forever, 0, e.route.Load(), s.out[:])
		for i := range n {
			s.servfail(&s.out[i])
		}
		if done {
			return
		}
	}
}

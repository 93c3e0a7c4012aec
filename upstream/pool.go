// SPDX-License-Identifier: MIT

package upstream

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dnstun/dnstun/internal/fdref"
)

// PoolOptions tune a Pool. Zero fields take the defaults documented on each.
type PoolOptions struct {
	// Mark is the SO_MARK every socket carries on Linux (see Mark); 0
	// leaves sockets unmarked. Ignored on darwin, where upstream sockets
	// cannot loop into the utun (see control_darwin.go).
	Mark uint32
	// QueriesPerSocket retires a socket after it has sent this many
	// queries. The default, 1, gives every query a fresh random source
	// port, as unbound does: an off-path attacker must then guess the port
	// as well as the ID.
	QueriesPerSocket int
	// SocketsPerDest is how many sockets of an upstream are in service at
	// once; each query goes out on one picked at random, so queries sent
	// one after the other do not share a port they could be matched by.
	// Default 1; at most MaxSocketsPerDest.
	SocketsPerDest int
	// SocketLife retires a socket this long after it was opened, whatever
	// its count. Default 10s.
	SocketLife time.Duration
	// Linger is how long a retired socket stays open for answers still
	// due; it closes earlier once every query it sent was Answered.
	// Default 5s; the engine passes its total query timeout.
	Linger time.Duration
	// MaxSockets bounds the sockets open at once, all destinations
	// together (and so the file descriptors the pool holds). At the
	// bound, Send keeps using a destination's current socket past its
	// budget instead of failing. Default 4096, or half the open-file limit
	// if that is lower; at most MaxPoolSockets.
	MaxSockets int
}

// MaxPoolSockets is the largest PoolOptions.MaxSockets: the socket table is
// allocated whole at NewPool, two entries per socket.
const MaxPoolSockets = 1 << 16

// MaxSocketsPerDest is the largest PoolOptions.SocketsPerDest.
const MaxSocketsPerDest = 256

// poolOtherFiles is what NewPool leaves of the open-file limit to the rest
// of the process (TUN, netlink, control socket, TCP upstreams, clients).
const poolOtherFiles = 256

// PoolStats are a Pool's counters since NewPool.
type PoolStats struct {
	Open             uint64 // sockets open now
	MaxOpen          uint64 // the most sockets open at once
	Opened           uint64 // sockets opened
	OpenErrors       uint64 // sockets that could not be opened
	Retired          uint64 // sockets retired because their budget or life was spent
	ClosedAnswered   uint64 // retired sockets closed because every query on them was answered
	ClosedLinger     uint64 // retired sockets closed by Reap with queries unanswered
	ReusedPastBudget uint64 // queries put on a spent socket because MaxSockets was reached
	NoSocket         uint64 // Sends refused: MaxSockets reached and the destination had no socket
	SendRetried      uint64 // Sends repeated once because the socket reported an earlier query's ICMP error
	Truncated        uint64 // answers larger than their buffer, dropped
}

// Errors of Send and Recv. They are preallocated: the hot path returns
// them without allocating.
var (
	// ErrPoolFull: MaxSockets sockets are open and the destination has
	// none of its own to reuse. Lingering sockets free up after Linger
	// (Reap) or once their queries are Answered.
	ErrPoolFull = errors.New("upstream pool: MaxSockets sockets are open and this upstream has none yet; raise MaxSockets or lower Linger")
	// ErrReleased: Send on a Dest after Release. Register the address
	// again with Pool.Dest.
	ErrReleased = errors.New("upstream pool: upstream released; register it again with Pool.Dest")
	// ErrSocketClosed: SendOn or Unpick on a socket that has closed since
	// Pick (its Dest was released, or Linger passed in between).
	ErrSocketClosed = errors.New("upstream pool: the picked socket closed before the query was sent; pick again")

	errForeignDest = errors.New("upstream pool: a Dest of another pool (or nil)")
	errNoMsgs      = errors.New("upstream pool: Recv needs at least one Msg")
	errMsgBuf      = errors.New("upstream pool: Recv needs Msg.Buf[Msg.Off:] to hold at least one byte")
	errRecvTwice   = errors.New("upstream pool: Recv called from two goroutines at once; the pool has one receiver")
)

// Pool sends queries to upstream resolvers from connected UDP sockets with
// random source ports, and receives their answers in batches.
//
// Every socket is connected to its upstream, so the kernel drops datagrams
// from any other address or port, and its port is the kernel's random pick
// (connect binds an unbound socket to a random ephemeral port). Each
// upstream has SocketsPerDest sockets in service, and each query goes out
// on one of them picked at random. A socket is
// retired once it has sent QueriesPerSocket queries or lived SocketLife;
// it stays open, so answers still due arrive, until all its queries are
// Answered or Linger has passed (Reap). MaxSockets bounds the sockets open
// at once.
//
// Every method may be called from any goroutine, except Recv: one
// goroutine at a time. Send (or Pick and SendOn), Answered, Reap and Recv
// do not allocate, opening and closing sockets included; only a failure to
// open a socket allocates, to describe it. Locks are held briefly and
// never across a blocking call: a Dest's own lock around choosing its
// socket (and opening one), the pool's lock around the socket table's
// bookkeeping; Recv and Answered take no lock but to free a closed slot.
//
// Each socket is known by an id: non-zero, never held by two sockets at
// once, and never repeated before 2^31 more sockets have been opened. An
// id whose socket has closed is ignored by Answered, so the engine may keep
// ids in its pending queries without any bookkeeping of its own.
type Pool struct {
	opt    PoolOptions
	budget uint32
	life   int64 // ns
	linger int64 // ns
	epoch  time.Time

	slots []poolSlot // fixed; a socket's slot is id & mask
	mask  uint32

	mu      sync.Mutex // guards the fields below and poolSlot's used, dest (writes), prev, next, listed, retiredAt
	next    uint32     // the next id to try; ids count up so a closed socket's id comes back as late as possible
	nopen   int        // slots in use, counting sockets still being opened or closed
	head    int32      // oldest retired socket still open, -1 if none
	tail    int32      // newest retired socket still open
	closedM bool

	closed atomic.Bool
	inRecv atomic.Bool

	sys poolSys // the poller and Recv's scratch space, per OS

	st struct {
		open, maxOpen, opened, openErrors, retired, closedAnswered, closedLinger,
		reusedPastBudget, noSocket, sendRetried, truncated atomic.Uint64
	}
}

// poolSlot is one entry of the socket table. A socket's fields (fd, id,
// dest, opened) are written while the slot is unpublished, before ref is
// reset to 0; everyone else reads them only while holding a pin (ref.pin),
// and the socket is closed and the slot freed only once no pin is left.
// So a pinned slot's fd is never closed or reused under its pinner.
type poolSlot struct {
	ref      fdref.Ref
	id       atomic.Uint32 // 0 while free
	sent     atomic.Uint32 // queries picked on it, less those given back; once retired it only goes down
	answered atomic.Uint32
	retired  atomic.Bool
	fd       int
	opened   int64 // ns since the pool's epoch
	dest     *Dest

	// Under Pool.mu.
	used      bool
	listed    bool // on the retired list
	prev      int32
	next      int32
	retiredAt int64
}

// Dest is one upstream address of a Pool.
type Dest struct {
	p    *Pool
	addr netip.AddrPort
	err  error // why no socket can be opened to addr, found at registration
	sys  poolDestSys

	mu       sync.Mutex // serialises Sends to this upstream, so rotation and counts are simple
	cur      []uint32   // ids of the sockets in service (SocketsPerDest); 0 where none
	released bool
}

// Addr returns the upstream's address (unmapped).
func (d *Dest) Addr() netip.AddrPort { return d.addr }

// NewPool returns an empty pool; sockets are opened by Send.
func NewPool(opt PoolOptions) (*Pool, error) {
	if opt.QueriesPerSocket < 0 || opt.SocketsPerDest < 0 || opt.SocketLife < 0 || opt.Linger < 0 || opt.MaxSockets < 0 {
		return nil, fmt.Errorf("upstream pool: negative option in %+v; use 0 for the default", opt)
	}
	if opt.QueriesPerSocket == 0 {
		opt.QueriesPerSocket = 1
	}
	if opt.SocketsPerDest == 0 {
		opt.SocketsPerDest = 1
	}
	if opt.SocketsPerDest > MaxSocketsPerDest {
		return nil, fmt.Errorf("upstream pool: SocketsPerDest %d is above the limit %d", opt.SocketsPerDest, MaxSocketsPerDest)
	}
	if opt.SocketLife == 0 {
		opt.SocketLife = 10 * time.Second
	}
	if opt.Linger == 0 {
		opt.Linger = 5 * time.Second
	}
	// The sockets must fit the open-file limit, with room for the rest
	// of the process: the default shrinks to fit, a value given is
	// refused if it does not.
	limit, limited := poolFileLimit()
	switch room := int64(limit) - poolOtherFiles; {
	case opt.MaxSockets == 0:
		opt.MaxSockets = 4096
		if limited && room < 2*4096 {
			opt.MaxSockets = int(max(room/2, 16))
		}
	case opt.MaxSockets > MaxPoolSockets:
		return nil, fmt.Errorf("upstream pool: MaxSockets %d is above the limit %d", opt.MaxSockets, MaxPoolSockets)
	case limited && int64(opt.MaxSockets) > room:
		return nil, fmt.Errorf("upstream pool: MaxSockets %d does not fit the open-file limit %d (RLIMIT_NOFILE) with %d descriptors left for the rest of dnstun; raise the limit (LimitNOFILE= in the systemd unit, ulimit -n) or lower MaxSockets", opt.MaxSockets, limit, poolOtherFiles)
	}
	if opt.QueriesPerSocket > 1<<30 {
		return nil, fmt.Errorf("upstream pool: QueriesPerSocket %d is above the limit %d", opt.QueriesPerSocket, 1<<30)
	}
	// Twice as many slots as sockets: a free slot is then never more than
	// a few probes away, and ids skipped over busy slots waste at most half
	// of the id space.
	n := 2
	for n < 2*opt.MaxSockets {
		n <<= 1
	}
	p := &Pool{
		opt:    opt,
		budget: uint32(opt.QueriesPerSocket),
		life:   int64(opt.SocketLife),
		linger: int64(opt.Linger),
		epoch:  time.Now(),
		slots:  make([]poolSlot, n),
		mask:   uint32(n - 1),
		next:   1,
		head:   -1,
		tail:   -1,
	}
	for i := range p.slots {
		p.slots[i].ref.Reset(false) // free: nobody may pin it
		p.slots[i].prev, p.slots[i].next = -1, -1
	}
	if err := p.sys.init(); err != nil {
		return nil, err
	}
	return p, nil
}

// Dest registers an upstream address. It opens nothing: the first Send
// does. An address no socket can be opened to (no port, an unknown zone)
// gives a Dest whose Sends fail with an error naming it.
func (p *Pool) Dest(addr netip.AddrPort) *Dest {
	addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	d := &Dest{p: p, addr: addr, cur: make([]uint32, p.opt.SocketsPerDest)}
	if !addr.IsValid() || addr.Port() == 0 {
		d.err = fmt.Errorf("upstream %v: need an IP address and a port", addr)
		return d
	}
	d.err = d.sys.init(addr)
	return d
}

// Release forgets d: its sockets are closed now (answers still due on them
// are lost) and later Sends to d fail with ErrReleased.
func (p *Pool) Release(d *Dest) {
	if d == nil || d.p != p {
		return
	}
	// Taking d.mu waits for a Send opening a socket for d: once we hold
	// it, every socket of d is published and can be closed below.
	d.mu.Lock()
	already := d.released
	d.released = true
	clear(d.cur)
	d.mu.Unlock()
	if already {
		return
	}
	for i := range p.slots {
		s := &p.slots[i]
		p.mu.Lock()
		var id uint32
		if s.used && s.dest == d {
			id = s.id.Load()
		}
		p.mu.Unlock()
		if id != 0 {
			p.closeID(id, nil)
		}
	}
}

// Send writes msg to d from one of d's sockets and returns the socket's id
// (for Answered, and to match Msg.Sock): Pick then SendOn. It does not
// allocate, except to describe a socket it could not open.
func (p *Pool) Send(d *Dest, msg []byte) (sock uint32, err error) {
	sock, err = p.Pick(d)
	if err != nil {
		return 0, err
	}
	if err := p.SendOn(sock, msg); err != nil {
		return 0, err
	}
	return sock, nil
}

// Pick chooses the socket d's next query goes out on and counts the query
// against it; SendOn then sends it, or Unpick gives it back. A caller that
// must record the socket before the query leaves (so that an answer
// arriving at once finds it) picks first.
//
// Pick chooses one of d's SocketsPerDest places at random. It opens a
// fresh socket there when the place has none or its socket has spent its
// budget or life, and retires the old one. At MaxSockets it keeps the old
// one (PoolStats.ReusedPastBudget), or fails with ErrPoolFull if the place
// has none.
// After Close it fails with net.ErrClosed, after Release(d) with
// ErrReleased. It does not allocate, except to describe a socket it could
// not open.
func (p *Pool) Pick(d *Dest) (sock uint32, err error) {
	if d == nil || d.p != p {
		return 0, errForeignDest
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.released {
		return 0, ErrReleased
	}
	if d.err != nil {
		return 0, d.err
	}
	now := p.now()
	i := 0
	if len(d.cur) > 1 {
		i = int(rand.Uint32N(uint32(len(d.cur))))
	}
	id := d.cur[i]
	if id == 0 || p.spent(id, now) {
		nid, err := p.open(d, now)
		switch {
		case err == nil:
			if id != 0 {
				p.retire(id, now)
			}
			id, d.cur[i] = nid, nid
		case err == ErrPoolFull && id != 0:
			p.st.reusedPastBudget.Add(1)
		default:
			if err == ErrPoolFull {
				p.st.noSocket.Add(1)
			}
			return 0, err
		}
	}
	s := p.slotOf(id)
	if !s.ref.Pin() {
		// Only Close shuts a current socket while we hold d.mu.
		return 0, net.ErrClosed
	}
	s.sent.Add(1)
	if s.ref.Unpin() {
		p.finish(s)
	}
	return id, nil
}

// SendOn writes msg on the socket sock returned by Pick. A write error is
// returned as the syscall.Errno, and the query no longer counts against
// the socket. If the socket closed since Pick (Close, Release, or Linger
// passed) it fails with net.ErrClosed or ErrSocketClosed. It does not
// allocate.
func (p *Pool) SendOn(sock uint32, msg []byte) error {
	s := p.slotOf(sock)
	if sock == 0 || !s.ref.Pin() {
		return p.closedErr()
	}
	var err error
	if s.id.Load() != sock {
		err = p.closedErr()
	} else {
		err = p.sys.write(s.fd, msg)
		if err != nil && isPoolAsyncError(err) {
			// A connected UDP socket reports an ICMP error about an
			// earlier query on the next call, send or receive. That error
			// is consumed now, and this query has not left: send again.
			p.st.sendRetried.Add(1)
			err = p.sys.write(s.fd, msg)
		}
		if err != nil {
			p.unsend(s)
		}
	}
	if s.ref.Unpin() {
		p.finish(s)
	}
	return err
}

// Unpick gives back a query Pick counted against sock that will not be
// sent, so that a retired socket still closes as soon as its other
// queries are answered. It does not allocate.
func (p *Pool) Unpick(sock uint32) {
	s := p.slotOf(sock)
	if sock == 0 || !s.ref.Pin() {
		return
	}
	if s.id.Load() == sock {
		p.unsend(s)
	}
	if s.ref.Unpin() {
		p.finish(s)
	}
}

// unsend takes back one query of pinned slot s, closing s if it is retired
// and every query left on it was answered.
func (p *Pool) unsend(s *poolSlot) {
	n := s.sent.Add(^uint32(0))
	if s.retired.Load() && s.answered.Load() >= n {
		if first, _ := s.ref.Shut(); first {
			p.st.closedAnswered.Add(1)
		}
	}
}

func (p *Pool) closedErr() error {
	if p.closed.Load() {
		return net.ErrClosed
	}
	return ErrSocketClosed
}

// spent reports whether the socket id has used its budget or life. id is
// one of d's sockets in service and d.mu is held, so its fields are stable.
func (p *Pool) spent(id uint32, now int64) bool {
	s := p.slotOf(id)
	return s.sent.Load() >= p.budget || now-s.opened >= p.life
}

// open opens a socket to d and returns its id. d.mu is held.
func (p *Pool) open(d *Dest, now int64) (uint32, error) {
	s, id, err := p.claim(d, now)
	if err != nil {
		return 0, err
	}
	fd, err := p.sys.open(d, p.opt.Mark)
	if err != nil {
		p.st.openErrors.Add(1)
		p.mu.Lock()
		p.free(s)
		p.mu.Unlock()
		return 0, err
	}
	s.fd, s.opened = fd, now
	s.sent.Store(0)
	s.answered.Store(0)
	s.retired.Store(false)
	s.id.Store(id)
	s.ref.Reset(true) // publish: from here on the slot may be pinned and shut
	p.st.opened.Add(1)
	// Watch only after publishing, so that Recv can pin the slot as soon
	// as the poller reports it.
	err = p.sys.watch(fd, s, id)
	if err == nil && p.closed.Load() {
		// Close came after claim and found the slot unpublished, so it
		// could not shut it. Close sets closed before it looks at the
		// slot, and we look at closed after publishing: if Close missed
		// the socket, we see closed here.
		err = net.ErrClosed
	}
	if err != nil {
		p.closeID(id, nil)
		return 0, err
	}
	return id, nil
}

// claim reserves a free slot for d and gives it the next id. At the bound
// it first closes retired sockets whose linger has run out.
func (p *Pool) claim(d *Dest, now int64) (*poolSlot, uint32, error) {
	p.mu.Lock()
	if p.nopen >= p.opt.MaxSockets && p.head >= 0 && p.slots[p.head].retiredAt+p.linger <= now {
		p.mu.Unlock()
		p.reap(now)
		p.mu.Lock()
	}
	defer p.mu.Unlock()
	if p.closedM {
		return nil, 0, net.ErrClosed
	}
	if p.nopen >= p.opt.MaxSockets {
		return nil, 0, ErrPoolFull
	}
	// At least half the slots are free, so this ends within a few probes
	// in the common case and within len(p.slots) in any case.
	for {
		id := p.next
		p.next++
		if p.next == 0 {
			p.next = 1
		}
		s := p.slotOf(id)
		if s.used {
			continue
		}
		s.used, s.dest = true, d
		p.nopen++
		p.st.open.Store(uint64(p.nopen))
		if uint64(p.nopen) > p.st.maxOpen.Load() {
			p.st.maxOpen.Store(uint64(p.nopen))
		}
		return s, id, nil
	}
}

// free returns a claimed slot to the table. p.mu is held.
func (p *Pool) free(s *poolSlot) {
	if s.listed {
		p.unlink(s)
	}
	s.used, s.dest = false, nil
	s.id.Store(0)
	p.nopen--
	p.st.open.Store(uint64(p.nopen))
}

// retire takes the socket id out of service: it stays open for answers
// still due until they are all Answered or Linger passes. The Dest's lock
// is held, so no more queries are picked on it.
func (p *Pool) retire(id uint32, now int64) {
	s := p.slotOf(id)
	if !s.ref.Pin() {
		return
	}
	if s.id.Load() == id {
		p.mu.Lock()
		s.retiredAt = now
		p.push(s)
		p.mu.Unlock()
		p.st.retired.Add(1)
		s.retired.Store(true)
		// Answered and unsend read retired after counting; we read the
		// counts after setting retired: whichever comes last sees the
		// socket done.
		if s.answered.Load() >= s.sent.Load() {
			if first, _ := s.ref.Shut(); first {
				p.st.closedAnswered.Add(1)
			}
		}
	}
	if s.ref.Unpin() {
		p.finish(s)
	}
}

// Answered tells the pool that an answer received on sock was accepted. A
// retired socket whose queries are all answered closes at once. An id
// whose socket has closed is ignored. It does not allocate.
func (p *Pool) Answered(sock uint32) {
	if sock == 0 {
		return
	}
	s := p.slotOf(sock)
	if !s.ref.Pin() {
		return
	}
	if s.id.Load() == sock {
		a := s.answered.Add(1)
		if s.retired.Load() && a >= s.sent.Load() {
			if first, _ := s.ref.Shut(); first {
				p.st.closedAnswered.Add(1)
			}
		}
	}
	if s.ref.Unpin() {
		p.finish(s)
	}
}

// Reap closes retired sockets whose linger has run out at now. The engine
// calls it from its sweeper (every 10 to 100 ms is plenty): the pool has
// no goroutine of its own. Send also reaps when it finds MaxSockets
// reached. now is compared on the monotonic clock.
func (p *Pool) Reap(now time.Time) {
	p.reap(int64(now.Sub(p.epoch)))
}

func (p *Pool) reap(now int64) {
	// Each round takes one socket off the list, so the list's length
	// (at most the table's) bounds the loop.
	for range p.slots {
		p.mu.Lock()
		h := p.head
		if h < 0 || p.slots[h].retiredAt+p.linger > now {
			p.mu.Unlock()
			return
		}
		s := &p.slots[h]
		p.unlink(s)
		id := s.id.Load()
		p.mu.Unlock()
		p.closeID(id, &p.st.closedLinger)
	}
}

// closeID closes the socket id unless it has closed already; counter, if
// not nil, counts the close when this call is the one that closed it.
func (p *Pool) closeID(id uint32, counter *atomic.Uint64) {
	if id == 0 {
		return
	}
	s := p.slotOf(id)
	if !s.ref.Pin() {
		return
	}
	// The pin keeps the slot from being freed and reused between the id
	// check and shut.
	if s.id.Load() == id {
		if first, _ := s.ref.Shut(); first && counter != nil {
			counter.Add(1)
		}
	}
	if s.ref.Unpin() {
		p.finish(s)
	}
}

// finish closes a slot's socket and frees the slot. It is called exactly
// once per socket, by whoever dropped the last pin of a closing slot.
func (p *Pool) finish(s *poolSlot) {
	// Closing the descriptor also takes it out of the poller.
	p.sys.closeFD(s.fd)
	p.mu.Lock()
	p.free(s)
	p.mu.Unlock()
}

// push appends s to the retired list. p.mu is held.
func (p *Pool) push(s *poolSlot) {
	i := int32(s.id.Load() & p.mask)
	s.prev, s.next, s.listed = p.tail, -1, true
	if p.tail >= 0 {
		p.slots[p.tail].next = i
	} else {
		p.head = i
	}
	p.tail = i
}

// unlink takes s off the retired list. p.mu is held.
func (p *Pool) unlink(s *poolSlot) {
	if s.prev >= 0 {
		p.slots[s.prev].next = s.next
	} else {
		p.head = s.next
	}
	if s.next >= 0 {
		p.slots[s.next].prev = s.prev
	} else {
		p.tail = s.prev
	}
	s.prev, s.next, s.listed = -1, -1, false
}

func (p *Pool) slotOf(id uint32) *poolSlot { return &p.slots[id&p.mask] }

func (p *Pool) now() int64 { return int64(time.Since(p.epoch)) }

// recvOn reads what is waiting on socket id into ms, if id is still open,
// and returns how many entries it filled.
func (p *Pool) recvOn(id uint32, ms []Msg) int {
	s := p.slotOf(id)
	if !s.ref.Pin() {
		return 0
	}
	n := 0
	if s.id.Load() == id { // else a stale event of a closed socket
		n = p.sys.read(p, s, id, ms)
	}
	if s.ref.Unpin() {
		p.finish(s)
	}
	return n
}

// Msg is one entry of Recv's batch.
type Msg struct {
	Buf  []byte // the caller's buffer; a message is read into Buf[Off:]
	Off  int
	N    int    // the message's length
	Sock uint32 // the socket it arrived on
	Dest *Dest
	// Err is a per-socket error instead of a message, such as
	// syscall.ECONNREFUSED (an ICMP port unreachable from the upstream);
	// N is 0 then.
	Err error
}

// checkMsgs refuses a batch Recv cannot read into.
func checkMsgs(ms []Msg) error {
	if len(ms) == 0 {
		return errNoMsgs
	}
	for i := range ms {
		if ms[i].Off < 0 || ms[i].Off >= len(ms[i].Buf) {
			return errMsgBuf
		}
	}
	return nil
}

// Close closes every socket; a blocked Recv returns net.ErrClosed, as do
// later Sends and Recvs. A socket Recv is reading from closes when that
// read returns.
func (p *Pool) Close() error {
	p.mu.Lock()
	if p.closedM {
		p.mu.Unlock()
		return nil
	}
	p.closedM = true
	p.closed.Store(true)
	p.mu.Unlock()
	for i := range p.slots {
		s := &p.slots[i]
		p.mu.Lock()
		var id uint32
		if s.used {
			id = s.id.Load()
		}
		p.mu.Unlock()
		p.closeID(id, nil)
	}
	return p.sys.shut()
}

// Stats returns the pool's counters.
func (p *Pool) Stats() PoolStats {
	return PoolStats{
		Open:             p.st.open.Load(),
		MaxOpen:          p.st.maxOpen.Load(),
		Opened:           p.st.opened.Load(),
		OpenErrors:       p.st.openErrors.Load(),
		Retired:          p.st.retired.Load(),
		ClosedAnswered:   p.st.closedAnswered.Load(),
		ClosedLinger:     p.st.closedLinger.Load(),
		ReusedPastBudget: p.st.reusedPastBudget.Load(),
		NoSocket:         p.st.noSocket.Load(),
		SendRetried:      p.st.sendRetried.Load(),
		Truncated:        p.st.truncated.Load(),
	}
}

// zoneIndex turns an IPv6 zone (an interface name or index) into an
// interface index.
func zoneIndex(z string) (uint32, error) {
	if n, err := strconv.ParseUint(z, 10, 32); err == nil {
		return uint32(n), nil
	}
	ifi, err := net.InterfaceByName(z)
	if err != nil {
		return 0, err
	}
	return uint32(ifi.Index), nil
}

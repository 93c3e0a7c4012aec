package loadgen

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// slot state: 0 = free (never used or answered); gen (1..2^31-1) = in
// flight; gen|expired = counted lost (a late answer is still recognised).
const expired = 1 << 31

type slot struct {
	state atomic.Uint32
	name  atomic.Int32
	sent  atomic.Int64 // ns since run start: send time (closed) or scheduled time (open)
}

// sock is one UDP socket with its sender and receiver goroutines.
type sock struct {
	r     *runner
	idx   int
	conn  net.Conn
	slots [idSpace]slot

	outstanding atomic.Int64
	lastSend    atomic.Int64  // latest send (or scheduled) time, ns
	tokens      chan struct{} // closed loop: one per free concurrency unit

	// sender-owned
	nextID       uint16
	gen          uint32
	scratch      [hdrLen + 260]byte
	sent         int64
	lost         int64
	sendErr      int64
	lag          Histogram
	nextDeadline int64

	// receiver-owned
	buf        [4096]byte
	answered   int64
	mismatched int64
	late       int64
	recvErr    int64
	rcodes     [16]int64
	lastAnswer int64
	hist       Histogram
}

type runner struct {
	cfg     Config
	tmpl    *templates
	order   []int32
	base    time.Time
	endNs   int64
	timeout int64
	period  int64 // minimum interval between timeout sweeps
	maxQ    int64
	seq     atomic.Int64
	done    chan struct{}
	closing atomic.Bool
	socks   []*sock
	errs    firstError
}

// firstError keeps the first error reported to it.
type firstError struct{ p atomic.Pointer[string] }

func (f *firstError) note(err error) {
	if f.p.Load() == nil {
		s := err.Error()
		f.p.CompareAndSwap(nil, &s)
	}
}

func (f *firstError) String() string {
	if s := f.p.Load(); s != nil {
		return *s
	}
	return ""
}

func (r *runner) now() int64 { return int64(time.Since(r.base)) }

func (r *runner) stopped() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// Run generates load as described by cfg and returns the measurements.
// It stops when ctx ends, Duration has passed, or MaxQueries were sent;
// then it waits up to Timeout for outstanding answers (not when ctx
// ended), closes its sockets or connections and returns. If ctx ended,
// the partial result is returned together with ctx's error.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	tmpl, err := buildTemplates(cfg.Names)
	if err != nil {
		return nil, err
	}
	order := make([]int32, len(cfg.Names))
	for i := range order {
		order[i] = int32(i)
	}
	if cfg.Seed != 0 {
		rng := rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	}
	if cfg.Transport == TCP {
		return runTCP(ctx, cfg, tmpl, order)
	}
	r := &runner{
		cfg:     cfg,
		tmpl:    tmpl,
		order:   order,
		timeout: int64(cfg.Timeout),
		period:  max(int64(cfg.Timeout)/16, int64(time.Millisecond)),
		maxQ:    int64(cfg.MaxQueries),
		done:    make(chan struct{}),
	}

	r.socks = make([]*sock, cfg.Sockets)
	for i := range r.socks {
		c, err := cfg.Dial("udp", cfg.Target.String())
		if err != nil {
			for _, s := range r.socks[:i] {
				s.conn.Close()
			}
			return nil, err
		}
		s := &sock{r: r, idx: i, conn: c}
		if cfg.Mode == ClosedLoop {
			w := cfg.Concurrency / cfg.Sockets
			if i < cfg.Concurrency%cfg.Sockets {
				w++
			}
			s.tokens = make(chan struct{}, w)
			for range w {
				s.tokens <- struct{}{}
			}
		}
		r.socks[i] = s
	}

	var recvWG, sendWG sync.WaitGroup
	r.base = time.Now()
	r.endNs = int64(cfg.Duration)
	for _, s := range r.socks {
		recvWG.Add(1)
		go func() { defer recvWG.Done(); s.receive() }()
	}
	if cfg.Mode == ClosedLoop {
		for _, s := range r.socks {
			sendWG.Add(1)
			go func() { defer sendWG.Done(); s.runClosed() }()
		}
	} else {
		sendWG.Add(1)
		go func() { defer sendWG.Done(); r.runOpen() }()
	}
	sendersDone := make(chan struct{})
	go func() { sendWG.Wait(); close(sendersDone) }()

	timer := time.NewTimer(cfg.Duration)
	select {
	case <-ctx.Done():
	case <-timer.C:
	case <-sendersDone:
	}
	timer.Stop()
	close(r.done)
	<-sendersDone
	stopNs := r.now()

	// Drain: wait for outstanding answers until the last query's deadline.
	if ctx.Err() == nil {
		var deadline int64
		for _, s := range r.socks {
			deadline = max(deadline, s.lastSend.Load()+r.timeout)
		}
		tick := time.NewTicker(time.Millisecond)
	drain:
		for r.now() < deadline {
			var out int64
			for _, s := range r.socks {
				out += s.outstanding.Load()
			}
			if out == 0 {
				break
			}
			select {
			case <-tick.C:
			case <-ctx.Done():
				break drain
			}
		}
		tick.Stop()
	}

	// Stop the receivers and close the sockets.
	r.closing.Store(true)
	for _, s := range r.socks {
		s.conn.SetReadDeadline(time.Now())
	}
	recvWG.Wait()
	for _, s := range r.socks {
		s.conn.Close()
	}

	res := &Result{Rcodes: map[int]int64{}}
	var lat, lag Histogram
	finalNs := r.now()
	lastAnswer := stopNs
	for _, s := range r.socks {
		lost, inflight := s.sweep(finalNs, true)
		s.lost += lost
		res.InFlight += inflight
		res.Sent += s.sent
		res.Answered += s.answered
		res.Lost += s.lost
		res.Late += s.late
		res.Mismatched += s.mismatched
		res.Errors += s.sendErr + s.recvErr
		for rc, n := range s.rcodes {
			if n > 0 {
				res.Rcodes[rc] += n
			}
		}
		lastAnswer = max(lastAnswer, s.lastAnswer)
		lat.Merge(&s.hist)
		lag.Merge(&s.lag)
	}
	res.Elapsed = time.Duration(lastAnswer)
	if res.Elapsed > 0 {
		res.QPS = float64(res.Answered) / res.Elapsed.Seconds()
	}
	res.Latency = lat.Percentiles()
	res.SendLag = lag.Percentiles()
	res.Histogram = &lat
	res.FirstError = r.errs.String()
	return res, ctx.Err()
}

// coarseSlack is how early the runtime timer of the open-loop pacer is
// set to fire before the scheduled time; the rest is slept precisely.
const coarseSlack = 2 * int64(time.Millisecond)

// sweep marks in-flight queries past their deadline as lost. With final
// set, queries not yet past it are counted as inflight instead (only
// happens after cancellation). It returns the counts and the time of the
// next deadline (math.MaxInt64 if none is in flight).
func (s *sock) sweep(now int64, final bool) (lost, inflight int64) {
	next := int64(math.MaxInt64)
	for i := range s.slots {
		sl := &s.slots[i]
		st := sl.state.Load()
		if st == 0 || st&expired != 0 {
			continue
		}
		dl := sl.sent.Load() + s.r.timeout
		if now < dl && !final {
			next = min(next, dl)
			continue
		}
		if !sl.state.CompareAndSwap(st, st|expired) {
			continue // answered meanwhile
		}
		s.outstanding.Add(-1)
		if now < dl {
			inflight++
			continue
		}
		lost++
		if s.tokens != nil {
			s.tokens <- struct{}{}
		}
	}
	s.nextDeadline = next
	return lost, inflight
}

// liveSweep runs a sweep if one is due and returns when the next is.
func (s *sock) liveSweep(now, nextScan int64) int64 {
	if now < nextScan {
		return nextScan
	}
	if s.outstanding.Load() == 0 {
		// Anything sent from now on has its deadline at now+timeout or later.
		return now + max(s.r.timeout, s.r.period)
	}
	lost, _ := s.sweep(now, false)
	s.lost += lost
	next := s.nextDeadline
	if next == math.MaxInt64 {
		next = now + s.r.timeout
	}
	return max(next, now+s.r.period)
}

// send issues one query with the given send/schedule time. It returns
// false when MaxQueries has been reached.
func (s *sock) send(sched int64) bool {
	r := s.r
	seq := r.seq.Add(1) - 1
	if r.maxQ > 0 && seq >= r.maxQ {
		return false
	}
	name := r.order[seq%int64(len(r.order))]
	var sl *slot
	var id uint16
	for range idSpace {
		id = s.nextID
		s.nextID++
		c := &s.slots[id]
		if st := c.state.Load(); st == 0 || st&expired != 0 {
			sl = c
			break
		}
	}
	if sl == nil { // every ID in flight: cannot happen within the validated limits
		s.sendErr++
		s.releaseToken()
		return true
	}
	s.gen++
	if s.gen&^expired == 0 || s.gen&expired != 0 {
		s.gen = 1
	}
	gen := s.gen
	sl.name.Store(name)
	sl.sent.Store(sched)
	s.outstanding.Add(1)
	sl.state.Store(gen)
	s.lastSend.Store(sched)

	p := r.tmpl.packet(int(name))
	n := copy(s.scratch[:], p)
	s.scratch[0], s.scratch[1] = byte(id>>8), byte(id)
	if _, err := s.conn.Write(s.scratch[:n]); err != nil {
		r.errs.note(err)
		if sl.state.CompareAndSwap(gen, 0) {
			s.outstanding.Add(-1)
			s.releaseToken()
		}
		s.sendErr++
		// Back off briefly so a dead target does not turn into a busy loop.
		t := time.NewTimer(time.Millisecond)
		select {
		case <-t.C:
		case <-r.done:
			t.Stop()
		}
		return true
	}
	s.sent++
	return true
}

func (s *sock) releaseToken() {
	if s.tokens != nil {
		s.tokens <- struct{}{}
	}
}

// runClosed keeps this socket's share of Concurrency in flight.
func (s *sock) runClosed() {
	r := s.r
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var nextScan int64
	for {
		if r.stopped() {
			return
		}
		now := r.now()
		if now >= r.endNs {
			return
		}
		nextScan = s.liveSweep(now, nextScan)
		select {
		case <-s.tokens:
		default:
			timer.Reset(time.Duration(min(nextScan, r.endNs) - now))
			select {
			case <-s.tokens:
				timer.Stop()
			case <-timer.C:
				continue
			case <-r.done:
				timer.Stop()
				return
			}
		}
		if !s.send(r.now()) {
			return
		}
	}
}

// runOpen is the open-loop pacer: one goroutine sends query g of the
// fixed schedule at base + g/Rate on socket g mod Sockets. When it is
// behind, it sends at once and keeps the schedule; latency is measured
// from the scheduled time either way.
func (r *runner) runOpen() {
	pacerThread()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	S := int64(len(r.socks))
	interval := 1e9 / r.cfg.Rate
	nextScan := make([]int64, S)
	for g := int64(0); ; g++ {
		sched := int64(float64(g) * interval)
		if sched >= r.endNs {
			return
		}
		s := r.socks[g%S]
		now := r.now()
		nextScan[g%S] = s.liveSweep(now, nextScan[g%S])
		if wait := sched - now; wait > 0 {
			// Coarse, interruptible wait on a runtime timer, then a
			// precise sleep for the last stretch (see sleep_linux.go).
			if wait > coarseSlack {
				timer.Reset(time.Duration(wait - coarseSlack))
				select {
				case <-timer.C:
				case <-r.done:
					timer.Stop()
					return
				}
			}
			if wait = sched - r.now(); wait > 0 {
				preciseSleep(time.Duration(wait))
			}
			now = r.now()
		}
		if r.stopped() {
			return
		}
		s.lag.Record(time.Duration(now - sched))
		if !s.send(sched) {
			return
		}
	}
}

// receive matches answers to in-flight queries until the run closes.
func (s *sock) receive() {
	r := s.r
	for {
		n, err := s.conn.Read(s.buf[:])
		if err != nil {
			if r.closing.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				continue
			}
			s.recvErr++ // e.g. ECONNREFUSED after an ICMP port unreachable
			r.errs.note(err)
			continue
		}
		now := r.now()
		b := s.buf[:n]
		if n < hdrLen || b[2]&0x80 == 0 || b[4] != 0 || b[5] != 1 {
			s.mismatched++
			continue
		}
		sl := &s.slots[uint16(b[0])<<8|uint16(b[1])]
		st := sl.state.Load()
		if st == 0 {
			s.mismatched++
			continue
		}
		name := sl.name.Load()
		sent := sl.sent.Load()
		if !sameQuestion(b[hdrLen:], r.tmpl.question(int(name))) {
			s.mismatched++
			continue
		}
		if st&expired != 0 || !sl.state.CompareAndSwap(st, 0) {
			s.late++ // already counted as lost
			continue
		}
		s.outstanding.Add(-1)
		s.releaseToken()
		s.answered++
		s.rcodes[b[3]&0x0f]++
		s.lastAnswer = now
		s.hist.Record(time.Duration(now - sent))
	}
}

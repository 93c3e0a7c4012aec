package loadgen

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// tcpRunner is one TCP run: ceil(Concurrency/Pipeline) lanes, each a
// goroutine that owns one connection at a time.
type tcpRunner struct {
	cfg       Config
	tmpl      *templates
	order     []int32
	base      time.Time
	timeout   int64
	maxQ      int64
	seq       atomic.Int64
	done      chan struct{} // closed when sending stops (Duration, MaxQueries, cancel)
	cancelled atomic.Bool   // ctx ended: lanes return at once
	ctx       context.Context
	lanes     []*lane
	errs      firstError
}

func (r *tcpRunner) now() int64 { return int64(time.Since(r.base)) }

func (r *tcpRunner) stopped() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// take reserves the next query of the mix; false when MaxQueries is
// reached.
func (r *tcpRunner) take() (int64, bool) {
	seq := r.seq.Add(1) - 1
	return seq, r.maxQ == 0 || seq < r.maxQ
}

// pause waits d or until sending stops.
func (r *tcpRunner) pause(d time.Duration) {
	t := time.NewTimer(d)
	select {
	case <-t.C:
	case <-r.done:
		t.Stop()
	}
}

// inflight is a query written on the lane's connection and not yet
// answered or lost. off is its position on the connection: its ID is the
// connection's base ID + off.
type inflight struct {
	off  uint16
	name int32
	sent int64 // ns since the run's start
}

// lane keeps up to window queries in flight on one connection at a time.
type lane struct {
	r      *tcpRunner
	window int

	mu     sync.Mutex // guards conn and cancel against interrupt
	conn   net.Conn
	cancel bool

	// lane-owned
	nextID  uint16 // base ID of the next connection
	infl    []inflight
	expired []inflight // this connection's queries counted lost
	wbuf    []byte
	rbuf    []byte
	rlen    int

	sent, answered, lost, inFlight int64
	mismatched, late, errs         int64
	conns, connFailed, closed      int64
	rcodes                         [16]int64
	lastAnswer                     int64
	hist, connect                  Histogram
}

// runTCP is Run for Transport TCP (cfg normalised).
func runTCP(ctx context.Context, cfg Config, tmpl *templates, order []int32) (*Result, error) {
	r := &tcpRunner{
		cfg:     cfg,
		tmpl:    tmpl,
		order:   order,
		timeout: int64(cfg.Timeout),
		maxQ:    int64(cfg.MaxQueries),
		done:    make(chan struct{}),
		ctx:     ctx,
	}
	n := (cfg.Concurrency + cfg.Pipeline - 1) / cfg.Pipeline
	maxMsg := 0
	for i := range cfg.Names {
		maxMsg = max(maxMsg, len(tmpl.packet(i)))
	}
	for i := range n {
		w := cfg.Pipeline
		if i == n-1 {
			w = cfg.Concurrency - (n-1)*cfg.Pipeline
		}
		r.lanes = append(r.lanes, &lane{
			r:      r,
			window: w,
			infl:   make([]inflight, 0, w),
			wbuf:   make([]byte, 0, w*(2+maxMsg)),
			// Room for the largest message (a 2-byte length says at
			// most 65535) plus what the next read may add.
			rbuf: make([]byte, 1<<17),
		})
	}

	var wg sync.WaitGroup
	r.base = time.Now()
	for _, l := range r.lanes {
		wg.Add(1)
		go func() { defer wg.Done(); l.run() }()
	}
	lanesDone := make(chan struct{})
	go func() { wg.Wait(); close(lanesDone) }()

	timer := time.NewTimer(cfg.Duration)
	select {
	case <-ctx.Done():
	case <-timer.C:
	case <-lanesDone:
	}
	timer.Stop()
	close(r.done)
	stopNs := r.now()
	// The lanes finish their queries in flight (each within Timeout of
	// its send), unless ctx ends: then they are interrupted.
	select {
	case <-lanesDone:
	case <-ctx.Done():
		r.cancelled.Store(true)
		for _, l := range r.lanes {
			l.interrupt()
		}
		<-lanesDone
	}

	res := &Result{Rcodes: map[int]int64{}}
	var lat, conn Histogram
	lastAnswer := stopNs
	for _, l := range r.lanes {
		res.Sent += l.sent
		res.Answered += l.answered
		res.Lost += l.lost
		res.InFlight += l.inFlight
		res.Mismatched += l.mismatched
		res.Late += l.late
		res.Errors += l.errs
		res.Conns += l.conns
		res.ConnFailed += l.connFailed
		res.Closed += l.closed
		for rc, k := range l.rcodes {
			if k > 0 {
				res.Rcodes[rc] += k
			}
		}
		lastAnswer = max(lastAnswer, l.lastAnswer)
		lat.Merge(&l.hist)
		conn.Merge(&l.connect)
	}
	res.Elapsed = time.Duration(lastAnswer)
	if res.Elapsed > 0 {
		res.QPS = float64(res.Answered) / res.Elapsed.Seconds()
	}
	res.Latency = lat.Percentiles()
	res.Histogram = &lat
	res.Connect = conn.Percentiles()
	res.FirstError = r.errs.String()
	return res, ctx.Err()
}

// interrupt makes the lane's blocking calls return at once. It is called
// after r.cancelled is set; a lane checks r.cancelled after each deadline
// it sets, so either it sees the flag or its deadline is overridden.
func (l *lane) interrupt() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cancel = true
	if l.conn != nil {
		l.conn.SetDeadline(time.Unix(1, 0))
	}
}

// setConn publishes c as the lane's connection (nil: none); false when
// the run was cancelled meanwhile.
func (l *lane) setConn(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cancel && c != nil {
		return false
	}
	l.conn = c
	return true
}

// run opens connections one after the other until sending stops.
func (l *lane) run() {
	r := l.r
	var backoff time.Duration
	for !r.stopped() {
		first, ok := r.take()
		if !ok {
			return
		}
		t0 := r.now()
		ctx, cancel := context.WithTimeout(r.ctx, r.cfg.Timeout)
		c, err := r.cfg.DialContext(ctx, "tcp", r.cfg.Target.String())
		cancel()
		if err != nil {
			if r.cancelled.Load() || r.ctx.Err() != nil {
				return
			}
			l.connFailed++
			l.errs++
			r.errs.note(err)
			// Back off so that a refusing target is not a busy loop.
			backoff = min(max(2*backoff, time.Millisecond), 100*time.Millisecond)
			r.pause(backoff)
			continue
		}
		backoff = 0
		l.conns++
		l.connect.Record(time.Duration(r.now() - t0))
		if !l.setConn(c) {
			c.Close()
			return
		}
		l.serve(c, first, t0)
		l.setConn(nil)
		c.Close()
	}
}

// serve runs one connection: up to QueriesPerConn queries, first of them
// the reserved query first, keeping up to window in flight. Queries written
// right after the connect are timed from t0, the start of the connect.
func (l *lane) serve(c net.Conn, first, t0 int64) {
	r := l.r
	base := l.nextID
	perConn := r.cfg.QueriesPerConn
	written := 0 // queries written on this connection
	defer func() { l.nextID += uint16(written) }()
	l.infl, l.expired, l.rlen = l.infl[:0], l.expired[:0], 0
	pending, havePending := first, true
	sched := t0
	for {
		if !r.stopped() {
			l.wbuf = l.wbuf[:0]
			k := 0
			for len(l.infl) < l.window && written+k < perConn {
				seq := pending
				if havePending {
					havePending = false
				} else if s, ok := r.take(); ok {
					seq = s
				} else {
					break
				}
				name := r.order[seq%int64(len(r.order))]
				off := uint16(written + k)
				id := base + off
				p := r.tmpl.packet(int(name))
				at := len(l.wbuf)
				l.wbuf = append(l.wbuf, byte(len(p)>>8), byte(len(p)))
				l.wbuf = append(l.wbuf, p...)
				l.wbuf[at+2], l.wbuf[at+3] = byte(id>>8), byte(id)
				l.infl = append(l.infl, inflight{off: off, name: name})
				k++
			}
			if k > 0 {
				if sched < 0 {
					sched = r.now()
				}
				for i := len(l.infl) - k; i < len(l.infl); i++ {
					l.infl[i].sent = sched
				}
				c.SetWriteDeadline(time.Now().Add(r.cfg.Timeout))
				if r.cancelled.Load() { // see interrupt
					l.infl = l.infl[:len(l.infl)-k]
					l.connLost(nil)
					return
				}
				if _, err := c.Write(l.wbuf); err != nil {
					// What a failed write delivered is unknown: the batch
					// is not counted as sent, the connection is dead.
					l.infl = l.infl[:len(l.infl)-k]
					l.connLost(err)
					return
				}
				written += k
				l.sent += int64(k)
			}
			sched = -1 // from now on: the time of the write
		}
		if len(l.infl) == 0 {
			return // QueriesPerConn done, or sending stopped
		}
		oldest := l.infl[0].sent
		for _, q := range l.infl[1:] {
			oldest = min(oldest, q.sent)
		}
		c.SetReadDeadline(r.base.Add(time.Duration(oldest + r.timeout)))
		if r.cancelled.Load() { // see interrupt
			l.connLost(nil)
			return
		}
		n, err := c.Read(l.rbuf[l.rlen:])
		now := r.now()
		if n > 0 {
			l.rlen += n
			l.consume(base, written, now)
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) && !r.cancelled.Load() {
				l.expire(now)
				continue
			}
			l.connLost(err)
			return
		}
	}
}

// connLost ends a connection that failed or was closed with queries in
// flight: they are lost at once (in flight when the run was cancelled and
// their deadline has not passed).
func (l *lane) connLost(err error) {
	r := l.r
	if r.cancelled.Load() {
		now := r.now()
		for _, q := range l.infl {
			if now >= q.sent+r.timeout {
				l.lost++
			} else {
				l.inFlight++
			}
		}
		l.infl = l.infl[:0]
		return
	}
	r.errs.note(err)
	if peerClosed(err) {
		l.closed++
	} else {
		l.errs++
	}
	l.lost += int64(len(l.infl))
	l.infl = l.infl[:0]
}

// peerClosed reports whether err means the server closed or reset the
// connection.
func peerClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// expire counts the queries past their deadline as lost.
func (l *lane) expire(now int64) {
	for i := 0; i < len(l.infl); {
		q := l.infl[i]
		if now < q.sent+l.r.timeout {
			i++
			continue
		}
		l.lost++
		l.expired = append(l.expired, q)
		l.infl[i] = l.infl[len(l.infl)-1]
		l.infl = l.infl[:len(l.infl)-1]
	}
}

// consume handles the complete messages at the start of rbuf and keeps
// the rest.
func (l *lane) consume(base uint16, written int, now int64) {
	b := l.rbuf[:l.rlen]
	for len(b) >= 2 {
		m := int(b[0])<<8 | int(b[1])
		if len(b) < 2+m {
			break
		}
		l.answer(b[2:2+m], base, written, now)
		b = b[2+m:]
	}
	l.rlen = copy(l.rbuf, b)
}

// answer matches one message to a query in flight on this connection.
func (l *lane) answer(b []byte, base uint16, written int, now int64) {
	if len(b) < hdrLen || b[2]&0x80 == 0 || b[4] != 0 || b[5] != 1 {
		l.mismatched++
		return
	}
	off := (uint16(b[0])<<8 | uint16(b[1])) - base
	if int(off) >= written {
		l.mismatched++ // an ID never used on this connection
		return
	}
	for i, q := range l.infl {
		if q.off != off {
			continue
		}
		if !sameQuestion(b[hdrLen:], l.r.tmpl.question(int(q.name))) {
			l.mismatched++ // stays in flight
			return
		}
		l.answered++
		l.rcodes[b[3]&0x0f]++
		l.lastAnswer = now
		l.hist.Record(time.Duration(now - q.sent))
		l.infl[i] = l.infl[len(l.infl)-1]
		l.infl = l.infl[:len(l.infl)-1]
		return
	}
	for i, e := range l.expired {
		if e.off == off {
			if !sameQuestion(b[hdrLen:], l.r.tmpl.question(int(e.name))) {
				l.mismatched++
				return
			}
			l.late++
			l.expired[i] = l.expired[len(l.expired)-1]
			l.expired = l.expired[:len(l.expired)-1]
			return
		}
	}
	l.mismatched++ // a second answer to the same query
}

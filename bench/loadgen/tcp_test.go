package loadgen

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// tcpResponder is a loopback DNS-over-TCP "server" for tests: it reads
// length-framed queries and answers each by setting QR and echoing it.
type tcpResponder struct {
	ln   net.Listener
	addr netip.AddrPort
	// closeAfter closes a connection after this many answers (0: never).
	closeAfter int
	// stall reads queries and never answers.
	stall bool
	// reverse answers the queries of one read in reverse order, in one
	// write (pipelined answers out of order).
	reverse bool
	// split writes each answer one byte at a time.
	split bool
	// mangle modifies an answer before it is sent.
	mangle func(msg []byte)
	// delayFirst delays the answer to the first query of each connection.
	delayFirst time.Duration
	// perConn is how many queries the client sends on a connection: a
	// connection counts as busy (maxBusy) until it has had that many
	// answers; 0 for connections the server closes or stalls.
	perConn int

	conns, queries, answers atomic.Int64
	maxBusy, busy           atomic.Int64
	wg                      sync.WaitGroup
	mu                      sync.Mutex
	live                    map[net.Conn]bool
}

func startTCPResponder(tb testing.TB, setup func(*tcpResponder)) *tcpResponder {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	r := &tcpResponder{ln: ln, addr: ln.Addr().(*net.TCPAddr).AddrPort(), live: map[net.Conn]bool{}}
	if setup != nil {
		setup(r)
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			r.conns.Add(1)
			if o := r.busy.Add(1); o > r.maxBusy.Load() {
				r.maxBusy.Store(o)
			}
			r.mu.Lock()
			r.live[c] = true
			r.mu.Unlock()
			r.wg.Add(1)
			go func() {
				defer r.wg.Done()
				defer func() {
					r.mu.Lock()
					delete(r.live, c)
					r.mu.Unlock()
					c.Close()
				}()
				r.serve(c)
			}()
		}
	}()
	tb.Cleanup(func() {
		ln.Close()
		r.mu.Lock()
		for c := range r.live {
			c.Close()
		}
		r.mu.Unlock()
		r.wg.Wait()
	})
	return r
}

func (r *tcpResponder) serve(c net.Conn) {
	buf := make([]byte, 0, 1<<16)
	tmp := make([]byte, 4096)
	answered := 0
	for {
		n, err := c.Read(tmp)
		if err != nil {
			return
		}
		buf = append(buf, tmp[:n]...)
		var msgs [][]byte
		for len(buf) >= 2 {
			m := int(buf[0])<<8 | int(buf[1])
			if len(buf) < 2+m {
				break
			}
			msgs = append(msgs, slices.Clone(buf[:2+m]))
			buf = buf[2+m:]
		}
		buf = append(buf[:0:0], buf...)
		r.queries.Add(int64(len(msgs)))
		if r.stall {
			continue
		}
		if r.reverse {
			slices.Reverse(msgs)
		}
		var out []byte
		for _, m := range msgs {
			m[4] |= 0x80 // QR, after the 2-byte length
			if r.mangle != nil {
				r.mangle(m[2:])
			}
			if answered == 0 && r.delayFirst > 0 {
				time.Sleep(r.delayFirst)
			}
			answered++
			r.answers.Add(1)
			if answered == r.perConn {
				r.busy.Add(-1) // before the answer is sent: the client may connect again at once
			}
			if r.split {
				for i := range m {
					if _, err := c.Write(m[i : i+1]); err != nil {
						return
					}
				}
			} else {
				out = append(out, m...)
			}
			if r.closeAfter > 0 && answered >= r.closeAfter {
				c.Write(out)
				return
			}
		}
		if len(out) > 0 {
			if _, err := c.Write(out); err != nil {
				return
			}
		}
	}
}

func tcpCfg(r *tcpResponder) Config {
	return Config{Target: r.addr, Names: testNames, Transport: TCP, Duration: 5 * time.Second, Timeout: 500 * time.Millisecond}
}

func TestTCPOneQueryPerConnection(t *testing.T) {
	srv := startTCPResponder(t, func(r *tcpResponder) { r.perConn = 1 })
	cfg := tcpCfg(srv)
	cfg.MaxQueries = 500
	cfg.Concurrency = 8
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkAccounting(t, res)
	if res.Sent != 500 || res.Answered != 500 || res.Lost != 0 || res.Mismatched != 0 || res.Errors != 0 || res.Closed != 0 {
		t.Errorf("unexpected result %+v", res)
	}
	if res.Conns != 500 || srv.conns.Load() != 500 || srv.queries.Load() != 500 {
		t.Errorf("Conns %d, server saw %d connections and %d queries; want 500 each", res.Conns, srv.conns.Load(), srv.queries.Load())
	}
	if res.Connect.Count != 500 || res.Latency.P50 < res.Connect.Min {
		t.Errorf("connect %v, latency %v: a query's latency includes its connect", res.Connect, res.Latency)
	}
	if m := srv.maxBusy.Load(); m > 8 {
		t.Errorf("server saw %d connections open at once, want at most Concurrency 8", m)
	}
	if res.Rcodes[0] != 500 || res.QPS <= 0 {
		t.Errorf("rcodes %v qps %v", res.Rcodes, res.QPS)
	}
}

func TestTCPPipelinedOutOfOrder(t *testing.T) {
	// Answers come back in reverse order of each batch, in one segment:
	// matched by ID, none mismatched.
	srv := startTCPResponder(t, func(r *tcpResponder) { r.reverse, r.perConn = true, 100 })
	cfg := tcpCfg(srv)
	cfg.MaxQueries = 1000
	cfg.Concurrency = 20
	cfg.Pipeline = 10
	cfg.QueriesPerConn = 100
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkAccounting(t, res)
	if res.Sent != 1000 || res.Answered != 1000 || res.Mismatched != 0 || res.Lost != 0 || res.Errors != 0 {
		t.Errorf("unexpected result %+v", res)
	}
	// 1000/100 = 10, and one more when the two lanes share the last 100.
	if res.Conns < 10 || res.Conns > 11 || srv.conns.Load() != res.Conns {
		t.Errorf("Conns %d, server saw %d; want 10 or 11", res.Conns, srv.conns.Load())
	}
	if m := srv.maxBusy.Load(); m > 2 {
		t.Errorf("%d connections open at once, want ceil(20/10) = 2", m)
	}
}

func TestTCPSplitAnswers(t *testing.T) {
	// Each answer written a byte at a time: the framing is reassembled.
	srv := startTCPResponder(t, func(r *tcpResponder) { r.split = true })
	cfg := tcpCfg(srv)
	cfg.MaxQueries = 200
	cfg.Concurrency = 4
	cfg.Pipeline = 2
	cfg.QueriesPerConn = 50
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkAccounting(t, res)
	if res.Answered != 200 || res.Mismatched != 0 || res.Conns < 4 || res.Conns > 5 {
		t.Errorf("unexpected result %+v", res)
	}
}

func TestTCPServerClosesAfterEachAnswer(t *testing.T) {
	srv := startTCPResponder(t, func(r *tcpResponder) { r.closeAfter = 1 })
	t.Run("one per connection", func(t *testing.T) {
		cfg := tcpCfg(srv)
		cfg.MaxQueries = 200
		cfg.Concurrency = 4
		res, err := Run(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		checkAccounting(t, res)
		// The client was done with each connection: nothing lost.
		if res.Answered != 200 || res.Closed != 0 || res.Lost != 0 || res.Conns != 200 {
			t.Errorf("unexpected result %+v", res)
		}
	})
	t.Run("five per connection", func(t *testing.T) {
		cfg := tcpCfg(srv)
		cfg.MaxQueries = 200
		cfg.Concurrency = 4
		cfg.QueriesPerConn = 5
		start := time.Now()
		res, err := Run(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		checkAccounting(t, res)
		// Each connection: the first query answered, the second written
		// and lost when the server's close arrives (or its write fails),
		// but for the last connection of each lane if MaxQueries ran out
		// after its first query. Nothing waits for the Timeout.
		if res.Answered != res.Conns || res.Closed > res.Conns || res.Closed < res.Conns-4 || res.Lost > res.Closed || res.Answered+res.Lost != res.Sent {
			t.Errorf("Sent %d Answered %d Lost %d Conns %d Closed %d", res.Sent, res.Answered, res.Lost, res.Conns, res.Closed)
		}
		if res.Answered < 50 || res.FirstError == "" {
			t.Errorf("Answered %d, first error %q", res.Answered, res.FirstError)
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("took %v", took)
		}
	})
}

func TestTCPStall(t *testing.T) {
	// The server accepts and reads but never answers: each query is lost
	// after Timeout, and the run ends within Duration + Timeout.
	srv := startTCPResponder(t, func(r *tcpResponder) { r.stall = true })
	for _, perConn := range []int{1, 100} {
		cfg := tcpCfg(srv)
		cfg.Duration = 300 * time.Millisecond
		cfg.Timeout = 50 * time.Millisecond
		cfg.Concurrency = 4
		cfg.QueriesPerConn = perConn
		start := time.Now()
		res, err := Run(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		checkAccounting(t, res)
		if res.Answered != 0 || res.Lost != res.Sent || res.Sent < 12 || res.Sent > 40 {
			t.Errorf("%d per connection: Sent %d Lost %d, want about 4*300/50", perConn, res.Sent, res.Lost)
		}
		if took := time.Since(start); took > 300*time.Millisecond+50*time.Millisecond+200*time.Millisecond {
			t.Errorf("%d per connection: took %v", perConn, took)
		}
		// One connection per query (and at most one more per lane, opened
		// as the run ended); at 100 per connection the connection is kept
		// after a lost query.
		lo, hi := res.Sent, res.Sent+4
		if perConn == 100 {
			lo, hi = 4, 4
		}
		if res.Conns < lo || res.Conns > hi {
			t.Errorf("%d per connection: Conns %d, want %d..%d", perConn, res.Conns, lo, hi)
		}
	}
}

func TestTCPLateAnswer(t *testing.T) {
	// The first answer of each connection comes after the Timeout: Lost,
	// then Late when it arrives; the others are answered.
	srv := startTCPResponder(t, func(r *tcpResponder) { r.delayFirst = 150 * time.Millisecond })
	cfg := tcpCfg(srv)
	cfg.Timeout = 100 * time.Millisecond
	cfg.Concurrency = 2
	cfg.Pipeline = 2
	cfg.QueriesPerConn = 4
	cfg.MaxQueries = 4
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkAccounting(t, res)
	// Queries 1 and 2 are lost at 100 ms (the server sleeps before
	// answering 1), 3 and 4 sent then; at 150 ms the answers to 1 and 2
	// arrive (late), then those to 3 and 4 (in time).
	if res.Sent != 4 || res.Conns != 1 || res.Lost != 2 || res.Late != 2 || res.Answered != 2 || res.Mismatched != 0 {
		t.Errorf("unexpected result %+v", res)
	}
}

func TestTCPMismatched(t *testing.T) {
	tests := []struct {
		name     string
		mangle   func([]byte)
		answered bool
	}{
		{"echo", nil, true},
		{"0x20 case change", func(b []byte) { copy(b[hdrLen:], strings.ToUpper(string(b[hdrLen:len(b)-4]))) }, true},
		{"QR clear", func(b []byte) { b[2] &^= 0x80 }, false},
		{"wrong ID", func(b []byte) { b[0] ^= 0x80 }, false},
		{"other name", func(b []byte) { b[hdrLen+1] ^= 0x01 }, false},
		{"other type", func(b []byte) { b[len(b)-3] ^= 0x40 }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := startTCPResponder(t, func(r *tcpResponder) { r.mangle = tc.mangle })
			cfg := tcpCfg(srv)
			cfg.MaxQueries = 40
			cfg.Concurrency = 20
			cfg.Pipeline = 10
			cfg.QueriesPerConn = 20
			cfg.Timeout = 50 * time.Millisecond
			res, err := Run(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			checkAccounting(t, res)
			if tc.answered {
				if res.Answered != 40 || res.Mismatched != 0 {
					t.Errorf("Answered %d Mismatched %d, want 40/0", res.Answered, res.Mismatched)
				}
			} else if res.Answered != 0 || res.Mismatched != res.Sent || res.Lost != res.Sent {
				t.Errorf("Sent %d Answered %d Mismatched %d Lost %d", res.Sent, res.Answered, res.Mismatched, res.Lost)
			}
		})
	}
}

func TestTCPRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().(*net.TCPAddr).AddrPort()
	ln.Close()
	cfg := Config{Target: addr, Names: testNames, Transport: TCP, Duration: 200 * time.Millisecond, Timeout: 50 * time.Millisecond, Concurrency: 2}
	start := time.Now()
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkAccounting(t, res)
	if res.Sent != 0 || res.Conns != 0 || res.ConnFailed == 0 || res.Errors != res.ConnFailed || !strings.Contains(res.FirstError, "refused") {
		t.Errorf("unexpected result %+v", res)
	}
	// Backed off: not thousands of attempts.
	if res.ConnFailed > 2*20 {
		t.Errorf("%d connection attempts in 200 ms", res.ConnFailed)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("took %v", took)
	}
}

func TestTCPDialTimeout(t *testing.T) {
	// A target that never completes the handshake (a dropped SYN): each
	// dial is abandoned after Timeout, with DialContext and with a Dial
	// that knows no context.
	block := make(chan struct{})
	defer close(block)
	var ctxDials, plainDials atomic.Int64
	for _, tc := range []struct {
		name string
		set  func(*Config)
		n    *atomic.Int64
	}{
		{"DialContext", func(c *Config) {
			c.DialContext = func(ctx context.Context, network, address string) (net.Conn, error) {
				ctxDials.Add(1)
				<-ctx.Done()
				return nil, &net.OpError{Op: "dial", Net: network, Err: ctx.Err()}
			}
		}, &ctxDials},
		{"Dial", func(c *Config) {
			c.Dial = func(network, address string) (net.Conn, error) {
				plainDials.Add(1)
				<-block
				return nil, errors.New("unblocked")
			}
		}, &plainDials},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Target: netip.MustParseAddrPort("192.0.2.1:53"), Names: testNames, Transport: TCP,
				Duration: 200 * time.Millisecond, Timeout: 100 * time.Millisecond, Concurrency: 3}
			tc.set(&cfg)
			start := time.Now()
			res, err := Run(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			checkAccounting(t, res)
			took := time.Since(start)
			if took > 200*time.Millisecond+100*time.Millisecond+150*time.Millisecond {
				t.Errorf("took %v", took)
			}
			if res.Sent != 0 || res.ConnFailed != tc.n.Load() || res.ConnFailed < 3 || !strings.Contains(res.FirstError, "deadline") {
				t.Errorf("unexpected result %+v (dials %d)", res, tc.n.Load())
			}
		})
	}
}

func TestTCPCancel(t *testing.T) {
	srv := startTCPResponder(t, func(r *tcpResponder) { r.stall = true })
	cfg := tcpCfg(srv)
	cfg.Timeout = 10 * time.Second
	cfg.Duration = 10 * time.Second
	cfg.Concurrency = 6
	cfg.Pipeline = 3
	cfg.QueriesPerConn = 10
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	res, err := Run(ctx, cfg)
	if !errors.Is(err, context.DeadlineExceeded) || res == nil {
		t.Fatalf("err %v, res %v", err, res)
	}
	checkAccounting(t, res)
	if took := time.Since(start); took > time.Second {
		t.Errorf("cancel took %v", took)
	}
	if res.InFlight != 6 || res.Sent != 6 || res.Lost != 0 || res.Conns != 2 {
		t.Errorf("unexpected result %+v", res)
	}
}

func TestTCPDuration(t *testing.T) {
	srv := startTCPResponder(t, nil)
	for _, perConn := range []int{1, 100} {
		cfg := tcpCfg(srv)
		cfg.Duration = 300 * time.Millisecond
		cfg.QueriesPerConn = perConn
		cfg.Pipeline = 4
		start := time.Now()
		res, err := Run(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		checkAccounting(t, res)
		if took := time.Since(start); took > 800*time.Millisecond {
			t.Errorf("%d per connection: took %v", perConn, took)
		}
		if res.Sent == 0 || res.Lost != 0 || res.Errors != 0 || res.Mismatched != 0 || res.Closed != 0 {
			t.Errorf("%d per connection: unexpected result %+v", perConn, res)
		}
		if got := srv.queries.Load(); got < res.Sent {
			t.Errorf("server got %d, Sent %d", got, res.Sent)
		}
		if perConn == 100 && res.Conns > res.Sent/100+4 {
			t.Errorf("Conns %d for %d queries at 100 per connection", res.Conns, res.Sent)
		}
	}
}

func TestTCPConfig(t *testing.T) {
	ok := Config{Target: netip.MustParseAddrPort("127.0.0.1:53"), Names: testNames, Duration: time.Second, Transport: TCP}
	tests := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"open loop", func(c *Config) { c.Mode, c.Rate = OpenLoop, 100 }, "closed loop"},
		{"sockets", func(c *Config) { c.Sockets = 2 }, "Sockets"},
		{"per conn", func(c *Config) { c.QueriesPerConn = 70000 }, "QueriesPerConn"},
		{"pipeline", func(c *Config) { c.Pipeline = 1000 }, "Pipeline"},
		{"udp per conn", func(c *Config) { c.Transport = UDP; c.QueriesPerConn = 2 }, "TCP"},
		{"transport", func(c *Config) { c.Transport = 9 }, "transport"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.mod(&c)
			_, err := Run(context.Background(), c)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want containing %q", err, tc.want)
			}
		})
	}
	c, err := ok.normalize()
	if err != nil || c.Concurrency != 16 || c.QueriesPerConn != 1 || c.Pipeline != 1 || c.DialContext == nil {
		t.Errorf("defaults: %+v %v", c, err)
	}
	ok.QueriesPerConn, ok.Pipeline, ok.Concurrency = 3, 8, 5
	if c, _ = ok.normalize(); c.Pipeline != 3 {
		t.Errorf("Pipeline %d, want capped at QueriesPerConn 3", c.Pipeline)
	}
}

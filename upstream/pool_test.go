// SPDX-License-Identifier: MIT

package upstream

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Every socket in these tests is on loopback: 127.0.0.1, 127.0.0.2 and ::1.

const testWait = 5 * time.Second // the longest any single step may take

func newTestPool(t testing.TB, opt PoolOptions) *Pool {
	t.Helper()
	p, err := NewPool(opt)
	if errors.Is(err, errors.ErrUnsupported) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// testServer is a UDP server on loopback that records the source ports of
// what it receives and, if it answers, echoes each datagram back.
type testServer struct {
	c    *net.UDPConn
	addr netip.AddrPort

	mu    sync.Mutex
	ports map[uint16]int
	got   int
}

// startServer listens on ip (a loopback address) and serves until the test
// ends. A silent server reads and drops everything.
func startServer(t testing.TB, ip string, answer, record bool) *testServer {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(ip), 0)))
	if err != nil {
		if ip == "::1" {
			t.Skipf("no IPv6 loopback: %v", err)
		}
		t.Fatal(err)
	}
	s := &testServer{c: c, addr: c.LocalAddr().(*net.UDPAddr).AddrPort(), ports: map[uint16]int{}}
	done := make(chan struct{})
	t.Cleanup(func() { c.Close(); <-done })
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if record {
				s.mu.Lock()
				s.ports[from.Port()]++
				s.got++
				s.mu.Unlock()
			}
			if answer {
				c.WriteToUDPAddrPort(buf[:n], from)
			}
		}
	}()
	return s
}

func (s *testServer) distinctPorts() (ports, queries int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.ports), s.got
}

// listen opens a manual server socket: the test reads and writes it itself.
func listen(t testing.TB, ip string) (*net.UDPConn, netip.AddrPort) {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(ip), 0)))
	if err != nil {
		if ip == "::1" {
			t.Skipf("no IPv6 loopback: %v", err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, c.LocalAddr().(*net.UDPAddr).AddrPort()
}

// readFrom reads one datagram from c within testWait.
func readFrom(t testing.TB, c *net.UDPConn) ([]byte, netip.AddrPort) {
	t.Helper()
	buf := make([]byte, 2048)
	c.SetReadDeadline(time.Now().Add(testWait))
	n, from, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("server read: %v", err)
	}
	return buf[:n], from
}

func newMsgs(n, size int) []Msg {
	ms := make([]Msg, n)
	for i := range ms {
		ms[i] = Msg{Buf: make([]byte, 4+size), Off: 4}
	}
	return ms
}

// recv calls p.Recv, failing the test (and closing p, which ends the
// blocked Recv) if it has not returned within testWait.
func recv(t testing.TB, p *Pool, ms []Msg) int {
	t.Helper()
	timer := time.AfterFunc(testWait, func() { p.Close() })
	n, err := p.Recv(ms)
	if !timer.Stop() {
		t.Fatalf("Recv did not return within %v", testWait)
	}
	if err != nil {
		t.Fatalf("Recv: %v", err)
	}
	return n
}

func payload(m *Msg) []byte { return m.Buf[m.Off : m.Off+m.N] }

func (p *Pool) isOpen(sock uint32) bool { return p.slotOf(sock).id.Load() == sock }

// TestPoolRoundTrip sends 1,000 queries one by one: every answer comes
// back on the socket its query left from, and the sockets rotate as
// configured, giving as many source ports.
func TestPoolRoundTrip(t *testing.T) {
	const queries = 1000
	for _, ip := range []string{"127.0.0.1", "::1"} {
		for _, qps := range []int{0, 2} { // 0: the default, one query per socket
			t.Run(fmt.Sprintf("%s/QueriesPerSocket=%d", ip, qps), func(t *testing.T) {
				srv := startServer(t, ip, true, true)
				p := newTestPool(t, PoolOptions{QueriesPerSocket: qps})
				d := p.Dest(srv.addr)
				if d.Addr() != srv.addr {
					t.Fatalf("Addr() = %v, want %v", d.Addr(), srv.addr)
				}
				ms := newMsgs(4, 512)
				seen := map[uint32]bool{}
				for i := range queries {
					q := fmt.Appendf(nil, "query %d", i)
					sock, err := p.Send(d, q)
					if err != nil {
						t.Fatalf("Send %d: %v", i, err)
					}
					if sock == 0 {
						t.Fatalf("Send %d returned socket id 0", i)
					}
					seen[sock] = true
					n := recv(t, p, ms)
					if n != 1 {
						t.Fatalf("query %d: Recv returned %d messages, want 1", i, n)
					}
					m := &ms[0]
					if m.Err != nil || !bytes.Equal(payload(m), q) || m.Sock != sock || m.Dest != d {
						t.Fatalf("query %d: got %q on socket %d from %v (err %v), want %q on socket %d from %v",
							i, payload(m), m.Sock, m.Dest.Addr(), m.Err, q, sock, d.Addr())
					}
					p.Answered(m.Sock)
				}
				perSock := max(qps, 1)
				wantSocks := (queries + perSock - 1) / perSock
				if len(seen) != wantSocks {
					t.Errorf("%d distinct socket ids, want %d", len(seen), wantSocks)
				}
				ports, got := srv.distinctPorts()
				t.Logf("%d queries from %d distinct source ports", got, ports)
				// Random ephemeral ports (about 28,000 on Linux) collide a
				// few times in 1,000 picks: the birthday bound gives ~2%.
				if got != queries || ports < wantSocks*9/10 || ports > wantSocks {
					t.Errorf("server got %d queries from %d distinct source ports, want %d from %d..%d",
						got, ports, queries, wantSocks*9/10, wantSocks)
				}
				st := p.Stats()
				want := PoolStats{Open: 1, MaxOpen: 2, Opened: uint64(wantSocks), Retired: uint64(wantSocks - 1), ClosedAnswered: uint64(wantSocks - 1)}
				if st != want {
					t.Errorf("Stats() = %+v, want %+v", st, want)
				}
			})
		}
	}
}

// TestPoolConcurrent sends from several goroutines to two upstreams while
// one goroutine receives and another reaps, then closes the pool under the
// blocked receiver. Run it with -race.
func TestPoolConcurrent(t *testing.T) {
	const senders, each = 4, 250
	srvs := []*testServer{startServer(t, "127.0.0.1", true, true), startServer(t, "::1", true, true)}
	p := newTestPool(t, PoolOptions{QueriesPerSocket: 3, MaxSockets: 32})
	ds := []*Dest{p.Dest(srvs[0].addr), p.Dest(srvs[1].addr)}

	type sent struct {
		sock uint32
		dest *Dest
	}
	var mu sync.Mutex
	want := map[uint32]sent{}    // by key
	answers := map[uint32]sent{} // by key

	// At most window queries in flight, so that no socket buffer on
	// loopback overflows: a lost datagram would be the test's, not the
	// pool's.
	const window = 64
	tokens := make(chan struct{}, window)
	recvDone := make(chan error, 1)
	go func() {
		ms := newMsgs(8, 512)
		for {
			n, err := p.Recv(ms)
			if err != nil {
				recvDone <- err
				return
			}
			for i := range n {
				m := &ms[i]
				if m.Err != nil || m.N != 4 {
					recvDone <- fmt.Errorf("unexpected message: %d bytes, err %v", m.N, m.Err)
					return
				}
				mu.Lock()
				answers[binary.BigEndian.Uint32(payload(m))] = sent{m.Sock, m.Dest}
				mu.Unlock()
				p.Answered(m.Sock)
				<-tokens
			}
		}
	}()
	stopReap := make(chan struct{})
	reapDone := make(chan struct{})
	go func() {
		defer close(reapDone)
		for {
			select {
			case <-stopReap:
				return
			case <-time.After(time.Millisecond):
				p.Reap(time.Now())
				if o := p.Stats().Open; o > 32 {
					t.Errorf("%d sockets open, above MaxSockets 32", o)
				}
			}
		}
	}()

	var wg sync.WaitGroup
	for g := range senders {
		wg.Go(func() {
			for i := range each {
				key := uint32(g<<16 | i)
				d := ds[i%2]
				var q [4]byte
				binary.BigEndian.PutUint32(q[:], key)
				select {
				case tokens <- struct{}{}:
				case <-time.After(testWait):
					t.Errorf("no answer for %v with %d queries in flight", testWait, window)
					return
				}
				// Pick first, as the engine does, so the socket is known
				// before the answer can arrive.
				sock, err := p.Pick(d)
				if err != nil {
					t.Errorf("Pick: %v", err)
					return
				}
				mu.Lock()
				want[key] = sent{sock, d}
				mu.Unlock()
				if err := p.SendOn(sock, q[:]); err != nil {
					t.Errorf("SendOn: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	deadline := time.Now().Add(testWait)
	for {
		mu.Lock()
		n := len(answers)
		mu.Unlock()
		if n == senders*each || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(stopReap)
	<-reapDone
	mu.Lock()
	if len(answers) != senders*each {
		_, g0 := srvs[0].distinctPorts()
		_, g1 := srvs[1].distinctPorts()
		t.Errorf("%d answers, want %d (servers got %d+%d; %+v)", len(answers), senders*each, g0, g1, p.Stats())
	}
	for k, a := range answers {
		if w := want[k]; a != w {
			t.Errorf("answer %#x on socket %d of %v, want socket %d of %v", k, a.sock, a.dest.Addr(), w.sock, w.dest.Addr())
		}
	}
	mu.Unlock()
	p.Close()
	select {
	case err := <-recvDone:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Recv after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(testWait):
		t.Fatal("Close did not unblock Recv")
	}
	if st := p.Stats(); st.Open != 0 || st.MaxOpen > 32 {
		t.Errorf("after Close: %+v, want nothing open and MaxOpen <= 32", st)
	}
}

// TestPoolCloseUnderLoad: Release and Close race with senders, the
// receiver and the reaper; every call ends with a result or a closed
// error, and no descriptor is left behind. Run it with -race.
func TestPoolCloseUnderLoad(t *testing.T) {
	srvs := []*testServer{startServer(t, "127.0.0.1", true, false), startServer(t, "::1", true, false), startServer(t, "127.0.0.1", false, false)}
	fds0 := countFDs(t)
	for round := range 5 {
		p, err := NewPool(PoolOptions{QueriesPerSocket: 1 + round, MaxSockets: 16, Linger: time.Millisecond})
		if errors.Is(err, errors.ErrUnsupported) {
			t.Skip(err)
		}
		if err != nil {
			t.Fatal(err)
		}
		ds := []*Dest{p.Dest(srvs[0].addr), p.Dest(srvs[1].addr), p.Dest(srvs[2].addr)}
		var wg sync.WaitGroup
		stop := make(chan struct{})
		wg.Go(func() {
			ms := newMsgs(8, 512)
			for {
				n, err := p.Recv(ms)
				if err != nil {
					if !errors.Is(err, net.ErrClosed) {
						t.Errorf("Recv: %v", err)
					}
					return
				}
				for i := range n {
					p.Answered(ms[i].Sock)
				}
			}
		})
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				case <-time.After(100 * time.Microsecond):
					p.Reap(time.Now())
				}
			}
		})
		for g := range 4 {
			wg.Go(func() {
				for i := 0; i < 100000; i++ {
					select {
					case <-stop:
						return
					default:
					}
					_, err := p.Send(ds[(g+i)%len(ds)], []byte("q"))
					switch {
					case err == nil, errors.Is(err, net.ErrClosed), errors.Is(err, ErrReleased),
						errors.Is(err, ErrSocketClosed), errors.Is(err, ErrPoolFull):
					default:
						t.Errorf("Send: %v", err)
						return
					}
				}
			})
		}
		time.Sleep(20 * time.Millisecond)
		p.Release(ds[round%len(ds)])
		time.Sleep(10 * time.Millisecond)
		p.Close()
		time.Sleep(5 * time.Millisecond) // Sends go on against the closed pool
		close(stop)
		wg.Wait()
		if st := p.Stats(); st.Open != 0 || st.MaxOpen > 16 {
			t.Fatalf("round %d: after Close %+v, want nothing open and at most 16 at once", round, st)
		}
	}
	if fds0 >= 0 {
		if n := countFDs(t); n != fds0 {
			t.Errorf("%d descriptors open after the pools closed, %d before", n, fds0)
		}
	}
}

// TestPoolForeignSourceDropped: datagrams to a pool socket's port from any
// address or port but its upstream's never reach Recv; the kernel drops
// them because the socket is connected.
func TestPoolForeignSourceDropped(t *testing.T) {
	for _, tc := range []struct{ ip, other string }{
		{"127.0.0.1", "127.0.0.2"}, // on Linux all of 127/8 is local; on darwin only if aliased
		{"::1", ""},
	} {
		t.Run(tc.ip, func(t *testing.T) {
			up, upAddr := listen(t, tc.ip)
			p := newTestPool(t, PoolOptions{})
			d := p.Dest(upAddr)
			sock, err := p.Send(d, []byte("query"))
			if err != nil {
				t.Fatal(err)
			}
			_, src := readFrom(t, up) // the pool socket's address

			forgers := 0
			forge := func(laddr string) {
				var la *net.UDPAddr
				if laddr != "" {
					la = net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(laddr), 0))
				}
				c, err := net.DialUDP("udp", la, net.UDPAddrFromAddrPort(src))
				if err != nil {
					if laddr != "" {
						t.Logf("no forger from %s: %v", laddr, err)
						return
					}
					t.Fatal(err)
				}
				defer c.Close()
				if _, err := c.Write([]byte("forged")); err != nil {
					t.Fatal(err)
				}
				// No socket took it: the kernel answered port unreachable,
				// which a connected socket reads as ECONNREFUSED.
				c.SetReadDeadline(time.Now().Add(testWait))
				if _, err := c.Read(make([]byte, 64)); !errors.Is(err, syscall.ECONNREFUSED) {
					t.Errorf("forger from %v: read %v, want ECONNREFUSED (the datagram must find no socket)", c.LocalAddr(), err)
				}
				forgers++
			}
			forge("") // same address, another port
			if tc.other != "" {
				forge(tc.other) // another address
			}
			if forgers == 0 {
				t.Fatal("no forger could send")
			}
			ms := newMsgs(4, 512)
			for _, answer := range []string{"answer 1", "answer 2"} {
				if _, err := up.WriteToUDPAddrPort([]byte(answer), src); err != nil {
					t.Fatal(err)
				}
				// A forged datagram would have been queued first.
				n := recv(t, p, ms)
				if n != 1 || string(payload(&ms[0])) != answer || ms[0].Sock != sock {
					t.Fatalf("Recv: %d messages, first %q on socket %d; want only %q on socket %d", n, payload(&ms[0]), ms[0].Sock, answer, sock)
				}
			}
		})
	}
}

// TestPoolBounded: against an upstream that never answers, open sockets
// stay within MaxSockets, Sends go on reusing the current socket, and Reap
// closes every retired socket once Linger has passed.
func TestPoolBounded(t *testing.T) {
	const maxSocks, queries = 64, 10000
	srv := startServer(t, "127.0.0.1", false, false)
	p := newTestPool(t, PoolOptions{MaxSockets: maxSocks, Linger: time.Hour})
	d := p.Dest(srv.addr)
	fds0 := countFDs(t)
	start := time.Now()
	for i := range queries {
		if _, err := p.Send(d, []byte("query")); err != nil {
			t.Fatalf("Send %d: %v", i, err)
		}
		if o := p.Stats().Open; o > maxSocks {
			t.Fatalf("after Send %d: %d sockets open, above MaxSockets %d", i, o, maxSocks)
		}
		if time.Since(start) > 4*testWait {
			t.Fatalf("only %d Sends in %v", i, time.Since(start))
		}
	}
	st := p.Stats()
	if st.Open != maxSocks || st.MaxOpen != maxSocks || st.Opened != maxSocks || st.ReusedPastBudget != queries-maxSocks || st.Retired != maxSocks-1 {
		t.Errorf("Stats() = %+v, want %d open (and most), %d opened, %d retired, %d reused past budget", st, maxSocks, maxSocks, maxSocks-1, queries-maxSocks)
	}
	if fds0 >= 0 {
		if n := countFDs(t) - fds0; n != maxSocks {
			t.Errorf("%d more descriptors open, want %d", n, maxSocks)
		}
	}

	other := p.Dest(netip.AddrPortFrom(srv.addr.Addr(), srv.addr.Port()+1))
	if _, err := p.Send(other, []byte("query")); !errors.Is(err, ErrPoolFull) {
		t.Errorf("Send to a new upstream at the bound: %v, want ErrPoolFull", err)
	}

	p.Reap(time.Now()) // the linger has not run out
	if o := p.Stats().Open; o != maxSocks {
		t.Errorf("Reap before the linger ran out: %d open, want %d", o, maxSocks)
	}
	p.Reap(time.Now().Add(time.Hour + time.Second))
	st = p.Stats()
	if st.Open != 1 || st.ClosedLinger != maxSocks-1 || st.NoSocket != 1 {
		t.Errorf("after Reap past the linger: %+v, want 1 open, %d closed by linger, 1 refused", st, maxSocks-1)
	}
	if fds0 >= 0 {
		if n := countFDs(t) - fds0; n != 1 {
			t.Errorf("%d more descriptors open after Reap, want 1", n)
		}
	}
	if _, err := p.Send(other, []byte("query")); err != nil {
		t.Errorf("Send to the new upstream after Reap: %v", err)
	}
}

// countFDs returns the number of open descriptors, or -1 where it cannot
// tell.
func countFDs(t testing.TB) int {
	dir := "/proc/self/fd"
	if runtime.GOOS == "darwin" {
		dir = "/dev/fd"
	}
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Logf("cannot count descriptors: %v", err)
		return -1
	}
	return len(es)
}

// TestPoolLingerReapsWithoutReap: at the bound, Send itself closes retired
// sockets whose linger ran out, so the pool keeps rotating ports even if
// Reap is late.
func TestPoolLingerReapsWithoutReap(t *testing.T) {
	srv := startServer(t, "127.0.0.1", false, false)
	p := newTestPool(t, PoolOptions{MaxSockets: 4, Linger: time.Millisecond})
	d := p.Dest(srv.addr)
	for range 20 {
		if _, err := p.Send(d, []byte("query")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	if st := p.Stats(); st.Opened != 20 || st.ReusedPastBudget != 0 || st.Open > 4 {
		t.Errorf("Stats() = %+v, want 20 opened, none reused past budget, at most 4 open", st)
	}
}

// TestPoolAnsweredClosesEarly: a retired socket closes as soon as every
// query on it is Answered, not at the end of its linger; until then it
// still delivers late answers.
func TestPoolAnsweredClosesEarly(t *testing.T) {
	up, upAddr := listen(t, "127.0.0.1")
	p := newTestPool(t, PoolOptions{Linger: time.Hour})
	d := p.Dest(upAddr)
	ms := newMsgs(4, 512)

	s1, err := p.Send(d, []byte("q1"))
	if err != nil {
		t.Fatal(err)
	}
	_, src1 := readFrom(t, up)
	s2, err := p.Send(d, []byte("q2")) // retires s1, whose query is due
	if err != nil {
		t.Fatal(err)
	}
	_, src2 := readFrom(t, up)
	if s1 == s2 || src1 == src2 {
		t.Fatalf("two queries on socket %d (%v) and %d (%v), want two sockets", s1, src1, s2, src2)
	}
	if st := p.Stats(); st.Open != 2 || st.Retired != 1 || !p.isOpen(s1) {
		t.Fatalf("after the second Send: %+v, socket 1 open %v; want 2 open, 1 retired", st, p.isOpen(s1))
	}

	// The late answer on the retired socket is still delivered.
	up.WriteToUDPAddrPort([]byte("a1"), src1)
	if n := recv(t, p, ms); n != 1 || string(payload(&ms[0])) != "a1" || ms[0].Sock != s1 {
		t.Fatalf("got %q on %d, want a1 on %d", payload(&ms[0]), ms[0].Sock, s1)
	}
	p.Answered(s1)
	if st := p.Stats(); st.Open != 1 || st.ClosedAnswered != 1 || p.isOpen(s1) {
		t.Fatalf("after Answered(s1): %+v; want socket 1 closed at once", st)
	}
	p.Answered(s1) // stale: ignored
	if st := p.Stats(); st.ClosedAnswered != 1 {
		t.Errorf("a second Answered of a closed socket changed the stats: %+v", st)
	}

	// s2 is answered while current; retiring it closes it at once.
	up.WriteToUDPAddrPort([]byte("a2"), src2)
	if n := recv(t, p, ms); n != 1 || ms[0].Sock != s2 {
		t.Fatalf("got %q on %d, want a2 on %d", payload(&ms[0]), ms[0].Sock, s2)
	}
	p.Answered(s2)
	if !p.isOpen(s2) {
		t.Fatal("the current socket closed when answered")
	}
	s3, err := p.Send(d, []byte("q3"))
	if err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); st.Open != 1 || st.ClosedAnswered != 2 || p.isOpen(s2) || !p.isOpen(s3) {
		t.Errorf("after the third Send: %+v; want socket 2 closed, socket 3 open", st)
	}

	// A picked query given back counts as done.
	readFrom(t, up)
	s4, err := p.Pick(d) // retires s3, whose query is due
	if err != nil || s4 == s3 {
		t.Fatalf("Pick: %d, %v", s4, err)
	}
	p.Answered(s3)
	s5, err := p.Pick(d) // s4 spent its budget on the picked query: retires it
	if err != nil || s5 == s4 {
		t.Fatalf("Pick: %d, %v", s5, err)
	}
	if !p.isOpen(s4) {
		t.Fatal("a socket with a picked query closed")
	}
	p.Unpick(s4)
	if p.isOpen(s4) {
		t.Error("Unpick of a retired socket's last query left it open")
	}
	if err := p.SendOn(s4, []byte("late")); !errors.Is(err, ErrSocketClosed) {
		t.Errorf("SendOn of a closed socket: %v, want ErrSocketClosed", err)
	}
}

// TestPoolSocketLife: a socket is retired after SocketLife even with budget
// left.
func TestPoolSocketLife(t *testing.T) {
	srv := startServer(t, "127.0.0.1", false, false)
	p := newTestPool(t, PoolOptions{QueriesPerSocket: 1000, SocketLife: 30 * time.Millisecond})
	d := p.Dest(srv.addr)
	s1, err1 := p.Send(d, []byte("q"))
	s2, err2 := p.Send(d, []byte("q"))
	if err1 != nil || err2 != nil || s1 != s2 {
		t.Fatalf("two Sends within the life: sockets %d, %d (%v, %v), want one", s1, s2, err1, err2)
	}
	time.Sleep(40 * time.Millisecond)
	s3, err := p.Send(d, []byte("q"))
	if err != nil || s3 == s1 {
		t.Fatalf("Send after the life: socket %d (%v), want a new one", s3, err)
	}
	if st := p.Stats(); st.Retired != 1 {
		t.Errorf("Stats() = %+v, want 1 retired", st)
	}
}

// TestPoolConnRefused: an ICMP port unreachable comes back as a Msg.Err
// naming the socket and upstream.
func TestPoolConnRefused(t *testing.T) {
	for _, ip := range []string{"127.0.0.1", "::1"} {
		t.Run(ip, func(t *testing.T) {
			c, addr := listen(t, ip)
			c.Close() // nothing listens on addr now
			p := newTestPool(t, PoolOptions{})
			d := p.Dest(addr)
			sock, err := p.Send(d, []byte("query"))
			if err != nil {
				t.Fatal(err)
			}
			ms := newMsgs(2, 512)
			n := recv(t, p, ms)
			m := &ms[0]
			if n != 1 || !errors.Is(m.Err, syscall.ECONNREFUSED) || m.N != 0 || m.Dest != d || m.Sock != sock {
				t.Fatalf("Recv: %d messages, first err %v, %d bytes, socket %d, dest %v; want ECONNREFUSED on socket %d of %v",
					n, m.Err, m.N, m.Sock, m.Dest.Addr(), sock, addr)
			}
		})
	}
}

// TestPoolTruncated: an answer larger than its buffer is dropped and
// counted; the answers around it are delivered whole and in order.
func TestPoolTruncated(t *testing.T) {
	up, upAddr := listen(t, "127.0.0.1")
	p := newTestPool(t, PoolOptions{})
	d := p.Dest(upAddr)
	if _, err := p.Send(d, []byte("q")); err != nil {
		t.Fatal(err)
	}
	_, src := readFrom(t, up)
	big := bytes.Repeat([]byte("x"), 100)
	for _, a := range [][]byte{big, []byte("small 1"), big, []byte("small 2")} {
		if _, err := up.WriteToUDPAddrPort(a, src); err != nil {
			t.Fatal(err)
		}
	}
	ms := newMsgs(4, 16)
	var got []string
	for len(got) < 2 {
		n := recv(t, p, ms)
		for i := range n {
			if ms[i].Err != nil {
				t.Fatalf("Msg.Err %v", ms[i].Err)
			}
			got = append(got, string(payload(&ms[i])))
		}
	}
	if len(got) != 2 || got[0] != "small 1" || got[1] != "small 2" {
		t.Errorf("delivered %q, want [small 1, small 2]", got)
	}
	if tr := p.Stats().Truncated; tr != 2 {
		t.Errorf("Truncated = %d, want 2", tr)
	}
}

// TestPoolRelease: Release closes the upstream's sockets at once; later
// Sends to it fail, other upstreams go on.
func TestPoolRelease(t *testing.T) {
	srv := startServer(t, "127.0.0.1", false, false)
	srv2 := startServer(t, "127.0.0.1", true, false)
	p := newTestPool(t, PoolOptions{Linger: time.Hour})
	d, d2 := p.Dest(srv.addr), p.Dest(srv2.addr)
	var socks []uint32
	for range 5 {
		s, err := p.Send(d, []byte("q"))
		if err != nil {
			t.Fatal(err)
		}
		socks = append(socks, s)
	}
	s2, err := p.Send(d2, []byte("q"))
	if err != nil {
		t.Fatal(err)
	}
	if o := p.Stats().Open; o != 6 {
		t.Fatalf("%d open, want 6", o)
	}
	p.Release(d)
	p.Release(d) // again: nothing more
	if o := p.Stats().Open; o != 1 {
		t.Errorf("after Release: %d open, want 1", o)
	}
	for _, s := range socks {
		if p.isOpen(s) {
			t.Errorf("socket %d of the released upstream is open", s)
		}
	}
	if _, err := p.Send(d, []byte("q")); !errors.Is(err, ErrReleased) {
		t.Errorf("Send after Release: %v, want ErrReleased", err)
	}
	ms := newMsgs(2, 512)
	if n := recv(t, p, ms); n != 1 || ms[0].Sock != s2 || ms[0].Dest != d2 {
		t.Errorf("the other upstream's answer: %d messages, socket %d; want 1 on %d", n, ms[0].Sock, s2)
	}
}

// TestPoolClose: Close unblocks Recv with net.ErrClosed and closes every
// socket; later calls fail with net.ErrClosed.
func TestPoolClose(t *testing.T) {
	srv := startServer(t, "127.0.0.1", false, false)
	p := newTestPool(t, PoolOptions{Linger: time.Hour})
	d := p.Dest(srv.addr)
	for range 3 {
		if _, err := p.Send(d, []byte("q")); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() {
		_, err := p.Recv(newMsgs(2, 512))
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("Recv returned before Close: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("blocked Recv: %v, want net.ErrClosed", err)
		}
	case <-time.After(testWait):
		t.Fatal("Close did not unblock Recv")
	}
	if o := p.Stats().Open; o != 0 {
		t.Errorf("%d open after Close", o)
	}
	if _, err := p.Send(d, []byte("q")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Send after Close: %v, want net.ErrClosed", err)
	}
	if _, err := p.Send(p.Dest(srv.addr), []byte("q")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Send to a new Dest after Close: %v, want net.ErrClosed", err)
	}
	if _, err := p.Recv(newMsgs(1, 512)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Recv after Close: %v, want net.ErrClosed", err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestPoolSocketsPerDest: with SocketsPerDest sockets in service, queries
// are spread over that many sockets at random, never more are in service
// at once, and each still carries at most QueriesPerSocket queries.
func TestPoolSocketsPerDest(t *testing.T) {
	srv := startServer(t, "127.0.0.1", true, false)
	const k, budget, n = 4, 8, 400
	p := newTestPool(t, PoolOptions{SocketsPerDest: k, QueriesPerSocket: budget, Linger: time.Hour})
	d := p.Dest(srv.addr)
	perSock := map[uint32]int{}
	var changes int
	var last uint32
	for i := range n {
		sock, err := p.Send(d, []byte("q"))
		if err != nil {
			t.Fatalf("Send %d: %v", i, err)
		}
		perSock[sock]++
		if sock != last {
			changes++
		}
		last = sock
		inService := 0
		for _, id := range d.cur {
			if id != 0 {
				inService++
			}
		}
		if inService > k {
			t.Fatalf("after Send %d: %d sockets in service, want at most %d", i, inService, k)
		}
	}
	for sock, c := range perSock {
		if c > budget {
			t.Errorf("socket %d carried %d queries, above QueriesPerSocket %d", sock, c, budget)
		}
	}
	// Each place spends its own budget, so about n/budget sockets are
	// opened, as with one place; but consecutive queries change socket
	// about 3 times in 4 (1 - 1/k), where one place changes once per budget.
	if got := p.Stats().Opened; got < n/budget || got > n/budget+k {
		t.Errorf("opened %d sockets for %d queries at %d each over %d places, want %d to %d", got, n, budget, k, n/budget, n/budget+k)
	}
	if changes < n/2 {
		t.Errorf("consecutive queries changed socket %d times of %d; with %d places picked at random, about %d", changes, n, k, n*(k-1)/k)
	}
}

// TestPoolIDs: socket ids are non-zero and never repeat while slots are
// reused; an Answered for a closed socket does not count for the socket
// that took its slot.
func TestPoolIDs(t *testing.T) {
	srv := startServer(t, "127.0.0.1", true, false)
	p := newTestPool(t, PoolOptions{MaxSockets: 2}) // 4 slots: each reused every few sockets
	d := p.Dest(srv.addr)
	ms := newMsgs(2, 512)
	seen := map[uint32]bool{}
	var first uint32
	for i := range 50 {
		sock, err := p.Send(d, []byte("q"))
		if err != nil {
			t.Fatal(err)
		}
		if sock == 0 || seen[sock] {
			t.Fatalf("Send %d: socket id %d is zero or repeated", i, sock)
		}
		seen[sock] = true
		if first == 0 {
			first = sock
		}
		recv(t, p, ms)
		p.Answered(ms[0].Sock)
	}
	cur := d.cur[0]
	s := p.slotOf(cur)
	var stale uint32
	for id := range seen {
		if id != cur && id&p.mask == cur&p.mask {
			stale = id
		}
	}
	if stale == 0 {
		t.Fatal("no closed socket shared the current socket's slot")
	}
	before := s.answered.Load()
	p.Answered(stale)
	if after := s.answered.Load(); after != before {
		t.Errorf("Answered(%d), a closed socket, counted for socket %d in its slot", stale, cur)
	}
	if _, err := p.Send(p.Dest(netip.AddrPort{}), []byte("q")); err == nil {
		t.Error("Send to an invalid address succeeded")
	}
	other := newTestPool(t, PoolOptions{})
	if _, err := other.Send(d, []byte("q")); err == nil {
		t.Error("Send with another pool's Dest succeeded")
	}
}

func TestPoolOptions(t *testing.T) {
	for _, opt := range []PoolOptions{
		{QueriesPerSocket: -1},
		{SocketsPerDest: -1},
		{SocketsPerDest: MaxSocketsPerDest + 1},
		{Linger: -time.Second},
		{MaxSockets: MaxPoolSockets + 1},
	} {
		if p, err := NewPool(opt); err == nil {
			p.Close()
			t.Errorf("NewPool(%+v) succeeded", opt)
		}
	}
	p := newTestPool(t, PoolOptions{})
	if _, err := p.Recv(nil); err == nil {
		t.Error("Recv with no Msg succeeded")
	}
	if _, err := p.Recv([]Msg{{Buf: make([]byte, 4), Off: 4}}); err == nil {
		t.Error("Recv with an empty buffer succeeded")
	}
}

// TestPoolAllocs: the hot path allocates nothing, rotation included:
// opening, retiring and closing sockets, at the bound and not.
func TestPoolAllocs(t *testing.T) {
	echo := startServer(t, "127.0.0.1", true, false)
	silent := startServer(t, "127.0.0.1", false, false)
	for _, qps := range []int{1, 1000} {
		t.Run(fmt.Sprintf("Send+Recv+Answered/QueriesPerSocket=%d", qps), func(t *testing.T) {
			p := newTestPool(t, PoolOptions{QueriesPerSocket: qps})
			d := p.Dest(echo.addr)
			ms := newMsgs(4, 512)
			q := []byte("query")
			var fail error
			round := func() {
				if _, err := p.Send(d, q); err != nil {
					fail = err
					return
				}
				n, err := p.Recv(ms)
				if err != nil || n != 1 {
					fail = fmt.Errorf("Recv: %d, %v", n, err)
					return
				}
				p.Answered(ms[0].Sock)
			}
			for range 50 {
				round()
			}
			if a := testing.AllocsPerRun(500, round); a != 0 {
				t.Errorf("%v allocations per round trip, want 0", a)
			}
			if fail != nil {
				t.Fatal(fail)
			}
		})
	}
	t.Run("Send at the bound/Reap", func(t *testing.T) {
		p := newTestPool(t, PoolOptions{MaxSockets: 8, Linger: time.Hour})
		d := p.Dest(silent.addr)
		q := []byte("query")
		var fail error
		round := func() {
			if _, err := p.Send(d, q); err != nil {
				fail = err
			}
			if _, err := p.Send(d, q); err != nil {
				fail = err
			}
			p.Reap(time.Now().Add(2 * time.Hour))
		}
		for range 20 {
			round()
		}
		if a := testing.AllocsPerRun(500, round); a != 0 {
			t.Errorf("%v allocations per Send, Send, Reap", a)
		}
		if fail != nil {
			t.Fatal(fail)
		}
	})
}

// BenchmarkPoolSendRecv: one query and its answer through the pool, on
// loopback, against a plain connected socket as the baseline.
func BenchmarkPoolSendRecv(b *testing.B) {
	srv := startServer(b, "127.0.0.1", true, false)
	q := make([]byte, 40)
	for _, qps := range []int{1, 1000} {
		b.Run(fmt.Sprintf("QueriesPerSocket=%d", qps), func(b *testing.B) {
			p := newTestPool(b, PoolOptions{QueriesPerSocket: qps})
			d := p.Dest(srv.addr)
			ms := newMsgs(4, 512)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := p.Send(d, q); err != nil {
					b.Fatal(err)
				}
				if _, err := p.Recv(ms); err != nil {
					b.Fatal(err)
				}
				p.Answered(ms[0].Sock)
			}
		})
	}
	b.Run("baseline-net.UDPConn", func(b *testing.B) {
		c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(srv.addr))
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		buf := make([]byte, 512)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.Write(q); err != nil {
				b.Fatal(err)
			}
			if _, err := c.Read(buf); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkPoolPipelined: queries sent back to back (at most 64 in flight)
// while one goroutine receives, as the engine runs; ns/op is per query.
func BenchmarkPoolPipelined(b *testing.B) {
	srv := startServer(b, "127.0.0.1", true, false)
	q := make([]byte, 40)
	for _, qps := range []int{1, 1000} {
		b.Run(fmt.Sprintf("QueriesPerSocket=%d", qps), func(b *testing.B) {
			p := newTestPool(b, PoolOptions{QueriesPerSocket: qps})
			d := p.Dest(srv.addr)
			tokens := make(chan struct{}, 64)
			done := make(chan struct{})
			go func() {
				defer close(done)
				ms := newMsgs(16, 512)
				for {
					n, err := p.Recv(ms)
					if err != nil {
						return
					}
					for i := range n {
						p.Answered(ms[i].Sock)
						<-tokens
					}
				}
			}()
			stuck := time.NewTimer(testWait)
			b.ReportAllocs()
			for b.Loop() {
				select {
				case tokens <- struct{}{}:
				default:
					stuck.Reset(testWait)
					select {
					case tokens <- struct{}{}:
					case <-stuck.C:
						b.Fatal("no answer within", testWait)
					}
				}
				if _, err := p.Send(d, q); err != nil {
					b.Fatal(err)
				}
			}
			p.Close()
			<-done
		})
	}
}

// BenchmarkPoolSend: the sender's side alone, with the retired socket's
// close (Reap) included, against an upstream that drops everything.
func BenchmarkPoolSend(b *testing.B) {
	srv := startServer(b, "127.0.0.1", false, false)
	q := make([]byte, 40)
	for _, qps := range []int{1, 1000} {
		b.Run(fmt.Sprintf("QueriesPerSocket=%d", qps), func(b *testing.B) {
			p := newTestPool(b, PoolOptions{QueriesPerSocket: qps, Linger: time.Nanosecond})
			d := p.Dest(srv.addr)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := p.Send(d, q); err != nil {
					b.Fatal(err)
				}
				p.Reap(time.Now())
			}
		})
	}
}

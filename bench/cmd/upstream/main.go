// SPDX-License-Identifier: MIT

// Command upstream is the benchmark's upstream resolver: it answers every
// A query with 192.0.2.80 and every AAAA query with 2001:db8::80, TTL 0
// (so no cache keeps them; -ttl gives another TTL, for the cache phase),
// and every other type with NOERROR and no records. It does nothing else:
// no zone, no cache, no EDNS (the OPT record of a query is dropped, which
// RFC 6891 §7 allows a responder without EDNS to do). Each socket is served
// by one goroutine that reads a query into a fixed buffer, rewrites it in
// place and writes it back, so the steady state allocates nothing.
//
//	upstream -listen 192.0.2.1:53 [-sockets N] [-tcp=false] [-ttl SECONDS]
//
// With -sockets > 1 the sockets share the port with SO_REUSEPORT and the
// kernel spreads clients over them by flow hash. It also answers over TCP
// on the same address (RFC 1035 §4.2.2 length framing, RFC 7766): one
// goroutine per connection, pipelined queries answered in order, the
// answers to the queries of one read in one write; at most -tcp-conns
// connections at once (more are closed at once), each closed after
// -tcp-idle without a query. It exits on SIGINT or SIGTERM and prints how
// many queries it answered over UDP and over TCP; SIGUSR1 prints the same
// line and goes on (the cache phase reads it to check what reached the
// upstream).
package main

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

const (
	hdrLen = 12 // RFC 1035 §4.1.1
	typeA  = 1
	type4A = 28
)

var (
	addr4 = [4]byte{192, 0, 2, 80}
	addr6 = [16]byte{0x20, 0x01, 0x0d, 0xb8, 15: 0x80}
)

func main() {
	listen := flag.String("listen", "192.0.2.1:53", "UDP address to answer on")
	sockets := flag.Int("sockets", 1, "sockets (SO_REUSEPORT), one goroutine each")
	tcp := flag.Bool("tcp", true, "also answer over TCP on the same address")
	tcpConns := flag.Int("tcp-conns", 4096, "TCP connections served at once")
	tcpIdle := flag.Duration("tcp-idle", 10*time.Second, "close a TCP connection after this long without a query")
	ttl := flag.Uint("ttl", 0, "TTL of the answers' records in seconds (0: nothing may be cached)")
	flag.Parse()
	if *ttl > 1<<31-1 {
		fmt.Fprintln(os.Stderr, "upstream: -ttl must be at most 2147483647 (RFC 2181 §8)")
		os.Exit(2)
	}
	answerTTL := uint32(*ttl)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
			if serr == nil {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	var conns []*net.UDPConn
	for range max(*sockets, 1) {
		pc, err := lc.ListenPacket(ctx, "udp", *listen)
		if err != nil {
			fmt.Fprintln(os.Stderr, "upstream:", err)
			os.Exit(1)
		}
		conns = append(conns, pc.(*net.UDPConn))
	}
	var answered, answeredTCP atomic.Int64
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			serve(c, &answered, answerTTL)
		}()
	}
	var ts *tcpServer
	if *tcp {
		ln, err := net.Listen("tcp", *listen)
		if err != nil {
			fmt.Fprintln(os.Stderr, "upstream:", err)
			os.Exit(1)
		}
		ts = &tcpServer{ln: ln, max: int64(max(*tcpConns, 1)), idle: *tcpIdle, ttl: answerTTL, answered: &answeredTCP, conns: map[net.Conn]struct{}{}}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ts.serve()
		}()
	}
	fmt.Fprintf(os.Stderr, "upstream: answering on %s with %d socket(s), TCP %v, TTL %d\n", *listen, len(conns), *tcp, answerTTL)
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	defer signal.Stop(usr1)
	for ctx.Err() == nil {
		select {
		case <-usr1:
			report(answered.Load(), answeredTCP.Load())
		case <-ctx.Done():
		}
	}
	for _, c := range conns {
		c.Close()
	}
	if ts != nil {
		ts.close()
	}
	wg.Wait()
	report(answered.Load(), answeredTCP.Load())
}

// report prints the queries answered so far, in the form bench/e2e reads
// (answeredLine).
func report(udp, tcp int64) {
	fmt.Fprintf(os.Stderr, "upstream: answered %d queries over UDP, %d over TCP\n", udp, tcp)
}

// serve answers queries on c with records of TTL ttl until it is closed.
func serve(c *net.UDPConn, answered *atomic.Int64, ttl uint32) {
	var buf [4096]byte
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf[:])
		if err != nil {
			if isClosed(err) {
				return
			}
			continue
		}
		if m := answer(buf[:], n, ttl); m > 0 {
			if _, err := c.WriteToUDPAddrPort(buf[:m], from); err == nil {
				answered.Add(1)
			}
		}
	}
}

func isClosed(err error) bool { return errors.Is(err, net.ErrClosed) }

// tcpServer answers DNS over TCP.
type tcpServer struct {
	ln       net.Listener
	max      int64
	idle     time.Duration
	ttl      uint32 // of the answers' records
	answered *atomic.Int64
	open     atomic.Int64
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	closed   bool
}

// serve accepts connections until the listener is closed.
func (s *tcpServer) serve() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if isClosed(err) {
				s.wg.Wait()
				return
			}
			time.Sleep(time.Millisecond) // e.g. EMFILE: do not spin
			continue
		}
		if s.open.Add(1) > s.max || !s.track(c, true) {
			s.open.Add(-1)
			c.Close()
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.open.Add(-1)
			defer c.Close()
			defer s.track(c, false)
			s.conn(c)
		}()
	}
}

// track adds or removes c from the open connections; false when the
// server is closing.
func (s *tcpServer) track(c net.Conn, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !add {
		delete(s.conns, c)
		return true
	}
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

// close stops accepting and closes every connection.
func (s *tcpServer) close() {
	s.ln.Close()
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
}

// conn answers the queries of one connection, in order, until the client
// closes it, it is idle for s.idle, or a message is not a query.
func (s *tcpServer) conn(c net.Conn) {
	in := make([]byte, 1<<17) // a 2-byte length says at most 65535
	out := make([]byte, 0, 1<<14)
	var scratch [4096]byte
	have := 0
	for {
		c.SetReadDeadline(time.Now().Add(s.idle))
		n, err := c.Read(in[have:])
		if n == 0 && err != nil {
			return
		}
		have += n
		b := in[:have]
		out = out[:0]
		k := 0
		for len(b) >= 2 {
			m := int(b[0])<<8 | int(b[1])
			if len(b) < 2+m {
				break
			}
			// Room for the answer record (at most 28 bytes more).
			if m > len(scratch)-32 {
				return
			}
			copy(scratch[:], b[2:2+m])
			if a := answer(scratch[:], m, s.ttl); a > 0 {
				out = append(out, byte(a>>8), byte(a))
				out = append(out, scratch[:a]...)
				k++
			}
			b = b[2+m:]
		}
		have = copy(in, b)
		if len(out) > 0 {
			c.SetWriteDeadline(time.Now().Add(s.idle))
			if _, err := c.Write(out); err != nil {
				return
			}
			s.answered.Add(int64(k))
		}
		if err != nil {
			return
		}
	}
}

// answer turns the query in b[:n] into its answer in place, its record
// with TTL ttl, and returns the answer's length, or 0 for anything that is
// not a one-question query.
func answer(b []byte, n int, ttl uint32) int {
	if n < hdrLen || b[2]&0x80 != 0 || binary.BigEndian.Uint16(b[4:]) != 1 {
		return 0
	}
	// Walk the question name (uncompressed, RFC 1035 §4.1.2).
	off := hdrLen
	for {
		if off >= n {
			return 0
		}
		l := int(b[off])
		if l == 0 {
			off++
			break
		}
		if l > 63 {
			return 0
		}
		off += 1 + l
	}
	if off+4 > n {
		return 0
	}
	qtype := binary.BigEndian.Uint16(b[off:])
	off += 4
	// QR=1, opcode and RD kept, AA=1, RA=1, rcode 0.
	b[2] = 0x80 | b[2]&0x79 | 0x04
	b[3] = 0x80
	binary.BigEndian.PutUint16(b[8:], 0)  // NSCOUNT
	binary.BigEndian.PutUint16(b[10:], 0) // ARCOUNT: OPT dropped
	var rdata []byte
	switch qtype {
	case typeA:
		rdata = addr4[:]
	case type4A:
		rdata = addr6[:]
	default:
		binary.BigEndian.PutUint16(b[6:], 0)
		return off
	}
	binary.BigEndian.PutUint16(b[6:], 1) // ANCOUNT
	rr := b[off:]
	// Owner: pointer to the question name at offset 12 (RFC 1035 §4.1.4).
	rr[0], rr[1] = 0xc0, hdrLen
	binary.BigEndian.PutUint16(rr[2:], qtype)
	binary.BigEndian.PutUint16(rr[4:], 1)   // IN
	binary.BigEndian.PutUint32(rr[6:], ttl) // 0 by default: nothing may be cached
	binary.BigEndian.PutUint16(rr[10:], uint16(len(rdata)))
	copy(rr[12:], rdata)
	return off + 12 + len(rdata)
}

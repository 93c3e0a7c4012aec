// SPDX-License-Identifier: MIT

// Command upstream is the benchmark's upstream resolver: it answers every
// A query with 192.0.2.80 and every AAAA query with 2001:db8::80, TTL 0,
// and every other type with NOERROR and no records. It does nothing else:
// no zone, no cache, no EDNS (the OPT record of a query is dropped, which
// RFC 6891 §7 allows a responder without EDNS to do). Each socket is served
// by one goroutine that reads a query into a fixed buffer, rewrites it in
// place and writes it back, so the steady state allocates nothing.
//
//	upstream -listen 192.0.2.1:53 [-sockets N]
//
// With -sockets > 1 the sockets share the port with SO_REUSEPORT and the
// kernel spreads clients over them by flow hash. It exits on SIGINT or
// SIGTERM and prints how many queries it answered.
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
	flag.Parse()
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
	var answered atomic.Int64
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			serve(c, &answered)
		}()
	}
	fmt.Fprintf(os.Stderr, "upstream: answering on %s with %d socket(s)\n", *listen, len(conns))
	<-ctx.Done()
	for _, c := range conns {
		c.Close()
	}
	wg.Wait()
	fmt.Fprintf(os.Stderr, "upstream: answered %d queries\n", answered.Load())
}

// serve answers queries on c until it is closed.
func serve(c *net.UDPConn, answered *atomic.Int64) {
	var buf [4096]byte
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf[:])
		if err != nil {
			if isClosed(err) {
				return
			}
			continue
		}
		if m := answer(buf[:], n); m > 0 {
			if _, err := c.WriteToUDPAddrPort(buf[:m], from); err == nil {
				answered.Add(1)
			}
		}
	}
}

func isClosed(err error) bool { return errors.Is(err, net.ErrClosed) }

// answer turns the query in b[:n] into its answer in place and returns the
// answer's length, or 0 for anything that is not a one-question query.
func answer(b []byte, n int) int {
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
	binary.BigEndian.PutUint16(rr[4:], 1) // IN
	binary.BigEndian.PutUint32(rr[6:], 0) // TTL 0: nothing may be cached
	binary.BigEndian.PutUint16(rr[10:], uint16(len(rdata)))
	copy(rr[12:], rdata)
	return off + 12 + len(rdata)
}

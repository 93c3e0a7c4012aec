// SPDX-License-Identifier: MIT

package main

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dnstun/dnstun/bench/loadgen"
)

// TestTCP drives the TCP server with loadgen: one query per connection,
// and 100 per connection with 8 pipelined; every query answered NOERROR
// and counted once.
func TestTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var answered atomic.Int64
	s := &tcpServer{ln: ln, max: 64, idle: 2 * time.Second, answered: &answered, conns: map[net.Conn]struct{}{}}
	done := make(chan struct{})
	go func() { s.serve(); close(done) }()
	defer func() { s.close(); <-done }()
	names := []loadgen.Query{{Name: "a.allowed.example", Type: 1}, {Name: "b.allowed.example", Type: 28}, {Name: "c.allowed.example", Type: 16}}
	var want int64
	for _, tc := range []struct{ perConn, pipeline int }{{1, 1}, {100, 8}} {
		res, err := loadgen.Run(context.Background(), loadgen.Config{
			Target: ln.Addr().(*net.TCPAddr).AddrPort(), Names: names, Transport: loadgen.TCP,
			Concurrency: 16, QueriesPerConn: tc.perConn, Pipeline: tc.pipeline,
			Duration: 5 * time.Second, MaxQueries: 1000, Timeout: time.Second,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%d per connection:\n%v", tc.perConn, res)
		if res.Sent != 1000 || res.Answered != 1000 || res.Rcodes[0] != 1000 || res.Mismatched != 0 || res.Closed != 0 {
			t.Errorf("%d per connection: %+v", tc.perConn, res)
		}
		want += res.Answered
	}
	// The server counts an answer after writing it: wait for the last.
	for deadline := time.Now().Add(time.Second); answered.Load() < want && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if got := answered.Load(); got != want {
		t.Errorf("server counted %d answers, want %d", got, want)
	}
}

// TestTCPGarbage: a message that is no query ends nothing but itself; a
// message too large for the answer buffer closes the connection.
func TestTCPGarbage(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var answered atomic.Int64
	s := &tcpServer{ln: ln, max: 4, idle: 2 * time.Second, answered: &answered, conns: map[net.Conn]struct{}{}}
	done := make(chan struct{})
	go func() { s.serve(); close(done) }()
	defer func() { s.close(); <-done }()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	q := []byte{0, 29, 0xab, 0xcd, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 'a', 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 0, 0, 1, 0, 1}
	q[1] = byte(len(q) - 2)
	msg := append([]byte{0, 3, 1, 2, 3}, q...) // garbage, then a query
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	var hdr [2]byte
	if _, err := readFull(c, hdr[:]); err != nil {
		t.Fatal(err)
	}
	ans := make([]byte, int(hdr[0])<<8|int(hdr[1]))
	if _, err := readFull(c, ans); err != nil {
		t.Fatal(err)
	}
	if ans[0] != 0xab || ans[1] != 0xcd || ans[2]&0x80 == 0 || ans[7] != 1 {
		t.Errorf("answer % x", ans)
	}
	big := make([]byte, 2+8000)
	big[0], big[1] = byte(8000>>8), byte(8000&0xff)
	c.Write(big)
	if n, err := c.Read(hdr[:]); err == nil {
		t.Errorf("read %d bytes after an oversized message, want the connection closed", n)
	}
}

func readFull(c net.Conn, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		k, err := c.Read(b[n:])
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// TestAnswerTTL: the answer's record carries the TTL asked for (-ttl), 0
// by default, after the question and the owner's compression pointer.
func TestAnswerTTL(t *testing.T) {
	q := []byte{0xab, 0xcd, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 'a', 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 0, 0, 1, 0, 1}
	for _, ttl := range []uint32{0, 3600} {
		b := make([]byte, 512)
		copy(b, q)
		n := answer(b, len(q), ttl)
		if n != len(q)+16 || b[7] != 1 {
			t.Fatalf("TTL %d: answer of %d bytes, ANCOUNT %d: % x", ttl, n, b[7], b[:n])
		}
		rr := b[len(q):n]
		if got := uint32(rr[6])<<24 | uint32(rr[7])<<16 | uint32(rr[8])<<8 | uint32(rr[9]); got != ttl {
			t.Errorf("record TTL %d, want %d", got, ttl)
		}
	}
}

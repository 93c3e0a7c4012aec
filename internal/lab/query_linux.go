// SPDX-License-Identifier: MIT

package lab

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"
)

// DNS response codes (RFC 1035 §4.1.1) for Probe.Rcode.
const (
	RcodeNoError  = 0
	RcodeNXDomain = 3
	// RcodeAny accepts any answer.
	RcodeAny = -1
)

// Probe describes how FirstAnswer polls a DNS server.
type Probe struct {
	// Target is the server's address.
	Target netip.AddrPort
	// Name is the name asked (type Type, class IN, RD set).
	Name string
	// Type is the query type; 0 means A.
	Type uint16
	// Rcode is the response code an answer must carry (RcodeAny: any).
	Rcode int
	// Limit bounds the whole wait (required).
	Limit time.Duration
	// Every is how long one query waits for its answer before the next is
	// sent; default 5 ms. An answer to any query sent on the current
	// socket counts, so a slow server is not starved by the resending.
	Every time.Duration
	// Proc, if set, is the process expected to answer: FirstAnswer fails
	// as soon as it exits, and measures the time from its start.
	Proc *Proc
}

// FirstAnswer queries pr.Target from inside n until an answer with
// pr.Rcode arrives, and returns the time from pr.Proc's start (or from the
// call) to that answer. It gives up after pr.Limit, when ctx ends or when
// pr.Proc exits. Send errors (no route yet, port unreachable) are retried
// on a new socket.
func (n *NS) FirstAnswer(ctx context.Context, pr Probe) (time.Duration, error) {
	if pr.Limit <= 0 {
		return 0, errors.New("lab: Probe.Limit is required")
	}
	if pr.Type == 0 {
		pr.Type = 1
	}
	if pr.Every <= 0 {
		pr.Every = 5 * time.Millisecond
	}
	start := time.Now()
	if pr.Proc != nil {
		start = pr.Proc.Started()
	}
	q := buildQuery(pr.Name, pr.Type)
	buf := make([]byte, 1500)
	deadline := time.Now().Add(pr.Limit)
	var c net.Conn
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	var base uint16 // the first ID sent on c
	var lastErr error
	for id := uint16(1); ; id++ {
		if id == 0 { // wrapped: a new socket, so IDs on it stay ordered
			id = 1
			if c != nil {
				c.Close()
				c = nil
			}
		}
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		if pr.Proc != nil && pr.Proc.Exited() {
			return 0, fmt.Errorf("exited during start-up: %v", pr.Proc.Err())
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("no answer from %v within %v (last error: %v)", pr.Target, pr.Limit, lastErr)
		}
		if c == nil {
			var err error
			if c, err = n.Dial("udp", pr.Target.String()); err != nil {
				lastErr = err
				c = nil
				time.Sleep(2 * time.Millisecond)
				continue
			}
			base = id
		}
		binary.BigEndian.PutUint16(q, id)
		if _, err := c.Write(q); err != nil {
			// No route yet (TUN not up) or port unreachable: a new socket
			// next time, so that a stale error does not stick.
			lastErr = err
			c.Close()
			c = nil
			time.Sleep(2 * time.Millisecond)
			continue
		}
		c.SetReadDeadline(time.Now().Add(pr.Every))
		for {
			m, err := c.Read(buf)
			if err != nil {
				var ne net.Error
				if !(errors.As(err, &ne) && ne.Timeout()) {
					lastErr = err
					c.Close()
					c = nil
					time.Sleep(2 * time.Millisecond)
				}
				break
			}
			got := binary.BigEndian.Uint16(buf)
			// IDs on c run from base to id.
			if m < 12 || got < base || got > id || buf[2]&0x80 == 0 {
				continue
			}
			rc := int(buf[3] & 0x0f)
			if pr.Rcode == RcodeAny || rc == pr.Rcode {
				return time.Since(start), nil
			}
			lastErr = fmt.Errorf("answer with rcode %d, want %d", rc, pr.Rcode)
			if got == id {
				break // the latest query's answer: ask again at once
			}
		}
	}
}

// buildQuery returns a query message for name (ID 0, RD set, class IN;
// RFC 1035 §4.1.1-4.1.2).
func buildQuery(name string, qtype uint16) []byte {
	b := []byte{0, 0, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0}
	for _, label := range strings.Split(strings.TrimSuffix(name, "."), ".") {
		b = append(b, byte(len(label)))
		b = append(b, label...)
	}
	return append(b, 0, byte(qtype>>8), byte(qtype), 0, 1)
}

// SPDX-License-Identifier: MIT

package upstream

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"
)

// StreamConn is a DNS-over-TCP connection to one upstream (RFC 1035
// §4.2.2, RFC 7766): messages framed by a two-byte length, several in
// flight at once, answered in any order (matched by ID by the caller).
// It carries the same no-loop marking as Conn. Send may be called from
// several goroutines; Recv from one.
type StreamConn struct {
	Addr netip.AddrPort
	c    net.Conn
	r    *bufio.Reader
	wmu  sync.Mutex
	idle time.Duration
}

// ErrFrameTooLarge is Recv's error for a message larger than its buffer.
var ErrFrameTooLarge = errors.New("DNS message larger than the buffer")

// DialStream opens a TCP connection to addr. The connection closes itself
// (Recv returns an error) when nothing was sent on it for idle.
func DialStream(ctx context.Context, addr netip.AddrPort, opt Options, idle time.Duration) (*StreamConn, error) {
	if !addr.IsValid() || addr.Port() == 0 {
		return nil, fmt.Errorf("upstream %v: need an address and a port", addr)
	}
	addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	d := net.Dialer{
		Control: func(network, address string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) { serr = control(network, fd, Options{Mark: opt.Mark}) })
			return errors.Join(err, serr)
		},
	}
	c, err := d.DialContext(ctx, "tcp", addr.String())
	if err != nil {
		return nil, fmt.Errorf("upstream %v over TCP: %w", addr, err)
	}
	s := &StreamConn{Addr: addr, c: c, r: bufio.NewReaderSize(c, 4096), idle: idle}
	c.SetReadDeadline(time.Now().Add(idle))
	return s, nil
}

// Send writes one message with its length prefix, within timeout.
func (s *StreamConn) Send(msg []byte, timeout time.Duration) error {
	if len(msg) > 65535 {
		return fmt.Errorf("upstream %v over TCP: %d-byte message", s.Addr, len(msg))
	}
	frame := make([]byte, 2+len(msg))
	binary.BigEndian.PutUint16(frame, uint16(len(msg)))
	copy(frame[2:], msg)
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.c.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := s.c.Write(frame); err != nil {
		return fmt.Errorf("upstream %v over TCP: %w", s.Addr, err)
	}
	// An answer is due: the connection is not idle until then.
	s.c.SetReadDeadline(time.Now().Add(s.idle))
	return nil
}

// Recv reads one message into buf and returns its length.
func (s *StreamConn) Recv(buf []byte) (int, error) {
	var l [2]byte
	if _, err := io.ReadFull(s.r, l[:]); err != nil {
		return 0, err
	}
	n := int(binary.BigEndian.Uint16(l[:]))
	if n > len(buf) {
		return 0, ErrFrameTooLarge
	}
	if _, err := io.ReadFull(s.r, buf[:n]); err != nil {
		return 0, err
	}
	return n, nil
}

// Close closes the connection; a blocked Recv returns an error.
func (s *StreamConn) Close() error { return s.c.Close() }

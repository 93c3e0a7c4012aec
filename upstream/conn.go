// SPDX-License-Identifier: MIT

package upstream

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"
)

// Mark is the SO_MARK dnstun's upstream sockets carry on Linux. The top
// byte is unused by Tailscale (0xff0000), Kubernetes (0x4000/0x8000),
// wg-quick and sing-box; it stays below 0x80000000.
const Mark = 0x53000000

// Conn is a connected UDP socket to one upstream resolver, or a
// placeholder for one that cannot be reached yet (Unreachable).
type Conn struct {
	Addr netip.AddrPort
	c    *net.UDPConn // nil for a placeholder
}

// ErrNoRoute is Send's error on a placeholder: the upstream could not be
// reached when its socket was opened.
var ErrNoRoute = errors.New("upstream not reachable yet (no route when its socket was opened)")

// Unreachable returns a placeholder for addr: Send fails with ErrNoRoute
// until the caller dials again and replaces it.
func Unreachable(addr netip.AddrPort) *Conn { return &Conn{Addr: addr} }

// Connected reports whether c is a real socket (not a placeholder).
func (c *Conn) Connected() bool { return c.c != nil }

// IsNoRoute reports whether a Dial error means the upstream cannot be
// reached now (no route, no source address, interface down) but may be
// later, as at boot before the network is up: the caller keeps a
// placeholder and dials again, instead of failing.
func IsNoRoute(err error) bool {
	for _, e := range []error{syscall.ENETUNREACH, syscall.EHOSTUNREACH, syscall.EADDRNOTAVAIL, syscall.ENETDOWN} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// Options tune how sockets are made.
type Options struct {
	// Mark is the SO_MARK to set on Linux; 0 leaves sockets unmarked.
	Mark uint32
	// RecvBuffer is SO_RCVBUF in bytes; 0 keeps the system default.
	RecvBuffer int
}

// Dial opens a connected UDP socket to addr, marked so that it bypasses
// dnstun's steering.
func Dial(ctx context.Context, addr netip.AddrPort, opt Options) (*Conn, error) {
	if !addr.IsValid() || addr.Port() == 0 {
		return nil, fmt.Errorf("upstream %v: need an address and a port", addr)
	}
	addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	d := net.Dialer{
		Timeout: 5 * time.Second,
		Control: func(network, address string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) { serr = control(network, fd, opt) })
			return errors.Join(err, serr)
		},
	}
	c, err := d.DialContext(ctx, "udp", addr.String())
	if err != nil {
		return nil, fmt.Errorf("upstream %v: open socket: %w", addr, err)
	}
	return &Conn{Addr: addr, c: c.(*net.UDPConn)}, nil
}

// Send writes one DNS message. It does not allocate.
func (c *Conn) Send(msg []byte) error {
	if c.c == nil {
		return ErrNoRoute
	}
	_, err := c.c.Write(msg)
	return err
}

// Recv reads one DNS message into buf. Errors such as ECONNREFUSED (the
// kernel reporting an ICMP port unreachable from the upstream) are returned
// and do not close the socket.
func (c *Conn) Recv(buf []byte) (int, error) {
	return c.c.Read(buf)
}

// Close closes the socket; a blocked Recv returns net.ErrClosed.
func (c *Conn) Close() error {
	if c.c == nil {
		return nil
	}
	return c.c.Close()
}

// IsClosed reports whether err means the socket was closed.
func IsClosed(err error) bool { return errors.Is(err, net.ErrClosed) }

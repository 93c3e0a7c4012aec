// SPDX-License-Identifier: MIT

package upstream

import (
	"context"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/dnstun/dnstun/internal/privtest"

	"golang.org/x/sys/unix"
)

func markOf(t *testing.T, c syscall.Conn) int {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var got int
	var serr error
	if err := rc.Control(func(fd uintptr) { got, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK) }); err != nil || serr != nil {
		t.Fatal(err, serr)
	}
	return got
}

// TestStreamAndBootstrapMark: the sockets of the TCP, DoT and DoH
// transports (dialTCP) and of bootstrap lookups (dialer) carry the mark
// that keeps them out of dnstun's steering (QUIC: TestQUICMark; the UDP
// pool: its own test).
func TestStreamAndBootstrapMark(t *testing.T) {
	privtest.RequirePriv(t) // SO_MARK needs CAP_NET_ADMIN
	const mark = 0x4243
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	opt := DialOptions{Mark: mark, Timeout: 2 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, _, err := dialTCP(ctx, opt, []netip.AddrPort{netip.MustParseAddrPort(ln.Addr().String())})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := markOf(t, c.(*net.TCPConn)); got != mark {
		t.Errorf("transport socket: SO_MARK %#x, want %#x", got, mark)
	}
	u, err := dialer(opt).Dial("udp", "127.0.0.1:53")
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	if got := markOf(t, u.(*net.UDPConn)); got != mark {
		t.Errorf("bootstrap socket: SO_MARK %#x, want %#x", got, mark)
	}
}

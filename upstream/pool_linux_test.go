// SPDX-License-Identifier: MIT

package upstream

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/dnstun/dnstun/internal/privtest"

	"golang.org/x/sys/unix"
)

// TestPoolMark: every socket of the pool carries SO_MARK, and marked
// sockets still exchange on loopback.
func TestPoolMark(t *testing.T) {
	privtest.RequirePriv(t) // SO_MARK needs CAP_NET_ADMIN
	srv := startServer(t, "127.0.0.1", true, false)
	const mark = 0x53000000
	p := newTestPool(t, PoolOptions{Mark: mark})
	d := p.Dest(srv.addr)
	ms := newMsgs(2, 512)
	for range 3 { // three sockets: the mark is set on each one opened
		sock, err := p.Send(d, []byte("q"))
		if err != nil {
			t.Fatal(err)
		}
		s := p.slotOf(sock)
		if !s.ref.Pin() {
			t.Fatalf("socket %d closed", sock)
		}
		got, err := unix.GetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_MARK)
		if s.ref.Unpin() {
			p.finish(s)
		}
		if err != nil || uint32(got) != mark {
			t.Fatalf("socket %d: SO_MARK = %#x (%v), want %#x", sock, got, err, mark)
		}
		if n := recv(t, p, ms); n != 1 || ms[0].Sock != sock {
			t.Fatalf("answer on socket %d, want %d", ms[0].Sock, sock)
		}
		p.Answered(sock)
	}
}

// TestPoolFileLimit: the default MaxSockets shrinks to fit a low open-file
// limit; a value given that does not fit is refused with advice.
func TestPoolFileLimit(t *testing.T) {
	var old unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	if old.Max < 1000 {
		t.Skipf("hard open-file limit %d is below the 1000 this test sets", old.Max)
	}
	low := old
	low.Cur = 1000
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &old); err != nil {
			t.Errorf("restore the open-file limit: %v", err)
		}
	}()
	p := newTestPool(t, PoolOptions{})
	if want := (1000 - poolOtherFiles) / 2; p.opt.MaxSockets != want {
		t.Errorf("default MaxSockets under a limit of 1000 = %d, want %d", p.opt.MaxSockets, want)
	}
	_, err := NewPool(PoolOptions{MaxSockets: 1000})
	if err == nil || !strings.Contains(err.Error(), "RLIMIT_NOFILE") {
		t.Errorf("NewPool with MaxSockets 1000 under a limit of 1000: %v, want a refusal naming RLIMIT_NOFILE", err)
	}
}

// TestConnectRaw: a socket connected with the raw call has the peer that
// unix.Connect gives it, for IPv4 and IPv6 (the port in network byte
// order, the address as given), and an unknown address family is refused.
func TestConnectRaw(t *testing.T) {
	for _, s := range []string{"127.0.0.1:5353", "127.0.0.2:53", "[::1]:5353", "[::1]:65535"} {
		addr := netip.MustParseAddrPort(s)
		var ds poolDestSys
		if err := ds.init(addr); err != nil {
			t.Fatal(err)
		}
		fd, err := unix.Socket(ds.family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		if e := connectRaw(fd, &ds); e != 0 {
			unix.Close(fd)
			t.Fatalf("%v: connect: %v", addr, e)
		}
		sa, err := unix.Getpeername(fd)
		unix.Close(fd)
		if err != nil {
			t.Fatal(err)
		}
		var got netip.AddrPort
		switch sa := sa.(type) {
		case *unix.SockaddrInet4:
			got = netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
		case *unix.SockaddrInet6:
			got = netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(sa.Port))
		}
		if got != addr {
			t.Errorf("connected to %v, want %v", got, addr)
		}
	}
	if e := connectRaw(0, &poolDestSys{family: unix.AF_UNIX, sa: &unix.SockaddrUnix{Name: "/x"}}); e != unix.EAFNOSUPPORT {
		t.Errorf("a Unix address: %v, want EAFNOSUPPORT", e)
	}
}

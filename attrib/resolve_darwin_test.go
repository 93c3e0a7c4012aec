// SPDX-License-Identifier: MIT

//go:build darwin

package attrib

import (
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestDarwinOwnSockets looks up sockets of this process through the PCB
// lists (run on a Mac: go test -run Darwin -v ./attrib). It checks the pid
// and name and logs the path and signing identifier, to compare with
// `netstat -anv -p udp` (its pid column is so_last_pid) and
// `codesign -dv <exe>`.
func TestDarwinOwnSockets(t *testing.T) {
	tab, err := New(Config{Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer tab.Close()
	ctx := context.Background()
	exe, _ := os.Executable()
	name := filepath.Base(exe)
	if len(name) > 16 { // MAXCOMLEN
		name = name[:16]
	}
	check := func(t *testing.T, k Key) {
		t.Helper()
		o, err := tab.Resolve(ctx, k)
		if err != nil {
			t.Fatalf("%v: %v", k, err)
		}
		t.Logf("%v: pid %d uid %d name %q exe %q signing id %q effective pid %d", k, o.PID, o.UID, o.Name, o.Exe, o.SigningID, o.EffectivePID)
		if o.PID != int32(os.Getpid()) || o.UID != uint32(os.Getuid()) || o.Name != name {
			t.Errorf("%v: owner %+v, want pid %d uid %d name %q", k, o, os.Getpid(), os.Getuid(), name)
		}
		if real, _ := filepath.EvalSymlinks(exe); o.Exe != exe && o.Exe != real {
			t.Errorf("%v: exe %q, want %q", k, o.Exe, exe)
		}
	}
	dns4 := netip.MustParseAddrPort("127.0.0.1:53")
	dns6 := netip.MustParseAddrPort("[::1]:53")
	t.Run("udp4-connected", func(t *testing.T) {
		c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(dns4))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte{0}) // so_last_pid is set by a send on some releases
		check(t, Key{Proto: ProtoUDP, Local: c.LocalAddr().(*net.UDPAddr).AddrPort(), Remote: dns4})
	})
	t.Run("udp4-unconnected", func(t *testing.T) {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.WriteToUDPAddrPort([]byte{0}, dns4)
		check(t, Key{Proto: ProtoUDP, Local: c.LocalAddr().(*net.UDPAddr).AddrPort(), Remote: dns4})
	})
	t.Run("udp6", func(t *testing.T) {
		c, err := net.DialUDP("udp6", nil, net.UDPAddrFromAddrPort(dns6))
		if err != nil {
			t.Skip(err)
		}
		defer c.Close()
		c.Write([]byte{0})
		check(t, Key{Proto: ProtoUDP, Local: c.LocalAddr().(*net.UDPAddr).AddrPort(), Remote: dns6})
	})
	t.Run("tcp4", func(t *testing.T) {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		c, err := net.Dial("tcp4", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		check(t, Key{Proto: ProtoTCP, Local: c.LocalAddr().(*net.TCPAddr).AddrPort(), Remote: c.RemoteAddr().(*net.TCPAddr).AddrPort()})
	})
}

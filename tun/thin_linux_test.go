// SPDX-License-Identifier: MIT

package tun

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/dnstun/dnstun/internal/lab"
	"github.com/dnstun/dnstun/internal/privtest"
	"github.com/dnstun/dnstun/packet"
	"golang.org/x/sys/unix"
	wgtun "golang.zx2c4.com/wireguard/tun"
)

// The test TUN's addresses, as dnstun's defaults: the engine's answers come
// from the resolver (routed into the TUN) to the client (the TUN's own
// address), which is where the sockets below listen.
var (
	thinResolver4 = netip.MustParseAddr("198.19.53.53")
	thinResolver6 = netip.MustParseAddr("fd64:6e73:7475::53")
	thinClient4   = netip.MustParseAddr("198.19.53.1")
	thinClient6   = netip.MustParseAddr("fd64:6e73:7475::1")
)

// thinTUN opens a TUN inside a network namespace of its own (deleted by
// Cleanup) and returns wireguard-go's device and the thin writer around it.
// With vnet, it is tun.Open's device, which must be the thin writer; without,
// a TUN opened without IFF_VNET_HDR (as wireguard-go's CreateTUN never
// does) and handed to wireguard-go's CreateTUNFromFile, then wrapped.
func thinTUN(tb testing.TB, vnet bool) (wg Device, thin *thinDevice, ns *lab.NS) {
	tb.Helper()
	privtest.RequirePriv(tb)
	l, err := lab.New(lab.Config{Prefix: "dnstun-thin"})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(l.Close)
	cfg := Config{
		Name:   "dtthin0",
		MTU:    DefaultMTU,
		Addrs:  []netip.Prefix{netip.PrefixFrom(thinClient4, 32), netip.PrefixFrom(thinClient6, 128)},
		Routes: []netip.Prefix{netip.PrefixFrom(thinResolver4, 32), netip.PrefixFrom(thinResolver6, 128)},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	var dev Device
	err = l.Host.Do(func() (err error) {
		if vnet {
			if dev, _, err = Open(cfg); err != nil {
				return err
			}
			// Open returns only once the kernel has the IPv6 address's
			// local route, which it adds from a work queue some
			// milliseconds later; until then answers to it are dropped.
			if ok, err := hasLocalRoute(thinClient6); !ok {
				return fmt.Errorf("Open returned before the local route of %v was in (%v)", thinClient6, err)
			}
			return nil
		}
		if dev, err = openWithoutVnetHdr(cfg.Name, cfg.MTU); err != nil {
			return err
		}
		go drainEvents(dev, cfg.Name, cfg.Logger)
		return configure(cfg.Name, cfg)
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { dev.Close() })
	checkLocalRoute6(tb, l.Host.Name, thinClient6)
	wantHdr := virtioHdrLen
	if vnet {
		var ok bool
		if thin, ok = dev.(*thinDevice); !ok {
			tb.Fatalf("Open returned a %T, want the thin writer (%T)", dev, thin)
		}
		dev = thin.Device
	} else {
		wantHdr = 0
		if thin, err = newThin(dev, cfg.MTU); err != nil {
			tb.Fatal(err)
		}
	}
	if thin.hdr != wantHdr {
		tb.Fatalf("the thin writer found a %d-byte virtio-net header, want %d", thin.hdr, wantHdr)
	}
	return dev, thin, l.Host
}

// openWithoutVnetHdr opens the TUN name with IFF_TUN|IFF_NO_PI only, and
// hands it to wireguard-go.
func openWithoutVnetHdr(name string, mtu int) (Device, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	ifr, err := unix.NewIfreq(name)
	if err == nil {
		ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
		err = unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr)
	}
	if err == nil {
		err = unix.SetNonblock(fd, true)
	}
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("open TUN %s without IFF_VNET_HDR: %w", name, err)
	}
	return wgtun.CreateTUNFromFile(os.NewFile(uintptr(fd), "/dev/net/tun"), mtu)
}

// thinPkt is one answer to write: from the resolver's port 53 to a client
// port, with a payload of size bytes.
type thinPkt struct {
	client netip.AddrPort
	size   int
}

// payload is the recognisable payload of packet i of a set.
func (p thinPkt) payload(i int) []byte {
	b := make([]byte, p.size)
	for j := range b {
		b[j] = byte(i*31 + j)
	}
	copy(b, fmt.Sprintf("pkt %d to %v", i, p.client))
	return b
}

// build writes the packets into bufs (one BufSize buffer each) as the
// engine does, packet.WrapReply in front of the payload, and returns them
// as a batch for Write(batch, Headroom).
func build(tb testing.TB, bufs [][]byte, pkts []thinPkt) [][]byte {
	tb.Helper()
	out := make([][]byte, len(pkts))
	for i, p := range pkts {
		buf := bufs[i]
		off := Headroom + packet.MaxHeaderLen
		n := copy(buf[off:], p.payload(i))
		from := netip.AddrPortFrom(thinResolver4, 53)
		if p.client.Addr().Is6() {
			from = netip.AddrPortFrom(thinResolver6, 53)
		}
		start := packet.WrapReply(buf, off, n, from, p.client)
		if start < Headroom {
			tb.Fatalf("WrapReply %v: %d", p.client, start)
		}
		out[i] = buf[start-Headroom : off+n]
	}
	return out
}

// received is what a client socket got.
type received struct {
	from    netip.AddrPort
	payload string
}

// listen opens a UDP socket on each distinct client address in ns.
func listen(tb testing.TB, ns *lab.NS, pkts []thinPkt) map[netip.AddrPort]net.PacketConn {
	tb.Helper()
	socks := map[netip.AddrPort]net.PacketConn{}
	for _, p := range pkts {
		if socks[p.client] != nil {
			continue
		}
		pc, err := ns.ListenPacket("udp", p.client.String())
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { pc.Close() })
		socks[p.client] = pc
	}
	return socks
}

// collect reads want datagrams in all from the sockets (each socket's in
// order), waiting at most 5 s.
func collect(tb testing.TB, who string, socks map[netip.AddrPort]net.PacketConn, want map[netip.AddrPort]int) map[netip.AddrPort][]received {
	tb.Helper()
	got := map[netip.AddrPort][]received{}
	buf := make([]byte, MaxPacket)
	for addr, pc := range socks {
		pc.SetReadDeadline(time.Now().Add(5 * time.Second))
		for range want[addr] {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				tb.Errorf("%s: %v: %d of %d datagrams, then: %v", who, addr, len(got[addr]), want[addr], err)
				break
			}
			got[addr] = append(got[addr], received{from.(*net.UDPAddr).AddrPort(), string(buf[:n])})
		}
		// Nothing more may come.
		pc.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if n, _, err := pc.ReadFrom(buf); err == nil {
			tb.Errorf("%s: %v: an unexpected datagram of %d bytes", who, addr, n)
		}
	}
	return got
}

// TestThinAgreesWithWireguard writes the same batches of IPv4 and IPv6 UDP
// answers through wireguard-go's Write and the thin writer, on one real
// TUN in a namespace of the test's own, and checks that client sockets get
// the same datagrams, from the same source, from both: on a TUN with
// IFF_VNET_HDR (tun.Open's) and on one without. wireguard-go coalesces the
// answers to one port (into one GSO write the kernel splits again, with
// offloads: "one port"), the thin writer writes each.
func TestThinAgreesWithWireguard(t *testing.T) {
	privtest.RequirePriv(t)
	t.Run("vnet header", func(t *testing.T) { testThinAgrees(t, true) })
	t.Run("no vnet header", func(t *testing.T) { testThinAgrees(t, false) })
}

func testThinAgrees(t *testing.T, vnet bool) {
	wg, thin, ns := thinTUN(t, vnet)
	c4 := func(port uint16) netip.AddrPort { return netip.AddrPortFrom(thinClient4, port) }
	c6 := func(port uint16) netip.AddrPort { return netip.AddrPortFrom(thinClient6, port) }
	batches := map[string][]thinPkt{
		"one IPv4":     {{c4(41001), 60}},
		"one IPv6":     {{c6(41002), 60}},
		"ports, mixed": {{c4(41011), 45}, {c6(41012), 512}, {c4(41013), 100}, {c6(41014), 33}, {c4(41015), 1200}, {c6(41016), 90}, {c4(41017), 77}, {c6(41018), 1}},
		"one port, v4": {{c4(41021), 100}, {c4(41021), 100}, {c4(41021), 100}, {c4(41021), 40}},
		"one port, v6": {{c6(41022), 100}, {c6(41022), 100}, {c6(41022), 100}, {c6(41022), 40}},
		"over the MTU": {{c4(41031), 100}, {c4(41032), 4000}, {c6(41033), 3000}, {c6(41034), 100}},
		"largest":      {{c4(41041), MaxPacket - packet.MaxHeaderLen}, {c6(41042), MaxPacket - packet.MaxHeaderLen}},
	}
	for name, pkts := range batches {
		t.Run(name, func(t *testing.T) {
			socks := listen(t, ns, pkts)
			want := map[netip.AddrPort]int{}
			for _, p := range pkts {
				want[p.client]++
			}
			bufs := make([][]byte, len(pkts))
			for i := range bufs {
				bufs[i] = make([]byte, BufSize)
			}
			var results [2]map[netip.AddrPort][]received
			for k, dev := range []Device{wg, thin} {
				batch := build(t, bufs, pkts)
				for _, b := range batch {
					for j := range Headroom {
						b[j] = 0xA5 // junk the headroom, as a read leaves it
					}
				}
				if n, err := dev.Write(batch, Headroom); err != nil {
					t.Fatalf("%T.Write: %d, %v", dev, n, err)
				} else if k == 1 && n != len(pkts) {
					t.Errorf("thin Write: %d packets written, want %d", n, len(pkts))
				}
				results[k] = collect(t, []string{"wireguard-go", "thin"}[k], socks, want)
			}
			if !reflect.DeepEqual(results[0], results[1]) {
				t.Errorf("the clients got different datagrams from wireguard-go's Write and the thin writer's")
			}
			for i, p := range pkts {
				// Every payload arrives, in order per socket, from the resolver.
				k := 0
				for _, q := range pkts[:i] {
					if q.client == p.client {
						k++
					}
				}
				wantFrom := netip.AddrPortFrom(thinResolver4, 53)
				if p.client.Addr().Is6() {
					wantFrom = netip.AddrPortFrom(thinResolver6, 53)
				}
				for j, who := range []string{"wireguard-go", "thin"} {
					got := results[j][p.client]
					if k >= len(got) {
						continue // reported by collect
					}
					if got[k].from != wantFrom || got[k].payload != string(p.payload(i)) {
						t.Errorf("%s: packet %d to %v arrived from %v with %d bytes %.20q, want from %v %d bytes %.20q",
							who, i, p.client, got[k].from, len(got[k].payload), got[k].payload, wantFrom, p.size, p.payload(i))
					}
				}
			}
		})
	}
	// Closed, the device says so, without writing to a reused fd.
	thin.Close()
	bufs := [][]byte{make([]byte, BufSize)}
	if n, err := thin.Write(build(t, bufs, []thinPkt{{c4(41051), 60}}), Headroom); n != 0 || err != os.ErrClosed {
		t.Errorf("Write after Close: %d, %v; want 0, os.ErrClosed", n, err)
	}
}

// TestThinWriteAllocs: the thin Write of a batch allocates nothing, on a
// real TUN.
func TestThinWriteAllocs(t *testing.T) {
	_, thin, ns := thinTUN(t, true)
	pkts := []thinPkt{
		{netip.AddrPortFrom(thinClient4, 42001), 100},
		{netip.AddrPortFrom(thinClient6, 42002), 100},
		{netip.AddrPortFrom(thinClient4, 42003), 100},
	}
	listen(t, ns, pkts) // datagrams beyond their buffers are dropped
	bufs := make([][]byte, len(pkts))
	for i := range bufs {
		bufs[i] = make([]byte, BufSize)
	}
	batch := build(t, bufs, pkts)
	var err error
	if a := testing.AllocsPerRun(1000, func() { _, err = thin.Write(batch, Headroom) }); a != 0 {
		t.Errorf("thin Write: %v allocations, want 0", a)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// BenchmarkTUNWrite compares wireguard-go's Write with the thin writer on
// one real TUN in a namespace: a batch of 1 or 8 DNS-sized IPv4 answers to
// different client ports (the engine's case: they never coalesce; and its
// batches are mostly of 1), and 8 to the same port ("8same", which
// wireguard-go's GRO coalesces into one GSO write). The client sockets are
// not read: once full they drop what arrives, after the kernel's whole IP
// and UDP receive path, the same for both writers; readers competing for
// the CPUs made the figures much noisier. cpu-ns/op is the writing thread's
// own CPU time.
func BenchmarkTUNWrite(b *testing.B) {
	wg, thin, ns := thinTUN(b, true)
	var same, diff []thinPkt
	for i := range 8 {
		diff = append(diff, thinPkt{netip.AddrPortFrom(thinClient4, uint16(43001+i)), 100})
		same = append(same, thinPkt{netip.AddrPortFrom(thinClient4, 43100), 100})
	}
	listen(b, ns, append(diff, same[0]))
	for _, v := range []struct {
		name string
		dev  Device
	}{{"wireguard", wg}, {"thin", thin}} {
		b.Run(v.name, func(b *testing.B) {
			for _, c := range []struct {
				name string
				pkts []thinPkt
			}{{"1", diff[:1]}, {"8", diff}, {"8same", same}} {
				b.Run(c.name, func(b *testing.B) { benchWrite(b, v.dev, c.pkts) })
			}
		})
	}
}

func benchWrite(b *testing.B, dev Device, pkts []thinPkt) {
	bufs := make([][]byte, len(pkts))
	for i := range bufs {
		bufs[i] = make([]byte, BufSize)
	}
	tmpl := build(b, bufs, pkts)
	for i := range tmpl {
		tmpl[i] = bytes.Clone(tmpl[i])
	}
	batch := make([][]byte, len(pkts))
	// Wall time suffers from whatever else the machine runs; the
	// thread's own CPU time (user and system: the kernel delivers a
	// packet written to a TUN in the writer's context) much less.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cpu0 := threadCPU(b)
	b.ReportAllocs()
	for b.Loop() {
		// A written buffer is rebuilt, never re-sent: GRO rewrites and
		// extends the first packet of a coalesced flow.
		for i, t := range tmpl {
			batch[i] = bufs[i][:copy(bufs[i], t)]
		}
		if _, err := dev.Write(batch, Headroom); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(threadCPU(b)-cpu0)/float64(b.N), "cpu-ns/op")
}

// threadCPU returns the CPU time the calling thread has used, in ns.
func threadCPU(tb testing.TB) int64 {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_THREAD, &ru); err != nil {
		tb.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// fakeWG stands in for wireguard-go's device behind a thinDevice: it keeps
// what its Write is handed. Its other methods are not used.
type fakeWG struct {
	Device
	file   *os.File
	writes [][]byte // bufs[i][offset:] of every call
	err    error
}

func (f *fakeWG) File() *os.File { return f.file }
func (f *fakeWG) Close() error   { return f.file.Close() }

func (f *fakeWG) Write(bufs [][]byte, offset int) (int, error) {
	total := 0
	for _, b := range bufs {
		f.writes = append(f.writes, bytes.Clone(b[offset:]))
		total += len(b)
	}
	return total, f.err // wireguard-go's Linux Write returns bytes, not packets
}

// datagramPair returns a nonblocking datagram socket in Go's netpoller, as
// wireguard-go's TUN fd is, and the blocking raw fd of its peer.
func datagramPair(t *testing.T) (*os.File, int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.SetNonblock(fds[1], false); err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fds[0]), "datagram-pair")
	t.Cleanup(func() { f.Close(); unix.Close(fds[1]) })
	return f, fds[1]
}

// batchOf returns len(sizes) buffers with sizes[i] bytes of packet i after
// junk headroom.
func batchOf(sizes ...int) [][]byte {
	out := make([][]byte, len(sizes))
	for i, n := range sizes {
		b := bytes.Repeat([]byte{0xA5}, Headroom+n)
		for j := range n {
			b[Headroom+j] = byte(i + 1)
		}
		out[i] = b
	}
	return out
}

// readAll reads n datagrams from fd.
func readAll(t *testing.T, fd, n int) [][]byte {
	t.Helper()
	var out [][]byte
	buf := make([]byte, BufSize)
	for range n {
		m, err := unix.Read(fd, buf)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, bytes.Clone(buf[:m]))
	}
	return out
}

// TestThinWrite checks the thin writer's bytes and bookkeeping on a
// datagram socket pair (no privileges needed): the header in front of each
// packet, packets over the MTU and odd offsets handed to wireguard-go,
// errors per packet, a full fd waited for, a closed one reported.
func TestThinWrite(t *testing.T) {
	t.Run("not a TUN", func(t *testing.T) {
		f, _ := datagramPair(t)
		if _, err := newThin(&fakeWG{file: f}, DefaultMTU); err == nil || !strings.Contains(err.Error(), "TUNGETIFF") {
			t.Errorf("newThin on a socket: %v, want a TUNGETIFF error", err)
		}
		if _, err := newThin(&fakeWG{}, DefaultMTU); err == nil || !strings.Contains(err.Error(), "no file") {
			t.Errorf("newThin without a file: %v", err)
		}
	})
	for _, hdr := range []int{virtioHdrLen, 0} {
		t.Run(fmt.Sprintf("header %d", hdr), func(t *testing.T) {
			f, peer := datagramPair(t)
			wg := &fakeWG{file: f}
			thin := mustThin(t, wg, f, hdr)
			bufs := batchOf(60, 1500, 1501, 1)
			n, err := thin.Write(bufs, Headroom)
			if n != 4 || err != nil {
				t.Fatalf("Write: %d, %v; want 4, nil", n, err)
			}
			got := readAll(t, peer, 3)
			for i, k := range []int{0, 1, 3} {
				want := append(make([]byte, hdr), batchOf(60, 1500, 1501, 1)[k][Headroom:]...)
				if !bytes.Equal(got[i], want) {
					t.Errorf("datagram %d: % x..., want % x...", i, got[i][:min(len(got[i]), hdr+4)], want[:min(len(want), hdr+4)])
				}
			}
			if len(wg.writes) != 1 || len(wg.writes[0]) != 1501 {
				t.Errorf("handed to wireguard-go: %d writes, want the 1501-byte packet", len(wg.writes))
			}
		})
	}
	t.Run("offset smaller than the header", func(t *testing.T) {
		f, _ := datagramPair(t)
		wg := &fakeWG{file: f}
		thin := mustThin(t, wg, f, virtioHdrLen)
		thin.Write(batchOf(60, 60), 4)
		if len(wg.writes) != 2 {
			t.Errorf("handed to wireguard-go: %d packets, want the whole batch", len(wg.writes))
		}
	})
	t.Run("errors", func(t *testing.T) {
		f, peer := datagramPair(t)
		wg := &fakeWG{file: f, err: errors.New("wireguard-go failed")}
		thin := mustThin(t, wg, f, virtioHdrLen)
		bufs := batchOf(60, 0, 2000, 70)
		n, err := thin.Write(bufs, Headroom)
		if n != 2 || err == nil || !strings.Contains(err.Error(), "packet 1 of 4 (0 bytes at offset 16)") {
			t.Errorf("Write: %d, %v; want 2 and the first error, of packet 1", n, err)
		}
		if got := readAll(t, peer, 2); len(got[1]) != virtioHdrLen+70 {
			t.Errorf("the packet after the failures: %d bytes", len(got[1]))
		}
		wg.err = os.ErrClosed
		if n, err := thin.Write(batchOf(2000, 60), Headroom); n != 0 || err != os.ErrClosed {
			t.Errorf("wireguard-go closed: %d, %v; want 0, os.ErrClosed", n, err)
		}
	})
	t.Run("a full fd is waited for", func(t *testing.T) {
		f, peer := datagramPair(t)
		thin := mustThin(t, &fakeWG{file: f}, f, virtioHdrLen)
		rc, _ := f.SyscallConn()
		rc.Control(func(fd uintptr) { unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF, 4096) })
		sizes := make([]int, 100) // more than the send buffer holds
		for i := range sizes {
			sizes[i] = 100
		}
		done := make(chan error, 1)
		go func() {
			time.Sleep(100 * time.Millisecond)
			buf := make([]byte, BufSize)
			for range sizes {
				if _, err := unix.Read(peer, buf); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
		start := time.Now()
		if n, err := thin.Write(batchOf(sizes...), Headroom); n != len(sizes) || err != nil {
			t.Errorf("Write: %d, %v; want %d, nil", n, err, len(sizes))
		}
		if d := time.Since(start); d < 50*time.Millisecond {
			t.Errorf("Write returned after %v, before the peer read: the fd never filled, nothing was waited for", d)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
	t.Run("closed", func(t *testing.T) {
		f, _ := datagramPair(t)
		thin := mustThin(t, &fakeWG{file: f}, f, virtioHdrLen)
		thin.Close()
		if n, err := thin.Write(batchOf(60, 60), Headroom); n != 0 || err != os.ErrClosed {
			t.Errorf("Write after Close: %d, %v; want 0, os.ErrClosed", n, err)
		}
	})
	t.Run("allocations", func(t *testing.T) {
		f, peer := datagramPair(t)
		thin := mustThin(t, &fakeWG{file: f}, f, virtioHdrLen)
		bufs := batchOf(100, 200, 300)
		buf := make([]byte, BufSize)
		if a := testing.AllocsPerRun(1000, func() {
			if _, err := thin.Write(bufs, Headroom); err != nil {
				t.Fatal(err)
			}
			for range bufs {
				unix.Read(peer, buf)
			}
		}); a != 0 {
			t.Errorf("thin Write: %v allocations, want 0", a)
		}
	})
}

// checkLocalRoute6 fails tb unless the namespace ns has the local route of
// addr: Open (configure) returns only once the kernel has added it, which
// it does from a work queue some milliseconds after the address; until
// then an answer to addr is dropped (Ip6InAddrErrors).
func checkLocalRoute6(tb testing.TB, ns string, addr netip.Addr) {
	tb.Helper()
	out, err := exec.Command("ip", "-n", ns, "-6", "route", "show", "table", "local", addr.String()).CombinedOutput()
	if err != nil || len(out) == 0 {
		tb.Fatalf("Open returned before the local route of %v was in: %v %s", addr, err, out)
	}
}

// mustThin wraps dev, whose fd is f's, as newThin does after its checks.
func mustThin(t *testing.T, dev Device, f *os.File, hdr int) *thinDevice {
	t.Helper()
	thin, err := thinOn(dev, f, hdr, DefaultMTU)
	if err != nil {
		t.Fatal(err)
	}
	return thin
}

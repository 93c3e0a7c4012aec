// SPDX-License-Identifier: MIT

package tun

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/dnstun/dnstun/internal/pkttest"
	"github.com/dnstun/dnstun/internal/privtest"
	"github.com/dnstun/dnstun/packet"
	"golang.org/x/sys/unix"
)

// TestThinRead sends datagrams from sockets in the namespace to the
// resolver (routed into the TUN), IPv4 and IPv6, small and near the MTU,
// and reads them with the thin Read, on a TUN with IFF_VNET_HDR (Open's,
// whose offloads the thin device turned off) and on one without: one
// packet a call, whole, its checksums valid, its payload the one sent.
// Then Close wakes a Read that waits, and later Reads say os.ErrClosed.
func TestThinRead(t *testing.T) {
	privtest.RequirePriv(t)
	for _, vnet := range []bool{true, false} {
		t.Run(fmt.Sprintf("vnet header %v", vnet), func(t *testing.T) {
			_, thin, ns := thinTUN(t, vnet)
			if thin.BatchSize() != 1 {
				t.Errorf("batch size %d, want 1", thin.BatchSize())
			}
			bufs, sizes := [][]byte{make([]byte, BufSize)}, []int{0}
			for i, c := range []struct {
				from, to netip.Addr
				size     int
			}{{thinClient4, thinResolver4, 40}, {thinClient6, thinResolver6, 40}, {thinClient4, thinResolver4, 1400}, {thinClient6, thinResolver6, 1400}} {
				pc, err := ns.ListenPacket("udp", netip.AddrPortFrom(c.from, 0).String())
				if err != nil {
					t.Fatal(err)
				}
				defer pc.Close()
				from := pc.LocalAddr().(*net.UDPAddr).AddrPort()
				want := thinPkt{size: c.size}.payload(i)
				if _, err := pc.WriteTo(want, net.UDPAddrFromAddrPort(netip.AddrPortFrom(c.to, 53))); err != nil {
					t.Fatal(err)
				}
				pkt := readUDPFrom(t, thin, bufs, sizes, from)
				if got := pkttest.VerifyUDP(t, pkt); !bytes.Equal(got, want) {
					t.Errorf("datagram %d from %v: payload of %d bytes %.20q, want %d bytes %.20q", i, from, len(got), got, len(want), want)
				}
			}
			done := make(chan error, 1)
			go func() {
				_, err := thin.Read(bufs, sizes, Headroom)
				done <- err
			}()
			time.Sleep(100 * time.Millisecond)
			thin.Close()
			select {
			case err := <-done:
				if err != os.ErrClosed {
					t.Errorf("a Read waiting when Close came: %v, want os.ErrClosed", err)
				}
			case <-time.After(2 * time.Second):
				t.Fatal("a Read waiting when Close came still waits 2 s later")
			}
			if n, err := thin.Read(bufs, sizes, Headroom); n != 0 || err != os.ErrClosed {
				t.Errorf("Read after Close: %d, %v; want 0, os.ErrClosed", n, err)
			}
		})
	}
}

// readUDPFrom reads packets from dev until a UDP one from from comes (the
// kernel sends the TUN its own, IPv6 router solicitations and multicast
// listener reports), waiting at most 5 s in all, and returns it.
func readUDPFrom(t *testing.T, dev *thinDevice, bufs [][]byte, sizes []int, from netip.AddrPort) []byte {
	t.Helper()
	dev.f.SetReadDeadline(time.Now().Add(5 * time.Second))
	defer dev.f.SetReadDeadline(time.Time{})
	var p packet.Parser
	var out packet.Parsed
	for {
		n, err := dev.Read(bufs, sizes, Headroom)
		if err != nil || n != 1 {
			t.Fatalf("Read: %d, %v; want the datagram from %v", n, err, from)
		}
		pkt := bufs[0][Headroom : Headroom+sizes[0]]
		if p.Decode(pkt, &out) == packet.OK && out.Src == from {
			return pkt
		}
	}
}

// virtioPair is a thin device over a datagram socket pair with a virtio-net
// header (no TUN, no privileges), and the peer's fd, through which a test
// writes what the kernel would hand the device.
func virtioPair(t *testing.T) (*thinDevice, int) {
	t.Helper()
	f, peer := datagramPair(t)
	return mustThin(t, &fakeWG{file: f}, f, virtioHdrLen), peer
}

// TestThinReadVirtio: the thin Read on what a TUN with IFF_VNET_HDR hands
// over: a whole packet behind a zero header is read as it is; one whose
// checksum was left to the device (NEEDS_CSUM, the field holding the
// pseudo-header's sum) gets the checksum a sender would have written; a
// GSO super-packet and a datagram shorter than the header are refused;
// reads allocate nothing; two Reads at once are refused.
func TestThinReadVirtio(t *testing.T) {
	thin, peer := virtioPair(t)
	bufs, sizes := [][]byte{make([]byte, BufSize)}, []int{0}
	src, dst := netip.MustParseAddrPort("198.19.53.1:40000"), netip.MustParseAddrPort("198.19.53.53:53")
	whole := pkttest.UDP4(src, dst, []byte("a query's bytes, 33 of them here"), nil)
	send := func(hdr [virtioHdrLen]byte, pkt []byte) {
		t.Helper()
		if _, err := unix.Write(peer, append(hdr[:], pkt...)); err != nil {
			t.Fatal(err)
		}
	}
	read := func() ([]byte, error) {
		n, err := thin.Read(bufs, sizes, Headroom)
		if err != nil || n != 1 {
			return nil, fmt.Errorf("Read: %d, %w", n, err)
		}
		return bufs[0][Headroom : Headroom+sizes[0]], nil
	}

	send([virtioHdrLen]byte{}, whole)
	if got, err := read(); err != nil || !bytes.Equal(got, whole) {
		t.Errorf("a whole packet: %x, %v; want %x", got, err, whole)
	}

	for _, c := range []struct {
		name     string
		src, dst netip.AddrPort
	}{{"IPv4", src, dst}, {"IPv6", netip.MustParseAddrPort("[fd64:6e73:7475::1]:40000"), netip.MustParseAddrPort("[fd64:6e73:7475::53]:53")}} {
		payload := []byte("checksum me, an odd count of bytes")
		var pkt []byte
		hl := 20
		if c.src.Addr().Is6() {
			pkt, hl = pkttest.UDP6(c.src, c.dst, payload, nil), 40
		} else {
			pkt = pkttest.UDP4(c.src, c.dst, payload, nil)
		}
		partial := bytes.Clone(pkt)
		s, d := c.src.Addr().AsSlice(), c.dst.Addr().AsSlice()
		binary.BigEndian.PutUint16(partial[hl+6:], packet.Fold(packet.PseudoHeaderSum(s, d, 17, len(pkt)-hl)))
		var h [virtioHdrLen]byte
		h[0] = virtioFlagNeedsCsum
		binary.LittleEndian.PutUint16(h[6:], uint16(hl))
		binary.LittleEndian.PutUint16(h[8:], 6)
		send(h, partial)
		if got, err := read(); err != nil || !bytes.Equal(got, pkt) {
			t.Errorf("%s, checksum left to the device: %x, %v; want %x", c.name, got, err, pkt)
		}
	}

	var gso [virtioHdrLen]byte
	gso[1] = 1 // VIRTIO_NET_HDR_GSO_TCPV4
	send(gso, whole)
	if _, err := read(); !errors.Is(err, errThinGSO) {
		t.Errorf("a GSO packet: %v, want errThinGSO", err)
	}
	if _, err := unix.Write(peer, []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	if _, err := read(); err == nil {
		t.Errorf("3 bytes, shorter than the header: read, want an error")
	}

	var zero [virtioHdrLen]byte
	frame := append(zero[:], whole...)
	if a := testing.AllocsPerRun(200, func() {
		unix.Write(peer, frame)
		if _, err := read(); err != nil {
			t.Fatal(err)
		}
	}); a != 0 {
		t.Errorf("send and Read: %v allocations, want 0", a)
	}

	done := make(chan error, 1)
	go func() {
		_, err := read()
		done <- err
	}()
	for !thin.reading.Load() {
		time.Sleep(time.Millisecond)
	}
	if _, err := thin.Read(bufs, sizes, Headroom); err == nil {
		t.Errorf("a second Read at once: read, want an error")
	}
	send(zero, whole)
	if err := <-done; err != nil {
		t.Errorf("the first Read: %v", err)
	}
}

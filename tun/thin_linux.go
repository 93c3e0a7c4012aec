// SPDX-License-Identifier: MIT

package tun

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// virtioHdrLen is the size of struct virtio_net_hdr, the header a TUN with
// IFF_VNET_HDR expects in front of every packet written to it (and the
// kernel's default TUNSETVNETHDRSZ). wireguard-go writes the same 10 bytes.
const virtioHdrLen = 10

// thinDevice is a Linux TUN device whose Write skips wireguard-go's GRO
// machinery: every packet is written to the same fd on its own, behind a
// zeroed virtio-net header (GSO type none, no checksum offload) when the
// device has IFF_VNET_HDR on, with no header when it has not. That is the
// header wireguard-go's Write puts in front of every packet it does not
// coalesce. What Write no longer does is try to coalesce: per call, a lock,
// a map insert per packet, and four walks over maps sized for 128 flows
// (the tables' accounting and resets), whatever the batch holds. DNS
// answers to different client sockets never coalesce, and the engine's
// batches are mostly of one packet (wireguard-go's Read returns one packet
// per call unless the kernel hands it a GSO super-packet).
//
// Everything else (Read, MTU, Events, Close, ...) is wireguard-go's.
//
// A packet is written with the *os.File wireguard-go writes with, so a full
// device (EAGAIN) waits in Go's netpoller as with wireguard-go's Write, and
// a write racing Close fails with os.ErrClosed instead of reaching a reused
// fd number. A packet larger than the MTU given at construction is handed
// to wireguard-go's Write, alone and in its place in the batch (which
// writes it behind the same zeroed header: only coalescing makes GSO
// packets).
type thinDevice struct {
	Device
	f   *os.File
	hdr int // bytes of virtio-net header in front of a packet: 0 or virtioHdrLen
	mtu int
}

// thinWrites returns dev with the thin Write (thinDevice) when it can;
// otherwise it logs why and returns dev as it is, whose Write works too.
func thinWrites(dev Device, name string, cfg Config) Device {
	t, err := newThin(dev, cfg.MTU)
	if err != nil {
		cfg.Logger.Warn("tun: cannot use the thin writer; answers are written through wireguard-go's Write (correct, slower)", "tun", name, "err", err)
		return dev
	}
	return t
}

// newThin wraps dev, a wireguard-go Linux TUN, with the thin Write. mtu is
// the device's MTU: larger packets go through dev.Write. It fails when the
// device is not a TUN or its virtio-net header is not the 10 bytes
// wireguard-go assumes.
func newThin(dev Device, mtu int) (*thinDevice, error) {
	f := dev.File()
	if f == nil {
		return nil, fmt.Errorf("thin TUN writer: device %T has no file", dev)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("thin TUN writer on %s: %w", f.Name(), err)
	}
	hdr, err := vnetHdrLen(rc)
	if err != nil {
		return nil, fmt.Errorf("thin TUN writer on %s: %w", f.Name(), err)
	}
	return &thinDevice{Device: dev, f: f, hdr: hdr, mtu: mtu}, nil
}

// vnetHdrLen returns the length of the virtio-net header the TUN behind rc
// expects in front of each packet: 0 without IFF_VNET_HDR, else
// virtioHdrLen. Any other TUNGETVNETHDRSZ is an error: wireguard-go's own
// Write would be wrong too.
func vnetHdrLen(rc syscall.RawConn) (int, error) {
	var (
		flags uint16
		size  int
		err   error
	)
	cerr := rc.Control(func(fd uintptr) {
		var ifr *unix.Ifreq
		if ifr, err = unix.NewIfreq(""); err != nil {
			return
		}
		if err = unix.IoctlIfreq(int(fd), unix.TUNGETIFF, ifr); err != nil {
			err = fmt.Errorf("TUNGETIFF: %w (not a TUN?)", err)
			return
		}
		if flags = ifr.Uint16(); flags&unix.IFF_VNET_HDR == 0 {
			return
		}
		if size, err = unix.IoctlGetInt(int(fd), unix.TUNGETVNETHDRSZ); err != nil {
			err = fmt.Errorf("TUNGETVNETHDRSZ: %w", err)
		}
	})
	switch {
	case cerr != nil:
		return 0, cerr
	case err != nil:
		return 0, err
	case flags&(unix.IFF_TUN|unix.IFF_TAP) != unix.IFF_TUN || flags&unix.IFF_NO_PI == 0:
		return 0, fmt.Errorf("TUN flags %#x: want IFF_TUN and IFF_NO_PI, as wireguard-go opens it", flags)
	case flags&unix.IFF_VNET_HDR == 0:
		return 0, nil
	case size != virtioHdrLen:
		return 0, fmt.Errorf("virtio-net header of %d bytes (TUNGETVNETHDRSZ), want %d", size, virtioHdrLen)
	}
	return virtioHdrLen, nil
}

// Write writes each packet bufs[i][offset:] to the device, in order, and
// returns how many it wrote and the first error. A packet that fails does
// not stop the rest of the batch (as with wireguard-go's Linux Write), but a
// closed device does, with os.ErrClosed. The hdr bytes before offset are
// overwritten.
func (t *thinDevice) Write(bufs [][]byte, offset int) (int, error) {
	if offset < t.hdr {
		return t.Device.Write(bufs, offset) // refused by wireguard-go in its own words
	}
	n := 0
	var first error
	for i, b := range bufs {
		var err error
		switch {
		case len(b) <= offset:
			err = errors.New("no packet after the headroom")
		case len(b)-offset > t.mtu:
			_, err = t.Device.Write(bufs[i:i+1], offset)
		default:
			clear(b[offset-t.hdr : offset])
			_, err = t.f.Write(b[offset-t.hdr:])
		}
		switch {
		case err == nil:
			n++
		case errors.Is(err, os.ErrClosed) || errors.Is(err, unix.EBADFD):
			return n, os.ErrClosed // closed, or the TUN is gone
		case first == nil:
			first = fmt.Errorf("write packet %d of %d (%d bytes at offset %d) to the TUN: %w", i, len(bufs), len(b)-offset, offset, err)
		}
	}
	return n, first
}

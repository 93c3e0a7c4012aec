// SPDX-License-Identifier: MIT

package tun

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/dnstun/dnstun/internal/fdref"
	"github.com/dnstun/dnstun/packet"
)

// virtioHdrLen is the size of struct virtio_net_hdr, the header a TUN with
// IFF_VNET_HDR expects in front of every packet written to it (and the
// kernel's default TUNSETVNETHDRSZ). wireguard-go writes the same 10 bytes.
const virtioHdrLen = 10

// thinDevice is a Linux TUN device whose Read and Write are raw system
// calls on its fd, and whose Write skips wireguard-go's GRO machinery:
// every packet is written to the same fd on its own, behind a zeroed
// virtio-net header (GSO type none, no checksum offload) when the
// device has IFF_VNET_HDR on, with no header when it has not. That is the
// header wireguard-go's Write puts in front of every packet it does not
// coalesce. What Write no longer does is try to coalesce: per call, a lock,
// a map insert per packet, and four walks over maps sized for 128 flows
// (the tables' accounting and resets), whatever the batch holds. DNS
// answers to different client sockets never coalesce, and the engine's
// batches are mostly of one packet (wireguard-go's Read returns one packet
// per call unless the kernel hands it a GSO super-packet).
//
// Everything else (MTU, Events, Name, ...) is wireguard-go's.
//
// Raw system calls (syscall.RawSyscall): read and write on a TUN never
// block (the fd is non-blocking), so the Go scheduler need not hear of
// them. Through os.File each would enter and leave the scheduler's system
// call state, and the first one after dnstun had gone idle wakes the
// runtime's sysmon thread, which then polls every 20 µs until dnstun is idle
// again: at 2,000 queries a second that was 1.7 futex calls, 0.85
// nanosleeps and 1.7 more context switches a query, and at saturation 7.7%
// of dnstun's CPU on a VM, where sysmon's timer sleeps cost VM exits
// (bench/NOTES.md). A read that finds nothing waits in Go's netpoller (the
// *os.File's RawConn), as wireguard-go's Read does.
//
// The device turns the TUN's offloads off (TUNSETOFFLOAD 0), so the kernel
// hands it whole packets with their checksums done, never GSO
// super-packets or ones whose checksum is left to it: a DNS filter gains
// nothing from them, and the raw Read need not split or finish packets.
// A packet that still comes with a checksum to finish gets it; a GSO one
// (queued before the offloads went off) is dropped, with errThinGSO.
//
// The fd is wireguard-go's *os.File's; ref keeps it open while a Write is
// on it, so that a Write racing Close fails with os.ErrClosed instead of
// reaching a reused fd number (Close closes the device when the last such
// Write ends). A full device (EAGAIN, which a TUN does not give) waits in
// the netpoller through the *os.File. A packet larger than the MTU given at
// construction is handed to wireguard-go's Write, alone and in its place in
// the batch (which writes it behind the same zeroed header: only
// coalescing makes GSO packets).
type thinDevice struct {
	Device
	f   *os.File
	rc  syscall.RawConn
	fd  uintptr
	ref fdref.Ref
	hdr int // bytes of virtio-net header in front of a packet: 0 or virtioHdrLen
	mtu int

	// The one Read at a time's scratch, and its read(2), bound once so
	// that a Read does not allocate a closure.
	reading atomic.Bool
	rbuf    []byte
	rn      int
	rerr    syscall.Errno
	readFn  func(fd uintptr) bool
}

// thinWrites returns dev as a thinDevice when it can; otherwise it logs
// why and returns dev as it is, whose Read and Write work too.
func thinWrites(dev Device, name string, cfg Config) Device {
	t, err := newThin(dev, cfg.MTU)
	if err != nil {
		cfg.Logger.Warn("tun: cannot use the thin device; packets are read and written through wireguard-go (correct, slower)", "tun", name, "err", err)
		return dev
	}
	return t
}

// newThin wraps dev, a wireguard-go Linux TUN, in the thin device and turns
// the TUN's offloads off. mtu is the device's MTU: larger packets go
// through dev.Write. It fails when the device is not a TUN, its
// virtio-net header is not the 10 bytes wireguard-go assumes, or its
// offloads cannot be turned off.
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
	if hdr > 0 {
		cerr := rc.Control(func(fd uintptr) { err = unix.IoctlSetInt(int(fd), unix.TUNSETOFFLOAD, 0) })
		if err = cmp.Or(cerr, err); err != nil {
			return nil, fmt.Errorf("thin TUN writer on %s: TUNSETOFFLOAD 0 (offloads off): %w", f.Name(), err)
		}
	}
	return thinOn(dev, f, hdr, mtu)
}

// thinOn wraps dev, whose fd f carries hdr bytes of virtio-net header in
// front of each packet.
func thinOn(dev Device, f *os.File, hdr, mtu int) (*thinDevice, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("thin TUN writer on %s: %w", f.Name(), err)
	}
	t := &thinDevice{Device: dev, f: f, rc: rc, hdr: hdr, mtu: mtu}
	if err := rc.Control(func(fd uintptr) { t.fd = fd }); err != nil {
		return nil, fmt.Errorf("thin TUN writer on %s: %w", f.Name(), err)
	}
	t.readFn = t.readOnce
	return t, nil
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
	if !t.ref.Pin() {
		return 0, os.ErrClosed
	}
	defer t.unpin()
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
			err = t.writeOne(b[offset-t.hdr:])
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

// writeOne writes p (header and packet) with a raw write(2); t is pinned.
func (t *thinDevice) writeOne(p []byte) error {
	_, _, e := unix.RawSyscall(unix.SYS_WRITE, t.fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	switch e {
	case 0:
		return nil
	case unix.EAGAIN, unix.EINTR:
		_, err := t.f.Write(p) // waits in the netpoller
		return err
	}
	return e
}

// unpin ends a Write; the last one after Close closes the device.
func (t *thinDevice) unpin() {
	if t.ref.Unpin() {
		t.Device.Close()
	}
}

// Close closes the device, or lets the Write still on it do so when it
// ends. A Read waiting for a packet returns os.ErrClosed.
func (t *thinDevice) Close() error {
	first, now := t.ref.Shut()
	if first && now {
		return t.Device.Close()
	}
	return nil
}

// errThinGSO: the TUN handed over a GSO super-packet, which it does only
// for packets queued before its offloads were turned off.
var errThinGSO = errors.New("tun: a GSO packet from a TUN with offloads off (queued before they went off?): dropped")

// Read reads one packet into bufs[0][offset:] with a raw read(2), waiting
// in the netpoller while there is none, and finishes its checksum when the
// kernel left that to the device. One Read at a time: a second at once
// gets an error. After Close it returns os.ErrClosed. (wireguard-go's Read
// also returns, once, the error that ended its netlink listener, which
// only watches MTU and link events; this one does not.)
func (t *thinDevice) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	if offset < t.hdr || len(bufs) == 0 || len(sizes) == 0 || len(bufs[0]) <= offset {
		return 0, fmt.Errorf("tun: Read with %d buffers, offset %d: want at least one buffer and an offset of at least %d bytes", len(bufs), offset, t.hdr)
	}
	if !t.reading.CompareAndSwap(false, true) {
		return 0, errors.New("tun: two Reads at once on one queue")
	}
	defer t.reading.Store(false)
	t.rbuf, t.rn, t.rerr = bufs[0][offset-t.hdr:], 0, 0
	err := t.rc.Read(t.readFn)
	t.rbuf = nil
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return 0, err // a deadline set on the file (tests do)
	case err != nil:
		return 0, os.ErrClosed // else RawConn.Read fails only when the file is closing
	case t.rerr == unix.EBADFD:
		return 0, os.ErrClosed // the interface is gone (as wireguard-go reports it)
	case t.rerr != 0:
		return 0, fmt.Errorf("tun: read: %w", t.rerr)
	case t.rn < t.hdr:
		return 0, fmt.Errorf("tun: read %d bytes, less than the %d-byte virtio-net header", t.rn, t.hdr)
	}
	if t.hdr > 0 {
		if err := finishVirtio(bufs[0][offset-t.hdr:offset], bufs[0][offset:offset+t.rn-t.hdr]); err != nil {
			return 0, err
		}
	}
	sizes[0] = t.rn - t.hdr
	return 1, nil
}

// readOnce is the netpoller's read attempt: false when the TUN has nothing
// (wait for it), true once read(2) gave a packet or an error.
func (t *thinDevice) readOnce(fd uintptr) bool {
	for {
		n, _, e := unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&t.rbuf[0])), uintptr(len(t.rbuf)))
		switch e {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		}
		t.rn, t.rerr = int(n), e
		return true
	}
}

// The fields of struct virtio_net_hdr (little-endian, as a TUN on every
// architecture Go runs dnstun on writes it) that Read looks at.
const (
	virtioFlagNeedsCsum = 1 // VIRTIO_NET_HDR_F_NEEDS_CSUM
	virtioGSONone       = 0 // VIRTIO_NET_HDR_GSO_NONE
)

// finishVirtio checks the virtio-net header h of pkt: a GSO packet is
// refused (errThinGSO); a packet whose checksum the kernel left to the
// device (CHECKSUM_PARTIAL: the field holds the pseudo-header's sum) gets
// it: the sum of the bytes from csum_start, stored at csum_start +
// csum_offset.
func finishVirtio(h, pkt []byte) error {
	if h[1] != virtioGSONone {
		return errThinGSO
	}
	if h[0]&virtioFlagNeedsCsum == 0 {
		return nil
	}
	start, off := int(binary.LittleEndian.Uint16(h[6:])), int(binary.LittleEndian.Uint16(h[8:]))
	if start+off+2 > len(pkt) {
		return fmt.Errorf("tun: checksum to finish at %d+%d in a %d-byte packet", start, off, len(pkt))
	}
	at := pkt[start+off:]
	partial := uint64(binary.BigEndian.Uint16(at))
	at[0], at[1] = 0, 0
	sum := ^packet.Fold(packet.Sum(pkt[start:], partial))
	if sum == 0 {
		sum = 0xffff // a UDP checksum of 0 means none (RFC 768); the same sum for TCP
	}
	binary.BigEndian.PutUint16(at, sum)
	return nil
}

// BatchSize is 1: Read returns one packet per call (wireguard-go's says
// how many a GSO super-packet may split into, which this device does not
// get), so a reader needs one buffer, not 128 of 64 KiB.
func (t *thinDevice) BatchSize() int { return 1 }

// SPDX-License-Identifier: MIT

package tun

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"

	wgtun "golang.zx2c4.com/wireguard/tun"
)

// Device is wireguard-go's TUN interface, so its tuntest and netstack devices
// and our own tuntest.Pipe plug in unchanged.
type Device = wgtun.Device

const (
	// Headroom is the offset at which packets start in every buffer handed
	// to a Device. It must be at least 4 (darwin's AF header) and at least 10
	// (Linux's virtio-net header); wireguard-go itself uses 16.
	Headroom = 16
	// MaxPacket is the largest IP packet a buffer must hold: a TUN with
	// offloads may hand us a 64 KiB GSO super-packet to split.
	MaxPacket = 65535
	// BufSize is the size of every packet buffer.
	BufSize = Headroom + MaxPacket
	// DefaultMTU is the MTU dnstun gives its TUN.
	DefaultMTU = 1500
)

// Config says how to bring a TUN up.
type Config struct {
	// Name is the interface name: on Linux any valid name (dnstun0 by
	// default); on darwin "utun" (the kernel picks the number) or "utunN".
	Name string
	// MTU of the device; 0 means DefaultMTU.
	MTU int
	// Addrs are the device's own addresses (host prefixes: /32 or /128).
	// Packets the engine writes back are delivered to the host from them.
	Addrs []netip.Prefix
	// Routes are the destinations steered into the device, typically the
	// virtual resolver addresses as host routes. They die with the device.
	Routes []netip.Prefix
	// Logger receives device events; nil means slog.Default().
	Logger *slog.Logger
	// Queues is how many queues the device has, each read by its own
	// goroutine (MultiQueue). 0 or 1: one, the device wireguard-go's
	// CreateTUN opens. More (up to MaxQueues) need Linux's
	// IFF_MULTI_QUEUE: the kernel spreads flows across the queues by a
	// hash of their addresses and ports. darwin's utun has one queue:
	// MaxQueues is 1 there.
	Queues int
}

// MultiQueue is what a device opened with Config.Queues > 1 implements.
// Queues returns every queue, the first being the device's own reading
// side: each is a Device whose Read reads the packets the kernel steered
// to that queue and whose Write writes on it (the kernel takes a packet
// written on any queue). A packet a queue's reader answers is best written
// back on that queue; the device's own Write, for the other writers (the
// engine's receiver, sweeper, TCP), writes on a queue of its own that the
// kernel never reads into (see multiqueue_linux.go). The slice and its
// devices are the device's: closing it closes them all.
type MultiQueue interface {
	Queues() []Device
}

// Open creates the TUN device, configures its addresses, MTU and routes,
// brings it up and starts draining its events. On failure nothing is left
// behind: the device is closed, and the kernel removes it with everything
// attached to it. It returns the device and its actual name. On Linux the
// device reads and writes through a thin device of our own (thin_linux.go):
// raw system calls, one packet a read, the TUN's offloads off;
// wireguard-go's Write only for a packet over the MTU. With cfg.Queues > 1
// the device implements MultiQueue (openQueues).
func Open(cfg Config) (Device, string, error) {
	if cfg.MTU == 0 {
		cfg.MTU = DefaultMTU
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	for _, p := range append(append([]netip.Prefix(nil), cfg.Addrs...), cfg.Routes...) {
		if !p.IsValid() {
			return nil, "", fmt.Errorf("tun %q: invalid prefix %v", cfg.Name, p)
		}
	}
	if cfg.Queues < 0 || cfg.Queues > MaxQueues {
		return nil, "", fmt.Errorf("tun %q: %d queues: want 1 to %d%s", cfg.Name, cfg.Queues, MaxQueues, queuesHint)
	}
	if cfg.Queues > 1 {
		return openQueues(cfg)
	}
	dev, err := wgtun.CreateTUN(cfg.Name, cfg.MTU)
	if err != nil {
		return nil, "", fmt.Errorf("create TUN %q: %w (dnstun needs root or CAP_NET_ADMIN)", cfg.Name, err)
	}
	name, err := dev.Name()
	if err != nil {
		dev.Close()
		return nil, "", fmt.Errorf("TUN %q: read name: %w", cfg.Name, err)
	}
	go drainEvents(dev, name, cfg.Logger)
	// Thin before the link is up: no packet reaches it with the offloads
	// still on.
	dev = thinWrites(dev, name, cfg)
	if err := configure(name, cfg); err != nil {
		dev.Close()
		return nil, "", fmt.Errorf("configure TUN %s: %w", name, err)
	}
	return dev, name, nil
}

// drainEvents keeps the event channel moving; it ends when the device closes
// the channel.
func drainEvents(dev Device, name string, log *slog.Logger) {
	for ev := range dev.Events() {
		if ev&wgtun.EventDown != 0 {
			log.Debug("tun event: down", "tun", name)
		}
		if ev&wgtun.EventUp != 0 {
			log.Debug("tun event: up", "tun", name)
		}
	}
}

// ErrTooManySegments is returned by a Linux Read when a GSO super-packet
// does not fit the buffers given; reads should go on.
var ErrTooManySegments = wgtun.ErrTooManySegments

// ErrUnsupported is returned on systems dnstun has no TUN support for.
var ErrUnsupported = errors.ErrUnsupported

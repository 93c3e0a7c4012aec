// SPDX-License-Identifier: MIT

package tun

import (
	"errors"
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"
	wgtun "golang.zx2c4.com/wireguard/tun"
)

// MaxQueues is the most queues a TUN may have (Config.Queues). Each queue
// costs a file descriptor, wireguard-go's 64 KiB read buffer and a reader
// goroutine with its batch (BatchSize buffers of BufSize, touched only as
// packets fill them); more readers than CPUs buy nothing. The kernel's own
// bound is 256.
const MaxQueues = 64

// queuesHint ends the error for a Config.Queues out of range.
const queuesHint = ""

// queueFlags are the TUNSETIFF flags of every queue of a multi-queue TUN:
// wireguard-go's CreateTUN's (IFF_TUN | IFF_NO_PI | IFF_VNET_HDR, with which
// its Read splits GSO super-packets) plus IFF_MULTI_QUEUE, which every
// queue of such a device must have. The offloads (TUNSETOFFLOAD) are the
// device's, not a queue's: wireguard-go sets the same ones (TCP checksum
// and TSO, and USO where the kernel has it) from each queue.
const queueFlags = unix.IFF_TUN | unix.IFF_NO_PI | unix.IFF_VNET_HDR | unix.IFF_MULTI_QUEUE

// multiQueue is a TUN with several queues: n file descriptors attached to
// one interface (IFF_MULTI_QUEUE), each a wireguard-go device behind the
// thin writer, and one more, detached (IFF_DETACH_QUEUE), that only
// writes.
//
// Why the detached writer: with several queues the kernel steers each flow
// (its addresses and ports, hashed symmetrically) to the queue that last
// wrote a packet of it, else by the hash (tun.c's automq flow table; a
// write on a detached queue does not update it). Answers written by the
// reader that read the query keep the flow on its queue; but if the
// receiver wrote every forwarded answer on queue 0, each client socket that
// got one would be steered to queue 0 from then on, and a client that
// keeps its socket (a load generator, a stub with a fixed port) would end
// up with all its queries on one reader.
type multiQueue struct {
	Device          // queue 0: Read, and Name, MTU, Events, BatchSize, File
	queues []Device // every queue, queues[0] being the one embedded
	writer Device   // the detached queue: Write
	once   sync.Once
}

// Queues implements MultiQueue.
func (m *multiQueue) Queues() []Device { return m.queues }

// Write writes on the detached queue, which moves no flow between queues.
func (m *multiQueue) Write(bufs [][]byte, offset int) (int, error) {
	return m.writer.Write(bufs, offset)
}

// Close closes every queue and the writer; the kernel removes the
// interface when the last one closes. It is idempotent.
func (m *multiQueue) Close() error {
	var errs []error
	m.once.Do(func() {
		for _, d := range append(m.queues, m.writer) {
			if d != nil {
				errs = append(errs, d.Close())
			}
		}
	})
	return errors.Join(errs...)
}

// openQueues is Open for cfg.Queues > 1: the first queue creates the
// interface (exclusively: it never joins one another process has open),
// the others attach to it, and the writer attaches and detaches. Queue 0 is
// the device wireguard-go monitors (events, MTU); the others are
// unmonitored wireguard-go devices over their fds, reading the same way
// (GSO super-packets split).
func openQueues(cfg Config) (Device, string, error) {
	m := &multiQueue{}
	name := cfg.Name
	for i := range cfg.Queues + 1 {
		d, got, err := openQueue(name, i, cfg)
		if err != nil {
			m.Close()
			what := fmt.Sprintf("queue %d of %d", i+1, cfg.Queues)
			if i == cfg.Queues {
				what = "its writing queue"
			}
			return nil, "", fmt.Errorf("create TUN %q with %d queues, %s: %w (dnstun needs root or CAP_NET_ADMIN; --tun-queues 1 opens the TUN as before)", name, cfg.Queues, what, err)
		}
		if i == cfg.Queues {
			m.writer = d
		} else {
			m.queues = append(m.queues, d)
		}
		name = got
	}
	go drainEvents(m.queues[0], name, cfg.Logger)
	// Thin before the link is up (see Open).
	for i := range m.queues {
		m.queues[i] = thinWrites(m.queues[i], name, cfg)
	}
	m.writer = thinWrites(m.writer, name, cfg)
	m.Device = m.queues[0]
	if err := configure(name, cfg); err != nil {
		m.Close()
		return nil, "", fmt.Errorf("configure TUN %s: %w", name, err)
	}
	return m, name, nil
}

// openQueue opens queue i of the multi-queue TUN name (the writer when i
// is cfg.Queues) and hands it to wireguard-go. It returns the device and
// the interface's name (the kernel's pick when name is a pattern).
func openQueue(name string, i int, cfg Config) (Device, string, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, "", fmt.Errorf("open /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, "", err
	}
	flags := uint16(queueFlags)
	if i == 0 {
		flags |= unix.IFF_TUN_EXCL
	}
	ifr.SetUint16(flags)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		if i == 0 && errors.Is(err, unix.EBUSY) {
			return nil, "", fmt.Errorf("TUNSETIFF: an interface named %q exists already: stop what uses it, or give another --tun name", name)
		}
		return nil, "", fmt.Errorf("TUNSETIFF %#x: %w", flags, err)
	}
	name = ifr.Name()
	if i == cfg.Queues {
		ifr.SetUint16(unix.IFF_DETACH_QUEUE)
		if err := unix.IoctlIfreq(fd, unix.TUNSETQUEUE, ifr); err != nil {
			unix.Close(fd)
			return nil, "", fmt.Errorf("TUNSETQUEUE IFF_DETACH_QUEUE: %w", err)
		}
	}
	if i > 0 {
		// No netlink listener, no MTU: queue 0's device does both for
		// the interface. On failure the fd belongs to the *os.File
		// wireguard-go made of it (closed when it is collected).
		d, _, err := wgtun.CreateUnmonitoredTUNFromFD(fd)
		if err != nil {
			return nil, "", fmt.Errorf("wireguard-go: %w", err)
		}
		return d, name, nil
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, "", fmt.Errorf("set nonblocking: %w", err)
	}
	f := os.NewFile(uintptr(fd), "/dev/net/tun")
	d, err := wgtun.CreateTUNFromFile(f, cfg.MTU)
	if err != nil {
		f.Close()
		return nil, "", fmt.Errorf("wireguard-go: %w", err)
	}
	return d, name, nil
}

// SPDX-License-Identifier: MIT

package engine

import (
	"sync/atomic"

	"github.com/dnstun/dnstun/tun"
)

// A TUN with several queues (tun.MultiQueue, Linux's IFF_MULTI_QUEUE) has
// one reader per queue (routineRead), each with its own worker and batch,
// writing its answers on its own queue. Everything they share is what the
// other front-ends calling worker.handle (TCP connections, the releaser)
// already share with the reader: the counters (each worker counts in a
// lane handed out in turn, shared past 15 workers), the pending table's lock, the pool (an upstream's
// mutex), the query log's lock, the cache, the filter's atomic pointer,
// the client tables. The TCP stack takes segments from any reader (netstack's
// dispatch is safe for concurrent callers; a connection's segments come
// in on one queue, the kernel steering by flow). Answers from the other
// goroutines (receiver, sweeper, releaser, TCP) go through the device's
// own Write, which moves no flow between queues (see tun.MultiQueue).

// queuesOf returns the devices to read: every queue of a multi-queue TUN,
// else dev itself (none for a nil dev, in flow mode).
func queuesOf(dev tun.Device) []tun.Device {
	if dev == nil {
		return nil
	}
	if mq, ok := dev.(tun.MultiQueue); ok {
		if qs := mq.Queues(); len(qs) > 0 {
			return qs
		}
	}
	return []tun.Device{dev}
}

// queueCount is one reader's count of packets read, alone on its cache
// line(s): readers on different cores never write to the same line.
type queueCount struct {
	_ [64]byte
	n atomic.Uint64
	_ [56]byte
}

// QueuePackets returns how many packets each TUN queue's reader has read:
// one count per queue, in the order of tun.MultiQueue's Queues (one for a
// TUN with one queue, none in flow mode). They are the TUN's share of
// Stats' Packets, which adds them up (and flow mode's datagrams).
func (e *Engine) QueuePackets() []uint64 {
	out := make([]uint64, len(e.reads))
	for i := range e.reads {
		out[i] = e.reads[i].n.Load()
	}
	return out
}

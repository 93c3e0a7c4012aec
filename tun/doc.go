// SPDX-License-Identifier: MIT

// Package tun opens and configures dnstun's TUN device and owns the buffer
// geometry every other package follows.
//
// It is the only package that imports golang.zx2c4.com/wireguard/tun.
//
// Contracts:
//   - Headroom: every (bufs, offset) pair handed to a Device uses
//     offset == Headroom, and every buffer has capacity for Headroom+MaxPacket.
//     The headroom is scratch space for the device: darwin's utun writes its
//     4-byte address-family header there, Linux writes its 10-byte virtio
//     header there.
//   - Ownership: a buffer handed to Write belongs to the device until Write
//     returns, and may have been changed by it (headroom rewritten, GRO).
//     Never re-send a buffer without rebuilding it.
//   - A Batch belongs to one goroutine.
//   - Queues: a device opened with Config.Queues > 1 (Linux only) is a
//     MultiQueue; each queue is read by one goroutine, and a packet answered
//     from a queue is written back on it. The kernel steers a flow to the
//     queue that last wrote a packet of it, so the device's own Write (for
//     every other writer) uses a detached queue, which steers nothing.
//   - Someone must always drain Events(): darwin's route listener blocks on a
//     full channel. Open starts that drain.
package tun

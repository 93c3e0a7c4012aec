// SPDX-License-Identifier: MIT

// Package upstream owns the sockets dnstun forwards queries on, and reads
// the system's resolver configuration.
//
// Every socket is made so that it cannot loop back into dnstun's TUN: on
// Linux it carries SO_MARK (Mark), which dnstun's steering rules exempt; on
// darwin it will be bound to the physical interface (IP_BOUND_IF) once
// capture lands there. Sockets are connected UDP sockets, one per upstream,
// so the kernel already filters replies by source address and port.
//
// The forwarding logic itself (pending queries, failover, deadlines) lives
// in package engine; this package does no per-query allocation: Send and the
// receive loop reuse their buffers.
package upstream

// SPDX-License-Identifier: MIT

// Package upstream owns the sockets dnstun forwards queries on, and reads
// the system's resolver configuration.
//
// Every socket is made so that it cannot loop back into dnstun's TUN: on
// Linux it carries SO_MARK (Mark), which dnstun's steering rules exempt; on
// darwin capture steers through the resolver configuration, and only
// dnstun's own addresses (never an upstream) are routed into the utun, so
// sockets are left unbound and follow the routing table. Sockets are
// connected UDP sockets, one per upstream, so the kernel already filters
// replies by source address and port.
//
// The system's resolvers: ParseResolvConf/DetectSetup (Linux), and on
// macOS the primary service's DNS keys of the dynamic store
// (PickDarwinResolvers, DarwinSystemResolvers). On every OS a list made
// only of dnstun's own addresses is refused (FilterOwn, RefreshUpstreams):
// once capture is on, the system may name dnstun as its resolver.
//
// The forwarding logic itself (pending queries, failover, deadlines) lives
// in package engine; this package does no per-query allocation: Send and the
// receive loop reuse their buffers.
package upstream

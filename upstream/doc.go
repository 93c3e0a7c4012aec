// SPDX-License-Identifier: MIT

// Package upstream owns everything dnstun sends to real resolvers, and
// reads the system's resolver configuration.
//
// Upstreams are named in AdGuard dnsproxy's syntax (ParseSpec,
// ParseUpstreamArg). Plain UDP goes through a Pool: each query from a
// fresh connected socket, so from a random source port, and the kernel
// drops datagrams from anyone but the upstream; Send and Recv allocate
// nothing. Every other transport (TCP, DoT, DoH, DoH3, DoQ) is an
// Exchanger, which queues the query, runs on its own goroutines, and hands
// answers and failures back through callbacks. Host names in URLs are
// resolved through bootstrap resolvers, never through dnstun.
//
// Every socket is made so that it cannot loop back into dnstun's TUN: on
// Linux it carries SO_MARK (Mark), which dnstun's steering rules exempt; on
// darwin capture steers through the resolver configuration, and only
// dnstun's own addresses (never an upstream) are routed into the utun, so
// sockets are left unbound and follow the routing table.
//
// The system's resolvers: ParseResolvConf/DetectSetup (Linux), and on
// macOS the primary service's DNS keys of the dynamic store
// (PickDarwinResolvers, DarwinSystemResolvers). On every OS a list made
// only of dnstun's own addresses is refused (FilterOwn, RefreshUpstreams):
// once capture is on, the system may name dnstun as its resolver.
//
// The forwarding logic itself (pending queries, routing, strategies,
// failover, deadlines) lives in package engine.
package upstream

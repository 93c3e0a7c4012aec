// SPDX-License-Identifier: MIT

// Package e2e is dnstun's end-to-end benchmark: it builds throw-away
// network namespaces, starts an upstream responder and each system under
// test in turn (direct, dnstun on the TUN, dnstun's flow mode, dnsmasq,
// unbound, dnsdist and the ceiling program), drives them with
// bench/loadgen, and reports queries per second, latency percentiles, CPU
// per query, RSS and start-up time; over UDP, and for the systems that
// answer DNS over TCP (all but dnstun's flow mode and the ceiling) in
// closed-loop TCP phases too: one query per connection, and TCPPerConn
// queries per connection.
//
// The lookup phase (Options.Lookups) puts an ordinary Go program in the
// client's place: bench/cmd/golookup, a process of its own in the SUT
// namespace on the client's core, looks the blocked and the forwarded mix
// up with net.Resolver{PreferGo: true} (its Dial sent to the system's
// address), which opens a fresh UDP socket per query and asks A and AAAA
// in parallel, so that what a client's socket costs the system shows.
// It runs against direct, dnstun, its flow mode, dnsdist and the ceiling,
// closed loop (Concurrency/2 lookups at a time) then open loop (Rate/2
// lookups a second), with the system's CPU time read around each run as
// in the other phases.
//
// The upstream transports phase (Options.Transports) compares what each
// transport to the upstream costs: dnstun (TUN) and dnsdist forward the
// forwarded-name mix over UDP, TCP, DoT and DoH to unbound, and dnstun
// over DoQ and DoH3 to bench/cmd/quicupstream (internal/quictest's quic-go
// server: nothing packaged serves DoQ or DoH3), both in the upstream
// namespace with a certificate from a throw-away CA (tlstest) that dnstun
// trusts through SSL_CERT_FILE and dnsdist through caStore. unbound answers
// every name of the mix from a redirect local-zone, so every query costs it
// the same and nothing is cached. A transport dnsdist cannot forward over
// is reported with the reason.
//
// The response cache phase (Options.CachePhase) measures cache hits: a
// second bench/cmd/upstream (port 5354, -ttl 3600) answers every name with
// a positive TTL, and dnstun (--cache 64MiB, the default), dnsmasq
// (cache-size), unbound (msg and rrset caches) and dnsdist (a packet cache
// on the default pool) forward to it with their caches on. Each is warmed
// with every name of the forwarded mix once, and the upstream's count of
// answers (read with SIGUSR1) shows that the measured runs that follow
// reached it not once: every measured query is a hit. dnstun's blocked
// path (in the same process) and the ceiling run in the phase too, for the
// ratios. Then dnstun's cache is filled with Options.CacheNames distinct
// names and queried again with a Zipf sample of them; its counters come
// from `dnstun stats` over a control socket in the run's directory.
//
// # Topology
//
// The lab is internal/lab's: two namespaces, dnb-SFX-host (the SUT
// namespace) and dnb-SFX-up, joined by a veth pair, IPv4 only.
//
//	┌─ SUT namespace (dnb-SFX-host) ────────────────┐       ┌─ dnb-SFX-up ────────────┐
//	│ client (loadgen, this process;     core C     │       │ bench/cmd/upstream      │
//	│   golookup in the lookup phase)               │       │                         │
//	│ system under test                  core S     │ veth  │ 192.0.2.1:53 UDP+TCP C  │
//	│   dnstun/ceiling: TUN, 198.19.53.53           ├───────┤ A 192.0.2.80, TTL 0     │
//	│   flow/dnsmasq/unbound/dnsdist: 198.51.100.53 │       │                         │
//	│                                               │       │ transports phase:       │
//	│                                               │       │ unbound :5300 :853 :443 │
//	│                                               │       │ quicupstream :8853 :8443│
//	│                                               │       │ cache phase: upstream   │
//	│                                               │       │ :5354, TTL 3600         │
//	│ dt-h 192.0.2.2/24                             │       │ dt-u 192.0.2.1/24       │
//	└───────────────────────────────────────────────┘       └─────────────────────────┘
//
// The client runs in the same namespace as the system under test and
// queries a resolver address local to that namespace, for every system:
// dnstun's virtual resolver is a host route into its TUN, which exists only
// in the namespace that owns the TUN, and it is also how dnstun is used
// (the machine's own clients query it). Socket-based resolvers listen on
// 198.51.100.53, an address on the namespace's loopback; "direct" queries
// the upstream over the veth. TCP connections are opened from the SUT
// namespace by a pool of threads switched into it once (nsDialer); the
// namespace reuses sockets in TIME_WAIT and has a wide ephemeral port
// range, so seconds of one connection per query do not run out of ports.
// The client and the upstream share core C, the system under test runs
// alone on core S (taskset), so its CPU time per answered query (utime and
// stime from /proc/PID/stat, with those of the children it reaped: dnsmasq
// forks per TCP connection) is the comparable cost; qps at saturation is
// often the client's limit on a 2-core machine.
//
// # Invariants
//
//   - Traffic stays inside the two namespaces: they have no route but the
//     veth's 192.0.2.0/24, the TUN's host routes and loopback. Everything
//     (processes by PID, namespaces, temp files) is removed when Run
//     returns, also when its context is cancelled.
//   - Every load is bounded in time and count (loadgen.Config.Duration and
//     MaxQueries); every wait has a deadline.
//   - The block lists are generated (BlockNames, fixed seed), never stored.
package e2e

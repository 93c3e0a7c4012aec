// SPDX-License-Identifier: MIT

// Package lab builds the throw-away network lab that dnstun's demo, its
// privileged end-to-end tests and the end-to-end benchmark run in: two
// network namespaces, "host" and "up", joined by a veth pair, with
// processes started inside them, sockets opened inside them from this
// process, and (for callers that want them) in-process DNS servers from
// internal/dnstest.
//
//	┌─ PREFIX-SFX-host ──────────────────────┐        ┌─ PREFIX-SFX-up ──────────────────────┐
//	│ dnstun / the system under test:        │        │ upstream servers: in-process         │
//	│   TUN resolver 198.19.53.53 (Resolver4)│  veth  │   (Lab.Serve) or a subprocess        │
//	│ clients (NS.Dial, NS.FirstAnswer)      ├────────┤   (Lab.Start)                        │
//	│ dt-h 192.0.2.2/24 [2001:db8:53::2/64]  │        │ dt-u 192.0.2.1/24 [2001:db8:53::1/64]│
//	│ [lo 198.51.100.53: HostLoopback]       │        │ [lo 198.51.100.53: UpLoopback]       │
//	└────────────────────────────────────────┘        └──────────────────────────────────────┘
//
// Invariants:
//
//   - Addresses come from the documentation ranges only (RFC 5737
//     TEST-NETs, RFC 3849 2001:db8::/32), plus the benchmarking range
//     198.18.0.0/15 (RFC 2544) whose 198.19.0.0/16 dnstun's TUN uses, and
//     dnstun's own ULA resolver address; New refuses loopback addresses
//     outside them. They exist only inside the two namespaces, which have
//     no route but the veth's prefixes, the optional default routes over
//     the veth, loopback and what the programs started inside add
//     (dnstun's TUN routes); the upstream namespace has no default route.
//     Nothing the lab starts can reach the machine's own network, and the
//     lab sends nothing from the machine's own namespace.
//   - Names are unique: PREFIX-SFX-host and PREFIX-SFX-up with SFX random
//     (Suffix), so parallel runs never collide. Interface names are fixed
//     (HostIf, UpIf): they are created directly inside the namespaces.
//   - Close removes everything, once (sync.Once), in order: processes
//     started with Lab.Start (SIGTERM by PID, SIGKILL after Cmd.StopWait),
//     servers from Lab.Serve, the namespaces, the lab's folder. New removes
//     what it built when it fails.
//   - New returns only when no IPv6 address in either namespace is
//     tentative (duplicate address detection waited out, link-local ones
//     included), so the namespaces' state is settled for snapshots.
//   - Processes are stopped by PID only, never by name; `ip netns exec` and
//     taskset exec the program, so the PID is the program's own. Their
//     combined output is captured through one locked writer.
//   - Every wait has a deadline.
//
// The package is Linux-only: on other systems it is empty.
package lab

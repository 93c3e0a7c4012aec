// SPDX-License-Identifier: MIT

// Package route steers the machine's own port-53 traffic into dnstun's TUN
// ("capture") and gives the machine back when dnstun stops, crashes or is
// killed.
//
// Principle: every change is additive, tagged as dnstun's, and stops
// mattering by itself when the process dies, so a crash leaves the
// machine's own DNS working and cleanup only sweeps harmless leftovers.
//
// Linux: one routing table of dnstun's own (53053) holding only
// "default dev <tun>", and policy rules "iif lo fwmark 0/<mask> ipproto
// udp dport 53 lookup 53053" and the same for tcp (the next priority), for
// IPv4 and IPv6. The rules exempt dnstun's own upstream sockets, UDP and
// TCP, through their SO_MARK; "iif lo" keeps them from matching the
// reverse-path lookup of upstream replies. When the TUN goes away (also
// on SIGKILL) the table is empty and the rules fall through to the main
// table. Optionally an nftables table with the owner flag (held by a
// child "nft -i", so it dies with dnstun) marks the UDP/53 and TCP/53 that
// policy rules miss (sockets pinned with IP_UNICAST_IF) and everything
// coming out of the TUN (for strict rp_filter). Everything is tagged with
// protocol 83 and the table number, so Cleanup can prove what is ours.
//
// macOS: a temporary dynamic-store DNS key published by a long-lived
// scutil child in its own process group (configd removes the key when the
// session ends), whose resolver is the virtual resolver routed into the
// utun. scutil exits 0 whatever its commands did, so the key is read back
// from a second scutil and must hold what was published (with a DnstunPID
// entry naming its owner) before the DNS caches are flushed; a sweep
// removes the key only when that owner is dead. The order of these steps
// lives in darwinsteer.go, OS-neutral and tested with a fake system.
//
// Plans (LinuxPlan, DarwinPlan) are pure functions of a Config rendered as
// text for golden tests and logs; only the appliers in _linux.go and
// _darwin.go touch the system. A journal in the state directory records
// what is applied, with the owner's pid and boot id, before it is applied.
package route

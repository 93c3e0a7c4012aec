// SPDX-License-Identifier: MIT

// Package tlstest gives tests a throw-away PKI and a real DNS server that
// speaks DNS over TLS and DNS over HTTPS: unbound, started as a
// subprocess.
//
// Invariants:
//
//   - Everything is made fresh per call: a CA and its certificates live in
//     the directory the caller gives (a t.TempDir()), are valid for a day,
//     and are trusted nowhere but where the caller passes them (a pool, or
//     SSL_CERT_FILE in a child process).
//   - unbound listens only on the addresses the caller gives: StartLoopback
//     picks free ports on 127.0.0.1; the lab's end-to-end tests give their
//     namespace's addresses and start the configuration written by
//     UnboundConfig.Write inside the namespace themselves.
//   - unbound answers from local-zone and local-data only in the tests'
//     zones; it never needs the network, runs in the foreground without
//     chroot or privilege drop, and keeps its pid file in the directory.
//   - A started unbound is stopped by its own PID (Kill), never by name;
//     every wait has a deadline.
//
// The package uses the standard library only, so that any test may import
// it (miekg/dns is kept to the packages that own it).
package tlstest

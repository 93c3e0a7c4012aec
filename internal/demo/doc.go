// SPDX-License-Identifier: MIT

// Package demo is `dnstun demo`, and the lab the cmd/dnstun end-to-end
// tests share with it: internal/lab's two namespaces with the demo's zone
// served by four in-process upstream servers (internal/dnstest), a way to
// start `dnstun run` in the host namespace and wait until it answers, and
// the demo's steps, each checked for the decision it expects.
//
// Invariants: everything it builds (namespaces, servers, processes, files)
// is removed when Run returns or Lab.Close is called, also on error; it
// sends traffic only inside the namespaces it created; it stops only the
// processes it started. Linux only: elsewhere Run returns an error.
package demo

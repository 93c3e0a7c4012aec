// SPDX-License-Identifier: MIT

// Package engine is dnstun's data path: it reads packets from the TUN,
// decides on each DNS query, answers blocked and local names in place,
// forwards the rest to upstream resolvers and writes their answers back.
//
// Goroutines (all end when Close is called or Run's context ends):
//   - one reader per TUN queue (one, unless the TUN was opened with
//     several: tun.MultiQueue): tun.Read -> step (decode, question,
//     decision, answer in place or forward) -> tun.Write on the same
//     queue, once per batch;
//   - one receiver per upstream socket: reply -> match in the pending table
//     on ID, upstream and question (case-insensitive) -> restore the
//     client's ID -> packet.WrapReply -> tun.Write;
//   - one sweeper: queries whose upstream did not answer in time go to the
//     next upstream, or get SERVFAIL when the overall deadline has passed.
//
// Invariants:
//   - step allocates nothing; the forward path allocates nothing per query
//     in steady state (the pending table is a fixed array, sockets reuse
//     their buffers).
//   - The pending table never grows: when it is full the query is answered
//     REFUSED at once.
//   - A client never hangs on dnstun: every forwarded query ends in the
//     upstream's answer or SERVFAIL, also when the engine is closed.
//   - Per-packet failures are counted (Stats), never logged one by one; the
//     few logs on the data path are rate-limited.
package engine

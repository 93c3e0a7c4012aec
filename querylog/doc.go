// SPDX-License-Identifier: MIT

// Package querylog keeps the most recent queries in a bounded ring of
// fixed-size entries, for the control socket's querylog verb.
//
// Invariants:
//   - The ring never grows: New allocates every slot once; an Entry holds
//     no strings or slices (the name is a [255]byte with a length,
//     addresses are 16-byte arrays) and one pointer, to its process's
//     attrib.Owner, which nobody changes (TestEntryIsFlat), so Add and
//     Record copy values and allocate nothing.
//   - Any number of writers and readers may use the ring at once. A
//     writer takes its sequence number with one atomic add and copies its
//     entry under that slot's own lock, so writers on different cores do
//     not wait for each other's copy (engine's BenchmarkReaders -cpu 2:
//     two TUN readers with the log do 1.17x the work of one, 0.78x under
//     one lock); a reader holds one slot's lock at a time, to copy the raw
//     entry out.
//   - Snapshot allocates on the read side only, converting entries to
//     Record after the lock is released; it returns the most recent n
//     entries, oldest first.
//   - querylog is on the data path (the engine writes it) and imports
//     nothing of the control plane: Record, the form an entry takes on the
//     control protocol, is defined here, and control refers to it
//     (control.QueryLogEntry is an alias). internal/repotest enforces the
//     direction.
package querylog

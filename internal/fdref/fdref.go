// SPDX-License-Identifier: MIT

// Package fdref counts the goroutines using a file descriptor and defers
// its close to the last of them, as internal/poll's fdMutex does for a
// net.Conn: without it, a descriptor closed by one goroutine could be
// reused by a file opened in another while a third still reads from, or
// writes to, the number. The upstream pool's sockets and the TUN's fd
// (both used with raw system calls) keep one each.
package fdref

import "sync/atomic"

// Ref is the count: the top bit is set once the descriptor is closing, the
// rest count the pins. The zero Ref is open with no pin.
type Ref struct{ v atomic.Uint32 }

const closing = 1 << 31

// Pin takes a reference; it fails once the descriptor is closing.
func (r *Ref) Pin() bool {
	for {
		v := r.v.Load()
		if v&closing != 0 {
			return false
		}
		if r.v.CompareAndSwap(v, v+1) {
			return true
		}
	}
}

// Unpin drops a reference and reports whether the caller was the last user
// of a closing descriptor and must now close it.
func (r *Ref) Unpin() (closeNow bool) {
	return r.v.Add(^uint32(0)) == closing
}

// Shut marks the descriptor closing. first is true for the one call that
// did so; closeNow is true when nobody held a pin, and the caller must
// close it now (otherwise the last Unpin does).
func (r *Ref) Shut() (first, closeNow bool) {
	for {
		v := r.v.Load()
		if v&closing != 0 {
			return false, false
		}
		if r.v.CompareAndSwap(v, v|closing) {
			return true, v == 0
		}
	}
}

// Reset sets r, which nobody may be using, to open with no pin, or (open
// false) to closed: a free slot that nobody may pin.
func (r *Ref) Reset(open bool) {
	if open {
		r.v.Store(0)
	} else {
		r.v.Store(closing)
	}
}

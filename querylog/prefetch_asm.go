// SPDX-License-Identifier: MIT

//go:build amd64 || arm64

package querylog

import "unsafe"

// prefetchWrite asks the CPU to bring the cache line at p into its cache,
// to be written, without waiting for it (PREFETCHT0 on amd64, PRFM
// PSTL1KEEP on arm64). A writer calls it for a slot a few entries ahead: at
// hundreds of thousands of queries a second the ring (1.5 MB) is out of
// the core's caches, and the slot lock's atomic instructions otherwise
// wait for each slot's lines to arrive.
//
//go:noescape
func prefetchWrite(p unsafe.Pointer)

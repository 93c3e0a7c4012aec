//go:build amd64 || arm64

package querylog

import "unsafe"

// prefetchWrite asks the CPU to bring the cache line at p into its cache
// for writing, without waiting for it (PREFETCHW on amd64, PRFM PSTL1KEEP on
// arm64). A writer calls it for the next entry's slot: at hundreds of
// thousands of queries a second the ring (1.5 MB) is out of the core's
// caches, and its lock's atomic instructions otherwise wait for each
// slot's lines to arrive.
//
//go:noescape
func prefetchWrite(p unsafe.Pointer)

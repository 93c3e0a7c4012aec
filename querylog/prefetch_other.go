// SPDX-License-Identifier: MIT

//go:build !amd64 && !arm64

package querylog

import "unsafe"

// prefetchWrite is a hint only; without assembly for this architecture it
// does nothing.
func prefetchWrite(unsafe.Pointer) {}

// SPDX-License-Identifier: MIT

package tun

// Batch holds the buffers one reader goroutine reads into and writes from.
// It is allocated once, sized by the device's BatchSize, and then reused: the
// read/decide/write loop allocates nothing.
type Batch struct {
	// Bufs[i] has length BufSize; a packet read into it starts at Headroom.
	Bufs [][]byte
	// Sizes[i] is the length of the packet in Bufs[i] after a Read.
	Sizes []int
	// Out collects the packets to write back, each a Bufs element re-sliced
	// to Headroom+packet length. Reset it with Out = Out[:0].
	Out [][]byte
}

// NewBatch allocates a batch for n packets (n < 1 is treated as 1).
func NewBatch(n int) *Batch {
	if n < 1 {
		n = 1
	}
	b := &Batch{
		Bufs:  make([][]byte, n),
		Sizes: make([]int, n),
		Out:   make([][]byte, 0, n),
	}
	for i := range b.Bufs {
		b.Bufs[i] = make([]byte, BufSize)
	}
	return b
}

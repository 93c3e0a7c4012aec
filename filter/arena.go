// SPDX-License-Identifier: MIT

package filter

import "encoding/binary"

// The arena holds the name records (table.go) in chunks of chunkSize
// bytes. One contiguous slice would regrow by copying, and for a list of a
// million names the old and the new copy (2.25x the arena) would briefly
// coexist, on top of the Set still serving during a reload; chunks grow
// without copying. A record never straddles two chunks: one that does not
// fit in the rest of a chunk starts the next.
//
// A record's unit is its byte offset / unitSize across the chunks: the
// chunk is offset >> chunkBits, the byte in it offset & chunkMask.
const (
	chunkBits = 20
	chunkSize = 1 << chunkBits
	chunkMask = chunkSize - 1

	firstChunkCap = 1 << 10 // the first chunk starts small and grows, for small sets
)

type arena struct {
	chunks [][]byte // len: the bytes used in each chunk
}

func newArena() arena {
	return arena{chunks: [][]byte{make([]byte, firstUnit*unitSize, firstChunkCap)}}
}

// rec returns the bytes of the chunk holding unit u, from u's record on.
func (a *arena) rec(u uint32) []byte {
	o := uint64(u) * unitSize
	return a.chunks[o>>chunkBits][o&chunkMask:]
}

func (a *arena) value(u uint32) uint32 {
	return binary.LittleEndian.Uint32(a.rec(u))
}

func (a *arena) setValue(u, v uint32) {
	binary.LittleEndian.PutUint32(a.rec(u), v)
}

// name returns the name of the record at u.
func (a *arena) name(u uint32) []byte {
	r := a.rec(u)
	return r[5 : 5+int(r[4])]
}

// checkedName is name for a unit that may not start a record (a RuleID
// from outside): nil when it is out of bounds. A unit inside a record may
// pass; the caller checks that the name's lookup leads back to u.
func (a *arena) checkedName(u uint32) []byte {
	o := uint64(u) * unitSize
	if u < firstUnit || o>>chunkBits >= uint64(len(a.chunks)) {
		return nil
	}
	c := a.chunks[o>>chunkBits]
	i := int(o & chunkMask)
	if i+5 > len(c) || c[i+4] == 0 || i+5+int(c[i+4]) > len(c) {
		return nil
	}
	return c[i+5 : i+5+int(c[i+4])]
}

// add appends a record for name with value 0 and returns its unit.
func (a *arena) add(name []byte) uint32 {
	last := len(a.chunks) - 1
	if len(a.chunks[last])+recordSize(len(name)) > chunkSize {
		a.chunks = append(a.chunks, make([]byte, 0, chunkSize))
		last++
	}
	c := a.chunks[last]
	u := uint32((last<<chunkBits + len(c)) / unitSize)
	c = append(c, 0, 0, 0, 0, byte(len(name)))
	c = append(c, name...)
	for len(c)%unitSize != 0 {
		c = append(c, 0)
	}
	a.chunks[last] = c
	return u
}

// end is the unit just past the last record: every unit is below it.
func (a *arena) end() uint32 {
	last := len(a.chunks) - 1
	return uint32((last<<chunkBits + len(a.chunks[last])) / unitSize)
}

// limit bounds the units the arena can reach before it needs another chunk.
func (a *arena) limit() uint32 {
	return uint32(len(a.chunks) << chunkBits / unitSize)
}

// units iterates the records in the order they were added.
func (a *arena) units() func(func(uint32) bool) {
	return func(yield func(uint32) bool) {
		for ci, c := range a.chunks {
			o := 0
			if ci == 0 {
				o = firstUnit * unitSize
			}
			for o < len(c) {
				if !yield(uint32((ci<<chunkBits + o) / unitSize)) {
					return
				}
				o += recordSize(int(c[o+4]))
			}
		}
	}
}

// mark and truncate let a failed list take its records back.
type arenaMark struct{ chunks, last int }

func (a *arena) mark() arenaMark {
	return arenaMark{len(a.chunks), len(a.chunks[len(a.chunks)-1])}
}

func (a *arena) truncate(m arenaMark) {
	a.chunks = a.chunks[:m.chunks]
	a.chunks[m.chunks-1] = a.chunks[m.chunks-1][:m.last]
}

// frozen returns a view of the arena that later adds do not change (they
// append past its chunks' lengths, or to new chunks); values and
// truncation still would: see Builder.thaw.
func (a *arena) frozen() arena {
	cs := make([][]byte, len(a.chunks))
	for i, c := range a.chunks {
		cs[i] = c[:len(c):len(c)]
	}
	return arena{chunks: cs}
}

// clone copies the arena; the copies keep their chunks' capacities.
func (a *arena) clone() arena {
	cs := make([][]byte, len(a.chunks))
	for i, c := range a.chunks {
		cs[i] = append(make([]byte, 0, cap(c)), c...)
	}
	return arena{chunks: cs}
}

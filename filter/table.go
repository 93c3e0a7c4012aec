// SPDX-License-Identifier: MIT

package filter

import (
	"encoding/binary"
	"math/bits"
)

// The name index.
//
// Every distinct rule name is one record in a byte arena:
//
//	[value uint32 LE][len uint8][name bytes][pad to a multiple of 2]
//
// A record is addressed by its "unit", its byte offset / 2 (arena.go). The Set's hash
// table is a []uint32 of open-addressed, linearly probed slots, sized
// 1.5 x the number of names (Lemire's multiply-shift maps a hash onto it);
// a slot holds the unit in its low unitBits bits and the top bits of the
// name's hash above them (a tag), so a probe only touches the arena when
// the tag matches. 0 is an empty slot (units start at 2).
//
// Hashes are built a label at a time, right to left: the hash of a suffix
// is labelHash(hash of its parent suffix, its first label), and the top
// label starts from hashSeed. So one pass over a query name yields the
// hash of every suffix that starts at a label boundary, at the cost of one
// 64x64->128 multiply per label (per 8 bytes of a longer label).
//
// The value of a record says what rules the name has:
//
//	00 e ffff llll...  a single "simple" block rule: e = exact (else the
//	                   name and its subdomains), f = its textual form
//	                   (forms), l = its line (25 bits); its list is the list
//	                   whose arena region holds the record, its RuleID is
//	                   simpleID | unit. Its text is rebuilt from the form
//	                   and the name: no per-rule memory at all.
//	01 r...            one complex rule, index r into Set.rules
//	10 n...            several rules: node n (Set.nodeStart, Set.refs)
const (
	hashSeed = 0xcbf29ce484222325
	hashK1   = 0xa0761d6478bd642f
	hashK2   = 0xe7037ed1a0b428db

	vKindMask  = 3 << 30
	vSimple    = 0 << 30
	vRule      = 1 << 30
	vNode      = 2 << 30
	vIndexMask = 1<<30 - 1
	vExact     = 1 << 29
	vFormShift = 25
	vFormMask  = 0xf
	vLineMask  = 1<<25 - 1

	// simpleID marks a RuleID that is a record unit.
	simpleID = 1 << 31

	firstUnit = 2 // arena[0:4] is padding, so slot 0 means empty
	unitSize  = 2 // records are 2-byte aligned: 0.5 byte of padding per name on average
	maxName   = 253
)

// form is a way of writing a simple block rule: the text is prefix + name + suffix.
type form struct {
	prefix, suffix string
	exact          bool
}

// forms are the textual forms a simple rule may have. Index 15 is unused.
var forms = [...]form{
	{"", "", false},
	{"||", "^", false},
	{"||", "", false},
	{"||", "^|", false},
	{"|", "^", true},
	{"|", "", true},
	{"|", "^|", true},
	{"0.0.0.0 ", "", true},
	{"127.0.0.1 ", "", true},
	{"0.0.0.0\t", "", true},
	{"127.0.0.1\t", "", true},
	{":: ", "", true},
	{"::1 ", "", true},
}

// matchForm returns the form whose text is exactly text for name, or -1.
func matchForm(text, name []byte, exact bool) int {
	if len(text) < len(name) {
		return -1
	}
	for i, f := range forms {
		if f.exact != exact || len(f.prefix)+len(name)+len(f.suffix) != len(text) {
			continue
		}
		if string(text[:len(f.prefix)]) == f.prefix && string(text[len(f.prefix):len(f.prefix)+len(name)]) == string(name) &&
			string(text[len(f.prefix)+len(name):]) == f.suffix {
			return i
		}
	}
	return -1
}

func mum(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

// labelHash extends h, the hash of the suffix after the label
// name[start:end], to the suffix that starts with that label: one multiply
// per 8 bytes of the label, the last (partial) word masked. It reads whole
// 8-byte words of name around the label, so it needs the whole name, not
// just the label. (suffixHashes inlines it; a test holds the two equal.)
func labelHash(h uint64, name []byte, start, end int) uint64 {
	p := start
	for end-p > 8 {
		h = mum(h^binary.LittleEndian.Uint64(name[p:]), hashK1)
		p += 8
	}
	var w uint64
	if p+8 <= len(name) {
		w = binary.LittleEndian.Uint64(name[p:]) & (1<<(uint(end-p)*8) - 1)
	} else {
		w = tailWord(name, p, end)
	}
	return mum(h^w^hashK2, hashK1^uint64(end-start))
}

// tailWord returns the at most 8 bytes name[p:end] as a little-endian
// word, for words that end past name's last 8 bytes.
func tailWord(name []byte, p, end int) uint64 {
	if len(name) >= 8 {
		return binary.LittleEndian.Uint64(name[len(name)-8:]) >> (64 - uint(len(name)-p)*8) & (1<<(uint(end-p)*8) - 1)
	}
	var w uint64
	for i := end - 1; i >= p; i-- {
		w = w<<8 | uint64(name[i])
	}
	return w
}

// nameHash hashes name as the suffix walk of Decide does.
func nameHash(name []byte) uint64 {
	h := uint64(hashSeed)
	end := len(name)
	for i := len(name) - 1; i >= -1; i-- {
		if i >= 0 && name[i] != '.' {
			continue
		}
		h = labelHash(h, name, i+1, end)
		end = i
	}
	return h
}

// recordSize is the arena size of a record for a name of n bytes.
func recordSize(n int) int { return (5 + n + unitSize - 1) &^ (unitSize - 1) }

// table is the Set's frozen hash index.
type table struct {
	slots    []uint32
	unitBits uint
	unitMask uint32
	arena    arena
	// bloom holds a bit for each stored name's hash (8 bits per name):
	// most suffixes of a query name are in no list, and a clear bit
	// answers "absent" from a structure a sixth of the table's size, which
	// stays in cache where the table does not.
	bloom []uint64
}

// newTable indexes the n records that units yields: 1.5 slots a name.
func newTable(arena arena, n int, units func(func(uint32) bool)) table {
	t := table{arena: arena, slots: make([]uint32, n+n/2+8), bloom: make([]uint64, bloomWords(n))}
	t.setUnitBits(uint(bits.Len32(arena.end())))
	for u := range units {
		t.insert(nameHash(arena.name(u)), u)
	}
	return t
}

func (t *table) setUnitBits(n uint) {
	t.unitBits = n
	t.unitMask = uint32(1)<<n - 1
	if n >= 32 {
		t.unitMask = ^uint32(0)
	}
}

// insert adds unit u of hash h; the table must have a free slot.
func (t *table) insert(h uint64, u uint32) {
	i := t.home(h)
	for t.slots[i] != 0 {
		i++
		if i == uint64(len(t.slots)) {
			i = 0
		}
	}
	t.slots[i] = t.tag(h) | u
	t.bloomSet(h)
}

// bloomWords sizes the filter at 8 bits per name: about 12% of absent
// names pass it.
func bloomWords(n int) int {
	return max(1, n/8)
}

// bloomIndex maps h onto the filter's bits (Lemire's multiply-shift, on
// hash bits the table's home slot does not use).
func (t *table) bloomIndex(h uint64) uint64 {
	return (uint64(uint32(h>>24)) * uint64(len(t.bloom)*64)) >> 32
}

func (t *table) bloomSet(h uint64) {
	b := t.bloomIndex(h)
	t.bloom[b>>6] |= 1 << (b & 63)
}

func (t *table) bloomHas(h uint64) bool {
	return t.bloomBit(h) != 0
}

// bloomBit is 1 if h may be in the table, 0 if it is not (branch-free).
func (t *table) bloomBit(h uint64) uint32 {
	b := t.bloomIndex(h)
	return uint32(t.bloom[b>>6]>>(b&63)) & 1
}

// home is the slot where the probe for h starts.
func (t *table) home(h uint64) uint64 {
	return (uint64(uint32(h)) * uint64(len(t.slots))) >> 32
}

func (t *table) tag(h uint64) uint32 {
	hi := uint32(h >> 32)
	return hi >> t.unitBits << t.unitBits
}

// lookup returns the unit of name's record (h = nameHash(name)), or 0.
func (t *table) lookup(name []byte, h uint64) uint32 {
	if len(t.slots) == 0 || !t.bloomHas(h) {
		return 0
	}
	return t.probe(name, h)
}

// probe is lookup past the bloom filter.
func (t *table) probe(name []byte, h uint64) uint32 {
	n := uint64(len(t.slots))
	i := t.home(h)
	tag := t.tag(h)
	for {
		v := t.slots[i]
		if v == 0 {
			return 0
		}
		if v&^t.unitMask == tag {
			u := v & t.unitMask
			if r := t.arena.rec(u); int(r[4]) == len(name) && string(r[5:5+len(name)]) == string(name) {
				return u
			}
		}
		i++
		if i == n {
			i = 0
		}
	}
}

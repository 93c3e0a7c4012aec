// SPDX-License-Identifier: MIT

package e2e

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
)

// NameSeed is the fixed seed of the generated block list: the same seed
// gives the same names on every machine, so the list is generated, never
// committed.
const NameSeed = 0x646e7374756e // "dnstun"

// Sizes of the query mixes: blocked names sampled from the list, and
// forwarded names that no list blocks.
const (
	blockedQueries = 10_000
	forwardQueries = 10_000
)

// QueryMixes returns the blocked and forwarded query names for a list of
// listSize names: what the benchmark sends, and what bench/MACOS.md uses.
func QueryMixes(listSize int) (blocked, forward []string) {
	return BlockedSample(BlockNames(listSize), listSize, blockedQueries), AllowedNames(forwardQueries)
}

var tlds = []string{"com", "net", "org", "io", "info", "biz", "co", "xyz", "top", "site"}

const alnum = "abcdefghijklmnopqrstuvwxyz0123456789"

// BlockNames returns the first n names of the deterministic block list.
// The names are unique (each carries its index in base 36), have two or
// three labels under one of ten real TLDs, and none is a suffix of another
// at a label boundary, so a list of the first n blocks exactly n subtrees.
// BlockNames(n) is a prefix of BlockNames(m) for n < m.
func BlockNames(n int) []string {
	rng := rand.New(rand.NewPCG(NameSeed, NameSeed^0x9e3779b97f4a7c15))
	out := make([]string, n)
	buf := make([]byte, 0, 64)
	word := func(lo, hi int) {
		for range lo + rng.IntN(hi-lo+1) {
			buf = append(buf, alnum[rng.IntN(26)]) // letters only
		}
	}
	for i := range out {
		buf = buf[:0]
		if rng.IntN(3) == 0 { // a host label under the tracker's domain
			word(2, 8)
			buf = append(buf, '.')
		}
		word(4, 10)
		buf = append(buf, '-')
		buf = strconv.AppendInt(buf, int64(i), 36)
		buf = append(buf, '.')
		buf = append(buf, tlds[rng.IntN(len(tlds))]...)
		out[i] = string(buf)
	}
	return out
}

// forwardZone holds the forwarded-name mix (AllowedNames).
const forwardZone = "allowed.example"

// AllowedNames returns n names that no generated list blocks: the TLD
// "example" (RFC 2606) is never used by BlockNames.
func AllowedNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = "f" + strconv.Itoa(i) + "." + forwardZone
	}
	return out
}

// BlockedSample returns k names spread evenly over the first n block
// names: the blocked-query mix, the same whatever list size is loaded.
func BlockedSample(names []string, n, k int) []string {
	k = min(k, n)
	out := make([]string, k)
	for i := range out {
		out[i] = names[i*n/k]
	}
	return out
}

// Formats of the block list, one per system's native syntax.
type listFormat int

const (
	fmtPlain   listFormat = iota // "name" per line: dnstun, dnsdist (read by Lua)
	fmtDnsmasq                   // "address=/name/": NXDOMAIN for name and below
	fmtUnbound                   // local-zone: "name." always_nxdomain
)

// writeList writes names to path in format f.
func writeList(path string, names []string, f listFormat) error {
	fh, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(fh, 1<<20)
	for _, n := range names {
		switch f {
		case fmtPlain:
			w.WriteString(n)
			w.WriteByte('\n')
		case fmtDnsmasq:
			fmt.Fprintf(w, "address=/%s/\n", n)
		case fmtUnbound:
			fmt.Fprintf(w, "local-zone: \"%s.\" always_nxdomain\n", n)
		}
	}
	if err := w.Flush(); err != nil {
		fh.Close()
		return err
	}
	return fh.Close()
}

// WriteQueries writes a query file ("name TYPE" per line, the format of
// dnsperf and of dnstun bench) with every name queried for type A.
func WriteQueries(w io.Writer, names []string) error {
	bw := bufio.NewWriter(w)
	for _, n := range names {
		bw.WriteString(n)
		bw.WriteString(" A\n")
	}
	return bw.Flush()
}

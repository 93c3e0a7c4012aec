// SPDX-License-Identifier: MIT

package filter

import (
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
)

// Build compiles the rules parsed so far into an immutable Set. The Builder
// stays usable (more lists may be added and Build called again); the Set
// shares no memory with it.
//
// Layout: every name is one key of a single map, and all keys are slices of
// one arena string (one allocation instead of one per name). A name carrying
// just one block rule maps straight to its tagged RuleID; only names with
// exceptions, answers or several rules get a node.
func (b *Builder) Build() *Set {
	s := &Set{
		index: make(map[string]uint32, len(b.index)),
		rules: slices.Clone(b.rules),
		lists: slices.Clone(b.lists),
		text:  string(b.text),
	}
	size := 0
	nAddrs, nNodes := 0, 0
	for i, name := range b.names {
		size += len(name)
		if needsNode(&b.entries[i]) {
			nNodes++
			nAddrs += len(b.answers[int32(i)])
		}
	}
	var arena strings.Builder
	arena.Grow(size)
	s.nodes = make([]node, 0, nNodes)
	s.addrs = make([]netip.Addr, 0, nAddrs)
	for _, name := range b.names {
		arena.WriteString(name)
	}
	all := arena.String()
	off := 0
	for ei, name := range b.names {
		key := all[off : off+len(name)]
		off += len(name)
		n := b.entries[ei]
		switch {
		case !needsNode(&n) && n.suffix != 0:
			s.index[key] = tagSuffix<<tagShift | uint32(n.suffix)
		case !needsNode(&n) && n.exact != 0:
			s.index[key] = tagExact<<tagShift | uint32(n.exact)
		default:
			if n.allowExact != 0 || n.allowSuffix != 0 {
				s.hasAllow = true
			}
			n.addrOff = uint32(len(s.addrs))
			addrs := b.answers[int32(ei)]
			n.addrLen = uint32(len(addrs))
			s.addrs = append(s.addrs, addrs...)
			s.index[key] = tagNode<<tagShift | uint32(len(s.nodes))
			s.nodes = append(s.nodes, n)
		}
	}
	return s
}

// needsNode reports whether n holds more than a single block rule.
func needsNode(n *node) bool {
	if n.allowExact != 0 || n.allowSuffix != 0 || n.answer != 0 {
		return true
	}
	return n.exact != 0 && n.suffix != 0
}

// LoadFiles parses each file into one Builder and builds the Set; it is the
// convenience `dnstun run` uses. Warnings of all files are returned in order.
// An error names the file and wraps the cause (fs errors, ErrNotAList).
func LoadFiles(paths ...string) (*Set, []ListWarning, error) {
	b := NewBuilder()
	var warnings []ListWarning
	collect := func(w ListWarning) { warnings = append(warnings, w) }
	for _, path := range paths {
		if err := loadFile(b, path, collect); err != nil {
			return nil, warnings, err
		}
	}
	return b.Build(), warnings, nil
}

func loadFile(b *Builder, path string, warn func(ListWarning)) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("filter: load list %s: %w", path, err)
	}
	defer f.Close()
	// ParseList's errors already name the list (here: the path).
	_, err = b.ParseList(f, path, warn)
	return err
}

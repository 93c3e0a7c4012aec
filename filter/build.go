// SPDX-License-Identifier: MIT

package filter

import (
	"fmt"
	"math/bits"
	"net/netip"
	"os"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"
)

// listInfo is one list of a Builder or Set.
type listInfo struct {
	opts      ListOptions
	startUnit uint32 // first arena unit of the names this list introduced
}

// Builder collects rules from lists and compiles them into a Set. It is not
// safe for concurrent use; Build may be called more than once.
//
// The Builder writes names straight into the arena and the name index the
// Set uses (arena.go, table.go); when the index was sized right (ParseList
// sizes it from a sample of the list) Build hands both over, so peak memory
// during a build is about the steady state of the Set (see doc.go).
type Builder struct {
	idx    table // the name index being built, over the Builder's arena (idx.arena)
	names  int
	nodes  [][]uint32 // rule indexes per node
	rules  []rule
	exts   []ruleExt
	text   []byte
	addrs  []netip.Addr
	txts   [][]byte
	lists  []listInfo
	simple int // simple rules (not in rules)
	ptrs   int // reverse records of hosts lines (in rules, not counted by Len)

	patterns   []uint32        // rule indexes
	unfiltered int             // pattern rules without a literal
	patKeys    map[string]bool // pattern and IP rules seen (duplicates)
	ips        []uint32        // rule indexes

	noBypass bool
	frozen   bool // the arena is shared with a built Set
}

// NewBuilder returns an empty Builder. The built-in bypass signals are on.
func NewBuilder() *Builder {
	b := &Builder{idx: table{arena: newArena()}, exts: make([]ruleExt, 1)}
	b.reserve(0, 1<<16)
	return b
}

// SetBypassSignals switches the built-in answers (doc.go, "Built-in
// signals") on or off for the Sets built afterwards. They are on by default.
func (b *Builder) SetBypassSignals(on bool) { b.noBypass = !on }

// thaw makes the Builder's arena its own again after Build shared it.
func (b *Builder) thaw() {
	if b.frozen {
		b.idx.arena = b.idx.arena.clone()
		b.idx.slots = slices.Clone(b.idx.slots)
		b.idx.bloom = slices.Clone(b.idx.bloom)
		b.frozen = false
	}
}

type snapshot struct {
	arena                                                       arenaMark
	rules, exts, text, addrs, txts, nodes, patterns, ips, lists int
	simple, names, unfiltered, ptrs                             int
	values                                                      []valUndo
	nodeLens                                                    []valUndo
	patKeys                                                     []string
}

type valUndo struct{ at, old uint32 }

func (b *Builder) snapshot() snapshot {
	return snapshot{arena: b.idx.arena.mark(), rules: len(b.rules), exts: len(b.exts), text: len(b.text), addrs: len(b.addrs),
		txts: len(b.txts), nodes: len(b.nodes), patterns: len(b.patterns), ips: len(b.ips), lists: len(b.lists),
		simple: b.simple, names: b.names, unfiltered: b.unfiltered, ptrs: b.ptrs}
}

// rollback undoes everything a failed list added.
func (b *Builder) rollback(s *snapshot) {
	for i := len(s.values) - 1; i >= 0; i-- {
		b.idx.arena.setValue(s.values[i].at, s.values[i].old)
	}
	for i := len(s.nodeLens) - 1; i >= 0; i-- {
		n := s.nodeLens[i]
		b.nodes[n.at] = b.nodes[n.at][:n.old]
	}
	b.idx.arena.truncate(s.arena)
	b.rules, b.exts, b.text = b.rules[:s.rules], b.exts[:s.exts], b.text[:s.text]
	b.addrs, b.txts, b.nodes = b.addrs[:s.addrs], b.txts[:s.txts], b.nodes[:s.nodes]
	b.patterns, b.ips, b.lists = b.patterns[:s.patterns], b.ips[:s.ips], b.lists[:s.lists]
	b.simple, b.names, b.unfiltered, b.ptrs = s.simple, s.names, s.unfiltered, s.ptrs
	for _, k := range s.patKeys {
		delete(b.patKeys, k)
	}
	b.rehash(len(b.idx.slots), b.idx.unitBits, len(b.idx.bloom))
}

// reserve sizes the index for names (1.5 slots a name, as newTable does,
// so that Build can hand it to the Set as it is), with tags that leave
// room for units below maxUnit.
func (b *Builder) reserve(names int, maxUnit uint32) {
	n := names + names/2 + 8
	ub := max(uint(bits.Len32(maxUnit)), b.idx.unitBits)
	if n > len(b.idx.slots) || ub != b.idx.unitBits {
		b.rehash(max(n, len(b.idx.slots)), ub, bloomWords(max(names, b.names)))
	}
}

// rehash rebuilds the index from the arena, with n slots, unitBits bits of
// unit and a bloom filter of the given words.
func (b *Builder) rehash(n int, unitBits uint, bloom int) {
	b.idx.setUnitBits(unitBits)
	if len(b.idx.slots) == n {
		clear(b.idx.slots)
	} else {
		b.idx.slots = make([]uint32, n)
	}
	if len(b.idx.bloom) == bloom {
		clear(b.idx.bloom)
	} else {
		b.idx.bloom = make([]uint64, bloom)
	}
	for u := range b.idx.arena.units() {
		b.idx.insert(nameHash(b.idx.arena.name(u)), u)
	}
}

// findOrAdd returns the unit of name's record, adding one (value 0) if new.
func (b *Builder) findOrAdd(name []byte) (uint32, bool) {
	h := nameHash(name)
	if u := b.idx.lookup(name, h); u != 0 {
		return u, false
	}
	if 4*(b.names+1) > 3*len(b.idx.slots) {
		b.reserve(2*(b.names+1), 0)
	}
	u := b.idx.arena.add(name)
	if u>>b.idx.unitBits != 0 {
		// The arena outgrew the unit bits: fewer tag bits from now on.
		b.rehash(len(b.idx.slots), uint(bits.Len32(u))+1, len(b.idx.bloom)) // this indexes the new record too
	} else {
		b.idx.insert(h, u)
	}
	b.names++
	return u, true
}

func (b *Builder) addText(t []byte) (uint32, uint32) {
	off := len(b.text)
	b.text = append(b.text, t...)
	return uint32(off), uint32(len(t))
}

// listOfUnit returns the list whose region holds unit.
func listOfUnit(lists []listInfo, unit uint32) uint32 {
	lo, hi := 0, len(lists) // the answer is the last list with startUnit <= unit
	for hi-lo > 1 {
		m := int(uint(lo+hi) >> 1)
		if lists[m].startUnit <= unit {
			lo = m
		} else {
			hi = m
		}
	}
	return uint32(lo)
}

func (p *listParser) logValue(u, old uint32) {
	if u < p.b.lists[p.list].startUnit {
		p.snap.values = append(p.snap.values, valUndo{u, old})
	}
}

// promote turns the simple rule of record u into a complex rule.
func (b *Builder) promote(u, v uint32) uint32 {
	f := v >> vFormShift & vFormMask
	r := rule{list: listOfUnit(b.lists, u), line: v & vLineMask, form: uint8(f), textOff: u, kind: rkBlock, flags: formFlags(int(f), v&vExact != 0)}
	b.rules = append(b.rules, r)
	b.simple--
	return uint32(len(b.rules) - 1)
}

// formFlags returns the flags of a simple rule of form f: hosts lines and
// plain domains are immune to $badfilter (AdGuard's KB: $badfilter does
// not apply to hosts-style rules, and AdGuard reads domain lines as such).
func formFlags(f int, exact bool) uint8 {
	var fl uint8
	if exact {
		fl |= fExact
	}
	if f == 0 || f >= 7 {
		fl |= fNoBadfilter
	}
	return fl
}

// attachSimple adds a simple block rule for name; false if it is a duplicate.
func (b *Builder) attachSimple(p *listParser, name []byte, exact bool, f, line int) bool {
	u, isNew := b.findOrAdd(name)
	if isNew && line <= vLineMask {
		v := uint32(vSimple) | uint32(f)<<vFormShift | uint32(line)
		if exact {
			v |= vExact
		}
		b.idx.arena.setValue(u, v)
		b.simple++
		return true
	}
	r := rule{list: p.list, line: uint32(line), form: uint8(f), textOff: u, kind: rkBlock, flags: formFlags(f, exact)}
	ri := uint32(len(b.rules))
	b.rules = append(b.rules, r)
	if isNew {
		b.idx.arena.setValue(u, vRule|ri)
		return true
	}
	if b.attachAt(p, u, ri) {
		return true
	}
	b.rules = b.rules[:ri]
	return false
}

// attach adds complex rule ri to name; false if it is a duplicate.
func (b *Builder) attach(p *listParser, name []byte, ri uint32) bool {
	u, isNew := b.findOrAdd(name)
	if isNew {
		b.idx.arena.setValue(u, vRule|ri)
		return true
	}
	return b.attachAt(p, u, ri)
}

func (b *Builder) attachAt(p *listParser, u, ri uint32) bool {
	v := b.idx.arena.value(u)
	switch v & vKindMask {
	case vSimple:
		if b.rules[ri].kind == rkBlock && b.rules[ri].ext == 0 && b.rules[ri].flags&fExact == uint32ToFlag(v&vExact) {
			return false
		}
		r0 := b.promote(u, v)
		p.logValue(u, v)
		b.idx.arena.setValue(u, vNode|uint32(len(b.nodes)))
		b.nodes = append(b.nodes, []uint32{r0, ri})
	case vRule:
		r0 := v & vIndexMask
		if b.sameRule(r0, ri) {
			return false
		}
		p.logValue(u, v)
		b.idx.arena.setValue(u, vNode|uint32(len(b.nodes)))
		b.nodes = append(b.nodes, []uint32{r0, ri})
	default:
		n := v & vIndexMask
		for _, r0 := range b.nodes[n] {
			if b.sameRule(r0, ri) {
				return false
			}
		}
		if int(n) < p.snap.nodes {
			p.snap.nodeLens = append(p.snap.nodeLens, valUndo{n, uint32(len(b.nodes[n]))})
		}
		b.nodes[n] = append(b.nodes[n], ri)
	}
	return true
}

func uint32ToFlag(exact uint32) uint8 {
	if exact != 0 {
		return fExact
	}
	return 0
}

// sameRule reports whether rule b2 adds nothing to a name that has a.
func (b *Builder) sameRule(a, b2 uint32) bool {
	x, y := &b.rules[a], &b.rules[b2]
	if x.kind != y.kind || x.flags != y.flags || x.ext != 0 || y.ext != 0 {
		return false
	}
	if x.kind == rkHosts {
		return x.addrLen == 1 && y.addrLen == 1 && b.addrs[x.addrOff] == b.addrs[y.addrOff]
	}
	return true
}

// dropUnused removes complex rule ri again when no name took it.
func (b *Builder) dropUnused(ri int64, used bool) {
	if ri >= 0 && !used && int(ri) == len(b.rules)-1 {
		r := b.rules[ri]
		if r.addrLen > 0 && int(r.addrOff)+int(r.addrLen) == len(b.addrs) {
			b.addrs = b.addrs[:r.addrOff]
		}
		if r.ext != 0 && int(r.ext) == len(b.exts)-1 {
			b.exts = b.exts[:r.ext]
		}
		b.rules = b.rules[:ri]
	}
}

// Regex limits (doc.go, "Regular expressions").
const (
	maxRegexLen      = 1024 // bytes of the expression
	maxRegexInsts    = 2000 // instructions of the compiled program
	maxUnfiltered    = 64   // pattern rules without a literal, per Builder
	minLiteral       = 3    // bytes of the prefilter literal
	maxRegexPerQuery = 64   // regex executions per Decide
)

// patternRule adds a /regex/ or a wildcard rule.
func (p *listParser) patternRule(lineNo int, t []byte, allow bool, m *mods, pat []byte, isRegex bool) {
	if !p.newPatKey(allow, m, pat) {
		p.stats.Duplicates++
		return
	}
	var src, lit string
	if isRegex {
		src = string(pat[1 : len(pat)-1])
		if len(src) > maxRegexLen {
			p.warn(lineNo, t, fmt.Sprintf("regex longer than %d bytes: too slow", maxRegexLen), Unsupported)
			return
		}
		re, err := syntax.Parse(src, syntax.Perl)
		if err != nil {
			p.warn(lineNo, t, "bad regex: "+err.Error(), Malformed)
			return
		}
		re = re.Simplify()
		prog, err := syntax.Compile(re)
		if err != nil {
			p.warn(lineNo, t, "bad regex: "+err.Error(), Malformed)
			return
		}
		if len(prog.Inst) > maxRegexInsts {
			p.warn(lineNo, t, fmt.Sprintf("regex compiles to %d instructions (limit %d): too slow", len(prog.Inst), maxRegexInsts), Unsupported)
			return
		}
		lit = requiredLiteral(re)
	} else {
		src, lit = globRegex(pat)
	}
	if len(lit) < minLiteral {
		lit = ""
		if p.b.unfiltered >= maxUnfiltered {
			p.warn(lineNo, t, fmt.Sprintf("pattern without a literal of %d+ bytes: too slow (limit %d such rules)", minLiteral, maxUnfiltered), Unsupported)
			return
		}
	}
	re, err := regexp.Compile(src)
	if err != nil {
		p.warn(lineNo, t, "bad pattern: "+err.Error(), Malformed)
		return
	}
	r := p.newRule(lineNo, t, allow, m)
	if r.ext == 0 {
		r.ext = uint32(len(p.b.exts))
		p.b.exts = append(p.b.exts, ruleExt{})
	}
	e := &p.b.exts[r.ext]
	e.re, e.lit = re, lit
	e.pattern = strings.ToLower(string(pat))
	r.flags |= fPattern
	if lit == "" {
		p.b.unfiltered++
	}
	p.b.patterns = append(p.b.patterns, uint32(len(p.b.rules)))
	p.b.rules = append(p.b.rules, r)
	p.countKind(&r)
	p.stats.Patterns++
	p.stats.Rules++
	p.accepted++
}

// globRegex translates an adblock pattern to a regular expression over a
// host name, and returns its longest literal. "||" anchors at a label
// start, "|" at the start or end, "^" is the end of the name (the only
// separator a host name can hold), "*" is any run of characters.
func globRegex(pat []byte) (string, string) {
	var sb strings.Builder
	p := strings.ToLower(string(pat))
	switch {
	case strings.HasPrefix(p, "||"):
		sb.WriteString(`(?:^|\.)`)
		p = p[2:]
	case strings.HasPrefix(p, "|"):
		sb.WriteString(`^`)
		p = p[1:]
	}
	endAnchor := false
	if strings.HasSuffix(p, "|") {
		p, endAnchor = p[:len(p)-1], true
	}
	lit, best := "", ""
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch c {
		case '*':
			sb.WriteString(`.*`)
		case '^':
			sb.WriteString(`$`)
		default:
			sb.WriteString(regexp.QuoteMeta(string(c)))
			lit += string(c)
			if len(lit) > len(best) {
				best = lit
			}
			continue
		}
		lit = ""
	}
	if endAnchor {
		sb.WriteString(`$`)
	}
	return sb.String(), best
}

// requiredLiteral returns the longest literal that every match of re
// contains, lower-cased, or "".
func requiredLiteral(re *syntax.Regexp) string {
	switch re.Op {
	case syntax.OpLiteral:
		if re.Flags&syntax.FoldCase != 0 {
			return strings.ToLower(string(re.Rune))
		}
		s := string(re.Rune)
		if s != strings.ToLower(s) {
			return "" // cannot match a lower-case name anyway; no filter
		}
		return s
	case syntax.OpCapture, syntax.OpPlus:
		return requiredLiteral(re.Sub[0])
	case syntax.OpConcat:
		best := ""
		for _, s := range re.Sub {
			if l := requiredLiteral(s); len(l) > len(best) {
				best = l
			}
		}
		return best
	}
	return ""
}

// ipRule adds a response IP/CIDR rule.
func (p *listParser) ipRule(lineNo int, t []byte, pf netip.Prefix, allow bool, m *mods) {
	if m != nil && (m.rewrite || m.types != nil || m.notTypes != nil || m.denyallow != nil || m.procs != nil || m.notProcs != nil) {
		p.warn(lineNo, t, "modifier unsupported on IP rules (they take only $important, $client and $badfilter)", Unsupported)
		return
	}
	if !p.newPatKey(allow, m, []byte(pf.String())) {
		p.stats.Duplicates++
		return
	}
	r := p.newRule(lineNo, t, allow, m)
	if r.ext == 0 {
		r.ext = uint32(len(p.b.exts))
		p.b.exts = append(p.b.exts, ruleExt{})
	}
	p.b.exts[r.ext].prefix = pf
	p.b.exts[r.ext].pattern = pf.String()
	r.flags |= fIP
	p.b.ips = append(p.b.ips, uint32(len(p.b.rules)))
	p.b.rules = append(p.b.rules, r)
	p.countKind(&r)
	p.stats.IPRules++
	p.stats.Rules++
	p.accepted++
}

// newPatKey records a pattern or IP rule; false if the same rule was
// already added.
func (p *listParser) newPatKey(allow bool, m *mods, pat []byte) bool {
	k := strings.ToLower(string(pat))
	if allow {
		k = "@@" + k
	}
	if m != nil {
		k += "$" + m.key
		if m.badfilter {
			k += ",badfilter"
		}
	}
	if p.b.patKeys == nil {
		p.b.patKeys = map[string]bool{}
	}
	if p.b.patKeys[k] {
		return false
	}
	p.b.patKeys[k] = true
	p.snap.patKeys = append(p.snap.patKeys, k)
	return true
}

// Build compiles the rules parsed so far into an immutable Set. The Builder
// stays usable (more lists may be added and Build called again); the Set
// shares only memory the Builder no longer changes: the arena and the
// name index are shared until the next ParseList, which then copies them.
func (b *Builder) Build() *Set {
	b.frozen = true
	s := &Set{
		rules:  slices.Clone(b.rules),
		exts:   b.exts[:len(b.exts):len(b.exts)],
		text:   b.text[:len(b.text):len(b.text)],
		lists:  slices.Clone(b.lists),
		simple: b.simple,
		ptrs:   b.ptrs,
		bypass: !b.noBypass,
	}
	arena := b.idx.arena.frozen()
	if len(b.idx.slots) <= 2*b.names+8 && len(b.idx.bloom) >= bloomWords(b.names) {
		// The Builder's index is the right size (its load is between 1/2
		// and 3/4): the Set takes it, and thaw copies it if the Builder
		// goes on. No second index coexists with the first.
		s.tab = b.idx
		s.tab.arena = arena
	} else {
		s.tab = newTable(arena, b.names, arena.units())
	}
	// Node rule lists, flattened; the answer addresses and TXT strings of
	// a node's rules are laid out back to back so that consecutive
	// matching rewrites answer with one slice.
	nRefs, nAddrs, nTxts := 0, len(b.addrs), len(b.txts)
	for _, n := range b.nodes {
		nRefs += len(n)
		for _, ri := range n {
			nAddrs += int(b.rules[ri].addrLen)
			nTxts += int(b.rules[ri].txtLen)
		}
	}
	s.addrs = make([]netip.Addr, len(b.addrs), nAddrs)
	copy(s.addrs, b.addrs)
	s.txts = make([][]byte, len(b.txts), nTxts)
	copy(s.txts, b.txts)
	s.nodeStart = make([]uint32, 0, len(b.nodes)+1)
	s.refs = make([]ref, 0, nRefs)
	for _, n := range b.nodes {
		s.nodeStart = append(s.nodeStart, uint32(len(s.refs)))
		// A name's rules of one class side by side, in list order within
		// the class: consecutive rewrites (or hosts lines) answer together.
		n = slices.Clone(n)
		slices.SortStableFunc(n, func(x, y uint32) int { return classRank(&b.rules[x]) - classRank(&b.rules[y]) })
		for _, ri := range n {
			r := &b.rules[ri]
			rf := ref{rule: ri, addrOff: uint32(len(s.addrs)), addrLen: r.addrLen, txtOff: uint32(len(s.txts)), txtLen: r.txtLen}
			s.addrs = append(s.addrs, b.addrs[r.addrOff:r.addrOff+uint32(r.addrLen)]...)
			s.txts = append(s.txts, b.txts[r.txtOff:r.txtOff+uint32(r.txtLen)]...)
			s.refs = append(s.refs, rf)
		}
	}
	s.nodeStart = append(s.nodeStart, uint32(len(s.refs)))
	s.applyBadfilters(b)
	// Names carry simple rules only when every complex rule is a pattern
	// or an IP rule (neither sits on a name).
	s.plainOnly = true
	for i := range s.rules {
		if s.rules[i].flags&(fPattern|fIP) == 0 {
			s.plainOnly = false
			break
		}
	}
	for i := range s.rules {
		r := &s.rules[i]
		if r.ext != 0 && r.kind != rkBadfilter && r.flags&fDisabled == 0 {
			if e := &s.exts[r.ext]; len(e.procs)+len(e.notProcs) > 0 {
				s.usesProcess = true
				break
			}
		}
	}
	s.buildPatterns(b.patterns)
	s.buildIPs(b.ips)
	s.tab.arena = arena
	return s
}

// classRank orders a node's rules by class (rules of no class last).
func classRank(r *rule) int {
	if c := classOf(r); c >= 0 {
		return c
	}
	return nClasses
}

// applyBadfilters disables every rule that a $badfilter rule names: the same
// pattern, the same exception-ness and the same other modifiers, their
// value lists compared as sets (mods.key). Hosts and plain-domain lines are
// immune, as AdGuard's KB says of hosts-style rules.
func (s *Set) applyBadfilters(b *Builder) {
	key := func(ri uint32) (bool, bool, string) {
		r := &s.rules[ri]
		allow := r.kind == rkAllow || r.kind == rkRewriteAllow
		mk := ""
		if r.ext != 0 {
			mk = s.exts[r.ext].modKey
			if r.kind == rkBadfilter {
				allow = s.exts[r.ext].allowTarget
			}
		}
		return allow, r.flags&fExact != 0, mk
	}
	for ni := range len(s.nodeStart) - 1 {
		refs := s.refs[s.nodeStart[ni]:s.nodeStart[ni+1]]
		for _, bf := range refs {
			if s.rules[bf.rule].kind != rkBadfilter {
				continue
			}
			a1, e1, k1 := key(bf.rule)
			for _, o := range refs {
				if s.rules[o.rule].kind == rkBadfilter || s.rules[o.rule].flags&fNoBadfilter != 0 {
					continue
				}
				if a2, e2, k2 := key(o.rule); a1 == a2 && e1 == e2 && k1 == k2 {
					s.rules[o.rule].flags |= fDisabled
				}
			}
		}
	}
	// Pattern and IP rules: by their canonical pattern.
	var bad map[string]bool
	for _, list := range [][]uint32{b.patterns, b.ips} {
		for _, ri := range list {
			if s.rules[ri].kind == rkBadfilter {
				if bad == nil {
					bad = map[string]bool{}
				}
				a, _, k := key(ri)
				bad[fmt.Sprint(a, s.exts[s.rules[ri].ext].pattern, "$", k)] = true
			}
		}
	}
	if bad == nil {
		return
	}
	for _, list := range [][]uint32{b.patterns, b.ips} {
		for _, ri := range list {
			if s.rules[ri].kind != rkBadfilter {
				a, _, k := key(ri)
				if bad[fmt.Sprint(a, s.exts[s.rules[ri].ext].pattern, "$", k)] {
					s.rules[ri].flags |= fDisabled
				}
			}
		}
	}
}

// triBits sizes the trigram index of pattern literals.
const triBits = 12

func trigram(b []byte) uint32 {
	return (uint32(b[0])<<16 | uint32(b[1])<<8 | uint32(b[2])) * 0x9e3779b1 >> (32 - triBits)
}

func (s *Set) buildPatterns(pats []uint32) {
	if len(pats) == 0 {
		return
	}
	counts := make([]uint32, 1<<triBits+1)
	for _, ri := range pats {
		if l := s.exts[s.rules[ri].ext].lit; l != "" {
			counts[trigram([]byte(l))+1]++
		} else {
			s.unfiltered = append(s.unfiltered, ri)
		}
	}
	for i := 1; i < len(counts); i++ {
		counts[i] += counts[i-1]
	}
	s.triStart = counts
	s.triRules = make([]uint32, counts[len(counts)-1])
	fill := slices.Clone(counts)
	for _, ri := range pats {
		if l := s.exts[s.rules[ri].ext].lit; l != "" {
			t := trigram([]byte(l))
			s.triRules[fill[t]] = ri
			fill[t]++
			s.triMask[t/64] |= 1 << (t % 64)
		}
	}
	s.hasPatterns = true
}

func (s *Set) buildIPs(ips []uint32) {
	for _, ri := range ips {
		pf := s.exts[s.rules[ri].ext].prefix
		if pf.IsSingleIP() {
			s.ipHosts = append(s.ipHosts, ipEntry{pf.Addr(), ri})
		} else {
			s.ipNets = append(s.ipNets, ri)
		}
	}
	slices.SortStableFunc(s.ipHosts, func(a, b ipEntry) int { return a.addr.Compare(b.addr) })
}

// LoadFiles parses each file into one Builder and builds the Set; it is the
// convenience `dnstun run` uses. Warnings of all files are returned in order.
// An error names the file and wraps the cause (fs errors, ErrNotAList).
func LoadFiles(paths ...string) (*Set, []ListWarning, error) {
	b := NewBuilder()
	var warnings []ListWarning
	collect := func(w ListWarning) { warnings = append(warnings, w) }
	for _, path := range paths {
		if err := loadFile(b, ListOptions{Name: path}, collect); err != nil {
			return nil, warnings, err
		}
	}
	return b.Build(), warnings, nil
}

// LoadFile parses the file opts.Name into b with opts.
func (b *Builder) LoadFile(opts ListOptions, warn func(ListWarning)) error {
	return loadFile(b, opts, warn)
}

func loadFile(b *Builder, opts ListOptions, warn func(ListWarning)) error {
	f, err := os.Open(opts.Name)
	if err != nil {
		return fmt.Errorf("filter: load list %s: %w", opts.Name, err)
	}
	defer f.Close()
	// ParseList's errors already name the list (here: the path).
	_, err = b.ParseListWith(f, opts, warn)
	return err
}

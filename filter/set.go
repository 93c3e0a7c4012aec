// SPDX-License-Identifier: MIT

package filter

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
	"slices"
)

// ref is one rule of a node, with the position of its answer data in
// Set.addrs and Set.txts (consecutive refs have adjacent data).
type ref struct {
	rule            uint32
	addrOff, txtOff uint32
	addrLen, txtLen uint16
}

type ipEntry struct {
	addr netip.Addr
	rule uint32
}

// Set is an immutable, compiled rule set. The zero value and nil forward
// everything. Safe for concurrent use.
type Set struct {
	tab       table
	rules     []rule
	exts      []ruleExt
	text      []byte
	addrs     []netip.Addr
	txts      [][]byte
	nodeStart []uint32
	refs      []ref
	lists     []listInfo
	simple    int
	ptrs      int  // reverse records of hosts lines: rules Len does not count
	plainOnly bool // only simple rules on names: the most specific hit decides at once
	bypass    bool

	usesProcess bool // a rule that can apply has $process

	hasPatterns bool
	triStart    []uint32 // CSR index of pattern rules by the trigram of their literal
	triRules    []uint32
	triMask     [1 << triBits / 64]uint64
	unfiltered  []uint32

	ipHosts []ipEntry // sorted
	ipNets  []uint32  // rule indexes of CIDR rules
}

// Len returns the number of rules in the set (built-in signals excluded).
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return s.simple + len(s.rules) - s.ptrs
}

// UsesProcess reports whether a rule of the set has a $process modifier
// (one that can apply: not disabled by $badfilter). When it is false, the
// asking process never changes a decision, and the engine need not wait
// to learn it.
func (s *Set) UsesProcess() bool {
	return s != nil && s.usesProcess
}

// Names returns the number of distinct names the set has rules for.
func (s *Set) Names() int {
	if s == nil {
		return 0
	}
	return s.tab.count()
}

func (t *table) count() int {
	n := 0
	for _, v := range t.slots {
		if v != 0 {
			n++
		}
	}
	return n
}

// Built-in signals (doc.go). Their RuleIDs sit just below simpleID.
const builtinBase = simpleID - 16

type builtin struct {
	name string
	mode BlockMode
	text string
}

var builtins = [...]builtin{
	{"use-application-dns.net", ModeNXDomain, "use-application-dns.net: Firefox DoH canary, NXDOMAIN keeps Firefox on the system resolver"},
	{"mask.icloud.com", ModeNXDomain, "mask.icloud.com: iCloud Private Relay signal, NXDOMAIN keeps the device on this resolver"},
	{"mask-h2.icloud.com", ModeNXDomain, "mask-h2.icloud.com: iCloud Private Relay signal, NXDOMAIN keeps the device on this resolver"},
	{"_dns.resolver.arpa", ModeNoData, "_dns.resolver.arpa: DDR (RFC 9462), NODATA so clients do not upgrade past the filter"},
}

// Rule returns the source of rule id.
func (s *Set) Rule(id RuleID) (RuleSource, bool) {
	if s == nil || id == 0 {
		return RuleSource{}, false
	}
	if id >= builtinBase && id < builtinBase+RuleID(len(builtins)) {
		return RuleSource{List: "built-in", Text: builtins[id-builtinBase].text}, true
	}
	if id&simpleID != 0 {
		u := uint32(id &^ simpleID)
		name := s.tab.arena.checkedName(u)
		if name == nil || s.tab.lookup(name, nameHash(name)) != u {
			return RuleSource{}, false
		}
		v := s.tab.arena.value(u)
		if v&vKindMask != vSimple {
			return RuleSource{}, false
		}
		f := forms[v>>vFormShift&vFormMask]
		return RuleSource{List: s.lists[listOfUnit(s.lists, u)].opts.Name, Line: int(v & vLineMask), Text: f.prefix + string(name) + f.suffix}, true
	}
	if int(id) > len(s.rules) {
		return RuleSource{}, false
	}
	return s.source(uint32(id - 1)), true
}

func (s *Set) source(ri uint32) RuleSource {
	r := &s.rules[ri]
	src := RuleSource{List: s.lists[r.list].opts.Name, Line: int(r.line)}
	if r.form != noForm {
		f := forms[r.form]
		src.Text = f.prefix + string(s.tab.arena.name(r.textOff)) + f.suffix
	} else {
		src.Text = string(s.text[r.textOff : r.textOff+r.textLen])
	}
	return src
}

// classes of rules, in precedence order (doc.go, "Precedence").
const (
	cRewrite      = iota // $dnsrewrite, important or not
	cRewriteAllow        // @@...$dnsrewrite: cancels rewrites
	cImpAllow
	cImpBlock
	cAllow
	cBlock
	cHosts // hosts lines with an address, and their reverse records
	nClasses
)

var classNames = [nClasses]string{"rewrite", "rewrite exception", "important exception", "important block", "exception", "block", "hosts record"}

func classOf(r *rule) int {
	imp := r.flags&fImportant != 0
	switch r.kind {
	case rkBlock:
		if imp {
			return cImpBlock
		}
		return cBlock
	case rkAllow:
		if imp {
			return cImpAllow
		}
		return cAllow
	case rkRewrite:
		return cRewrite
	case rkRewriteAllow:
		return cRewriteAllow
	case rkHosts:
		return cHosts
	}
	return -1
}

// cand is the best rule found so far in one class.
type cand struct {
	id    RuleID
	at    int16 // where the matching suffix starts (0: the whole name; patternAt: a pattern rule)
	exact bool
	ri    int32 // complex rule index, -1 for simple
	node  int32 // node holding the rule, -1 if none
}

const patternAt = 1 << 14

// Bounds of the rewrite bookkeeping of one query (doc.go, "$dnsrewrite").
const (
	maxRewriteCands = 8  // names and patterns with a rewrite that applies
	maxRewriteExc   = 16 // rewrite exceptions with a value that apply
)

type state struct {
	c   [nClasses]cand
	any bool

	// The rewrites that apply, one entry per name (node) or pattern rule,
	// and the rewrite exceptions that apply: the rewrite decision needs
	// all of them, not only the best of the class.
	rw        [maxRewriteCands]cand
	nrw       int
	rwx       [maxRewriteExc]uint32 // rule indexes of valued rewrite exceptions
	nrwx      int
	rwxAll    bool // an exception without a value: cancels every plain rewrite
	rwxAllImp bool // the same, $important: cancels every rewrite
}

// better reports whether candidate a is more specific than b: a longer
// matching suffix, then an exact rule before a subtree rule.
func better(a, b *cand) bool {
	return a.at < b.at || a.at == b.at && a.exact && !b.exact
}

func (st *state) offer(class int, c cand) {
	if class == cRewrite {
		st.addRewrite(c)
	}
	old := &st.c[class]
	if old.id == 0 || better(&c, old) {
		*old = c
		st.any = true
	}
}

// addRewrite records a name or pattern whose rewrite applies; when the
// list is full, it replaces the least specific entry if c is more specific.
func (st *state) addRewrite(c cand) {
	if st.nrw > 0 && c.node >= 0 && st.rw[st.nrw-1].node == c.node && st.rw[st.nrw-1].at == c.at {
		return // another rule of the same name
	}
	if st.nrw < len(st.rw) {
		st.rw[st.nrw] = c
		st.nrw++
		return
	}
	worst := 0
	for i := 1; i < st.nrw; i++ {
		if !better(&st.rw[i], &st.rw[worst]) {
			worst = i
		}
	}
	if better(&c, &st.rw[worst]) {
		st.rw[worst] = c
	}
}

// addRewriteExc records a rewrite exception that applies.
func (s *Set) addRewriteExc(st *state, ri uint32) {
	r := &s.rules[ri]
	switch {
	case s.exts[r.ext].rwAny && r.important():
		st.rwxAllImp = true
	case s.exts[r.ext].rwAny:
		st.rwxAll = true
	case st.nrwx < len(st.rwx):
		st.rwx[st.nrwx] = ri
		st.nrwx++
	}
}

// cancelled reports whether a rewrite exception that applies cancels the
// rewrite r: a plain exception cancels plain rewrites, an $important one
// cancels every rewrite (AdGuard's urlfilter, dnsrewrite.go).
func (s *Set) cancelled(st *state, r *rule) bool {
	imp := r.important()
	if st.rwxAllImp || st.rwxAll && !imp {
		return true
	}
	for _, xi := range st.rwx[:st.nrwx] {
		x := &s.rules[xi]
		if imp && !x.important() {
			continue
		}
		if s.exts[x.ext].rw.cancels(&s.exts[r.ext].rw) {
			return true
		}
	}
	return false
}

// Why a rule that matched the name did not apply (for Explain).
const (
	whyOK = iota
	whyDisabled
	whyDNSType
	whyClient
	whyDenyallow
	whyBadfilter
	whyNotExact
	whyProcess
	whyIPName
)

var whyNames = [...]string{"", "disabled by a $badfilter rule", "$dnstype does not include the query type", "$client does not include the client",
	"$denyallow excludes the name", "a $badfilter rule (matches nothing itself)", "exact rule, the query is a subdomain",
	"$process does not include the asking process", "$denyallow rules do not apply to IP addresses"}

func (s *Set) applies(r *rule, q *Query, at int) int {
	if r.flags&fDisabled != 0 {
		return whyDisabled
	}
	if r.kind == rkBadfilter {
		return whyBadfilter
	}
	if r.flags&fExact != 0 && at != 0 {
		return whyNotExact
	}
	if r.kind == rkHosts {
		// Hosts lines answer A and AAAA, their reverse records PTR; other
		// types go on to the upstream, as AdGuard Home answers from a
		// hosts file (internal/filtering/hosts.go).
		if r.ext != 0 && s.exts[r.ext].rw.ptr {
			if q.QType != typePTR {
				return whyDNSType
			}
		} else if q.QType != typeA && q.QType != typeAAAA {
			return whyDNSType
		}
	}
	if r.flags&fCond == 0 {
		return whyOK
	}
	e := &s.exts[r.ext]
	if len(e.types) > 0 && !slices.Contains(e.types, q.QType) || slices.Contains(e.notTypes, q.QType) {
		return whyDNSType
	}
	if len(e.clients) > 0 {
		in := false
		if q.Client.IsValid() {
			c := q.Client.Unmap()
			for _, p := range e.clients {
				if p.Contains(c) {
					in = true
					break
				}
			}
		}
		if !in {
			return whyClient
		}
	}
	if len(e.notClients) > 0 && q.Client.IsValid() {
		c := q.Client.Unmap()
		for _, p := range e.notClients {
			if p.Contains(c) {
				return whyClient
			}
		}
	}
	if len(e.procs) > 0 && !procIn(e.procs, q) || len(e.notProcs) > 0 && procIn(e.notProcs, q) {
		return whyProcess
	}
	if len(e.denyallow) > 0 && isIPName(q.Name) {
		// AdGuard's urlfilter: a query name that is an IP address never
		// matches a $denyallow rule (network_rule.go, matchRequestDomain).
		return whyIPName
	}
	for _, d := range e.denyallow {
		n := q.Name
		if len(n) == len(d) && string(n) == string(d) ||
			len(n) > len(d) && n[len(n)-len(d)-1] == '.' && string(n[len(n)-len(d):]) == string(d) {
			return whyDenyallow
		}
	}
	return whyOK
}

// Query types the decision itself looks at.
const (
	typeA    = 1
	typePTR  = 12
	typeAAAA = 28
)

// procIn reports whether the query's process name or executable is one
// of names (lower-case), compared case-insensitively (ASCII).
func procIn(names [][]byte, q *Query) bool {
	for _, n := range names {
		if equalFoldLower(q.Proc, n) || equalFoldLower(q.Exe, n) {
			return true
		}
	}
	return false
}

// equalFoldLower reports whether b equals lower (lower-case ASCII) but
// for the case of ASCII letters. An empty b equals nothing.
func equalFoldLower(b, lower []byte) bool {
	if len(b) != len(lower) || len(b) == 0 {
		return false
	}
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// isIPName reports whether a query name is an IP address: a dotted-quad
// IPv4 address, or (names cannot hold ':' but a query's bytes can) a word
// of hex digits, ':' and '.' with at least two ':', as an IPv6 address is.
func isIPName(n []byte) bool {
	colons := 0
	for _, c := range n {
		switch {
		case c == ':':
			colons++
		case c == '.', '0' <= c && c <= '9', 'a' <= c && c <= 'f', 'A' <= c && c <= 'F':
		default:
			return false
		}
	}
	if colons >= 2 {
		return true
	}
	if colons > 0 {
		return false
	}
	parts, v, digits := 0, 0, 0
	for i := 0; i <= len(n); i++ {
		if i == len(n) || n[i] == '.' {
			if digits == 0 || digits > 1 && n[i-digits] == '0' || v > 255 {
				return false
			}
			parts, v, digits = parts+1, 0, 0
			continue
		}
		if n[i] > '9' {
			return false
		}
		v, digits = v*10+int(n[i]-'0'), digits+1
		if digits > 3 {
			return false
		}
	}
	return parts == 4
}

// Decide returns the decision for name and qtype (see Filter for the form
// of name): DecideQuery without a client. It does not allocate.
func (s *Set) Decide(name []byte, qtype uint16) Decision {
	q := Query{Name: name, QType: qtype}
	return s.decide(&q, nil)
}

// DecideQuery returns the decision for q. It does not allocate, for names
// of any length (names over 255 bytes match nothing but patterns... and
// are simply forwarded).
func (s *Set) DecideQuery(q *Query) Decision {
	return s.decide(q, nil)
}

// builtinFor returns the index of the built-in signal for name, or -1.
func builtinFor(name []byte) int {
	switch len(name) {
	case 23:
		if string(name) == builtins[0].name {
			return 0
		}
	case 15:
		if string(name) == builtins[1].name {
			return 1
		}
	case 18:
		if string(name) == builtins[2].name {
			return 2
		}
		if string(name) == builtins[3].name {
			return 3
		}
	}
	return -1
}

// decide is the one function that fixes the order of evaluation; ex (nil on
// the hot path) collects every rule considered, for Explain.
func (s *Set) decide(q *Query, ex *explainer) Decision {
	name := q.Name
	if s == nil || len(name) == 0 || len(name) > 255 {
		return Decision{}
	}
	if s.bypass {
		if i := builtinFor(name); i >= 0 {
			id := builtinBase + RuleID(i)
			if ex != nil {
				ex.add(id, "", -1, whyOK, true)
			}
			return Decision{Action: Block, Mode: builtins[i].mode, Rule: id}
		}
	}
	if ex == nil && s.plainOnly && !s.hasPatterns {
		if u, ok := s.plainHit(name); ok {
			if u == 0 {
				return Decision{}
			}
			return s.blockDecision(RuleID(simpleID|u), -1, u)
		}
	}
	var st state
	if ex != nil || !s.walkStaged(&st, q) {
		s.walkNames(&st, q, ex)
	}
	if s.hasPatterns {
		s.evalPatterns(&st, q, ex)
	}
	if !st.any {
		return Decision{}
	}
	if ex != nil {
		ex.st = st // a copy, for Explain's reasons
	}
	// $dnsrewrite rules first: AdGuard Home answers from them before it
	// looks at blocks and exceptions (filtering.go, matchHost).
	if st.c[cRewrite].id != 0 {
		if d, ok := s.rewriteDecision(q, &st); ok {
			return d
		}
	}
	c := &st.c
	switch {
	case c[cImpAllow].id != 0:
		return Decision{Rule: c[cImpAllow].id}
	case c[cImpBlock].id != 0:
		return s.blockDecision(c[cImpBlock].id, c[cImpBlock].ri, 0)
	case c[cAllow].id != 0:
		return Decision{Rule: c[cAllow].id}
	case c[cBlock].id != 0:
		return s.blockDecision(c[cBlock].id, c[cBlock].ri, uint32(c[cBlock].id&^simpleID))
	case c[cHosts].id != 0:
		d, _ := s.answerDecision(q, &c[cHosts], cHosts, nil)
		return d
	case c[cRewriteAllow].id != 0 && c[cRewrite].id != 0:
		return Decision{Rule: c[cRewriteAllow].id} // it cancelled every rewrite
	}
	return Decision{}
}

// fastLabels bounds the names walkStaged takes (deeper ones, rare and
// mostly hostile, take walkNames).
const fastLabels = 16

const (
	swarDots = 0x2e2e2e2e2e2e2e2e
	swarLow7 = 0x7f7f7f7f7f7f7f7f
)

// suffixHashes finds the label starts of name (left to right, 8 bytes at
// a time) and the hash of the suffix at each: hs[j] hashes name[starts[j]:].
// It returns the number of labels, or 0 for names of more than fastLabels.
func suffixHashes(name []byte, starts *[fastLabels]uint8, hs *[fastLabels]uint64) int {
	ns := 1
	starts[0] = 0
	for i := 0; i < len(name); i += 8 {
		var w uint64
		if i+8 <= len(name) {
			w = binary.LittleEndian.Uint64(name[i:])
		} else {
			w = tailWord(name, i, len(name))
		}
		x := w ^ swarDots // a zero byte where w has a dot
		for z := ^((x&swarLow7 + swarLow7) | x | swarLow7); z != 0; z &= z - 1 {
			if ns == fastLabels {
				return 0
			}
			starts[ns] = uint8(i + bits.TrailingZeros64(z)>>3 + 1)
			ns++
		}
	}
	// labelHash, inlined.
	h := uint64(hashSeed)
	end := len(name)
	for j := ns - 1; j >= 0; j-- {
		start := int(starts[j])
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
		h = mum(h^w^hashK2, hashK1^uint64(end-start))
		hs[j] = h
		end = start - 1
	}
	return ns
}

// candidates returns a bit for each suffix that may be in the index: its
// bloom filter bit is set and its home slot is taken. The two loads of all
// suffixes are independent of each other, so their cache misses overlap.
func (t *table) candidates(hs *[fastLabels]uint64, ns int) uint32 {
	var m uint32
	for j := range ns {
		taken := uint32(0)
		if t.slots[t.home(hs[j])] != 0 {
			taken = 1
		}
		m |= t.bloomBit(hs[j]) & taken << j
	}
	return m
}

// plainHit is walkStaged for sets whose names carry simple block rules
// only and that have no patterns (plainOnly && !hasPatterns), without the
// per-class state: it returns the unit of the most specific rule that
// applies (0: none), or ok false for names walkStaged does not take.
func (s *Set) plainHit(name []byte) (unit uint32, ok bool) {
	var starts [fastLabels]uint8
	var hs [fastLabels]uint64
	ns := suffixHashes(name, &starts, &hs)
	if ns == 0 {
		return 0, false
	}
	t := &s.tab
	if len(t.slots) == 0 {
		return 0, true
	}
	for m := t.candidates(&hs, ns); m != 0; m &= m - 1 {
		j := bits.TrailingZeros32(m)
		if u := t.probe(name[starts[j]:], hs[j]); u != 0 && (j == 0 || t.arena.value(u)&vExact == 0) {
			return u, true
		}
	}
	return 0, true
}

// walkStaged offers the rules of every suffix of q.Name, looking them up
// in stages (candidates, then the probes) so that their cache misses
// overlap. It goes longest first: when names carry simple block rules only
// (plainOnly), the first rule that applies is the most specific one, and
// it stops there. It returns false, having done nothing, for names of more
// than fastLabels labels.
func (s *Set) walkStaged(st *state, q *Query) bool {
	name := q.Name
	var starts [fastLabels]uint8
	var hs [fastLabels]uint64
	ns := suffixHashes(name, &starts, &hs)
	if ns == 0 {
		return false
	}
	t := &s.tab
	if len(t.slots) == 0 {
		return true
	}
	for m := t.candidates(&hs, ns); m != 0; m &= m - 1 {
		j := bits.TrailingZeros32(m)
		suf := name[starts[j]:]
		if u := t.probe(suf, hs[j]); u != 0 {
			s.consider(st, q, u, int(starts[j]), suf, nil)
			if s.plainOnly && st.any {
				return true
			}
		}
	}
	return true
}

// walkNames is walkStaged one suffix after the other, shortest first, for
// names of any depth and for Explain (which lists matches in that order).
func (s *Set) walkNames(st *state, q *Query, ex *explainer) {
	name := q.Name
	h := uint64(hashSeed)
	end := len(name)
	for i := len(name) - 1; i >= -1; i-- {
		if i >= 0 && name[i] != '.' {
			continue
		}
		h = labelHash(h, name, i+1, end)
		end = i
		suf := name[i+1:]
		if u := s.tab.lookup(suf, h); u != 0 {
			s.consider(st, q, u, i+1, suf, ex)
		}
	}
}

// consider offers the rules of record u, found for the suffix of q.Name
// that starts at at.
func (s *Set) consider(st *state, q *Query, u uint32, at int, suf []byte, ex *explainer) {
	v := s.tab.arena.value(u)
	switch v & vKindMask {
	case vSimple:
		exact := v&vExact != 0
		why := whyOK
		if exact && at != 0 {
			why = whyNotExact
		}
		if ex != nil {
			ex.add(RuleID(simpleID|u), string(suf), cBlock, why, false)
		}
		if why == whyOK {
			st.offer(cBlock, cand{id: RuleID(simpleID | u), at: int16(at), exact: exact, ri: -1, node: -1})
		}
	case vRule:
		s.evalRule(st, q, v&vIndexMask, at, -1, suf, ex)
	default:
		ni := v & vIndexMask
		for _, rf := range s.refs[s.nodeStart[ni]:s.nodeStart[ni+1]] {
			s.evalRule(st, q, rf.rule, at, int32(ni), suf, ex)
		}
	}
}

func (s *Set) evalRule(st *state, q *Query, ri uint32, at int, node int32, suf []byte, ex *explainer) {
	r := &s.rules[ri]
	why := s.applies(r, q, at)
	class := classOf(r)
	if ex != nil {
		ex.add(RuleID(ri+1), string(suf), class, why, false)
	}
	if why != whyOK || class < 0 {
		return
	}
	if class == cRewriteAllow {
		s.addRewriteExc(st, ri)
	}
	st.offer(class, cand{id: RuleID(ri + 1), at: int16(at), exact: r.flags&fExact != 0, ri: int32(ri), node: node})
}

// evalPatterns runs the pattern rules whose literal occurs in the name
// (found through the trigram index), and those without a literal, at most
// maxRegexPerQuery of them.
func (s *Set) evalPatterns(st *state, q *Query, ex *explainer) {
	name := q.Name
	var done [maxRegexPerQuery]uint32
	nd := 0
	run := func(ri uint32) bool {
		for _, d := range done[:nd] {
			if d == ri {
				return true
			}
		}
		if nd == len(done) {
			return false
		}
		done[nd] = ri
		nd++
		r := &s.rules[ri]
		class := classOf(r)
		if class >= 0 && class != cRewrite && class != cRewriteAllow && st.c[class].id != 0 && ex == nil {
			return true // a name rule of the class is more specific
		}
		if !s.exts[r.ext].re.Match(name) {
			return true
		}
		s.evalRule(st, q, ri, patternAt, -1, nil, ex)
		return true
	}
	for _, ri := range s.unfiltered {
		if !run(ri) {
			return
		}
	}
	for p := 0; p+minLiteral <= len(name); p++ {
		t := trigram(name[p:])
		if s.triMask[t/64]&(1<<(t%64)) == 0 {
			continue
		}
		for _, ri := range s.triRules[s.triStart[t]:s.triStart[t+1]] {
			lit := s.exts[s.rules[ri].ext].lit
			if len(name)-p >= len(lit) && string(name[p:p+len(lit)]) == lit {
				if !run(ri) {
					return
				}
			}
		}
	}
}

// blockDecision builds a Block for rule id (ri: its complex index or -1;
// unit: its record for simple rules).
func (s *Set) blockDecision(id RuleID, ri int32, unit uint32) Decision {
	var li uint32
	ede := EDEBlocked
	if ri >= 0 {
		r := &s.rules[ri]
		li = r.list
		if r.flags&fClient != 0 {
			ede = EDEFiltered
		}
	} else if len(s.lists) > 1 {
		li = listOfUnit(s.lists, unit)
	}
	o := &s.lists[li].opts
	d := Decision{Action: Block, Mode: o.Mode, Rule: id, TTL: o.TTL, EDE: ede}
	if o.Mode == ModeCustom {
		d.Addrs = o.BlockAddrs
	}
	return d
}

// rewriteDecision answers from the rewrites of the most specific name (or
// pattern) that has one no rewrite exception cancelled; ok is false when
// exceptions cancelled them all.
func (s *Set) rewriteDecision(q *Query, st *state) (Decision, bool) {
	rw := st.rw[:st.nrw]
	// Most specific first (insertion sort: a handful of entries; stable,
	// so that the first of equals stays first, as offer keeps it).
	for i := 1; i < len(rw); i++ {
		for j := i; j > 0 && better(&rw[j], &rw[j-1]); j-- {
			rw[j], rw[j-1] = rw[j-1], rw[j]
		}
	}
	for i := range rw {
		if d, ok := s.answerDecision(q, &rw[i], cRewrite, st); ok {
			if d.CNAME != nil && wireIs(d.CNAME, q.Name) {
				// A rewrite of a name to itself: AdGuard Home goes on to
				// the other rules (dnsrewrite.go, processDNSResultRewrites).
				return Decision{}, false
			}
			return d, true
		}
	}
	return Decision{}, false
}

// wireIs reports whether the wire-format name w is the dotted name n.
func wireIs(w, n []byte) bool {
	for len(w) > 0 && w[0] != 0 {
		l := int(w[0])
		if len(w) < 1+l || len(n) < l || string(w[1:1+l]) != string(n[:l]) {
			return false
		}
		w, n = w[1+l:], n[l:]
		if len(w) > 0 && w[0] != 0 {
			if len(n) == 0 || n[0] != '.' {
				return false
			}
			n = n[1:]
		}
	}
	return len(n) == 0
}

// answerDecision answers from the rules of class (cRewrite or cHosts) of
// c's name or pattern that apply and, for rewrites, that st's exceptions
// did not cancel (st nil: no cancelling): an rcode first, then a CNAME,
// then the records (addresses, TXT, PTR) of consecutive rules, starting at
// the first (Build puts a name's rules of one class next to each other).
func (s *Set) answerDecision(q *Query, c *cand, class int, st *state) (Decision, bool) {
	live := func(x *rule, at int) bool {
		return classOf(x) == class && s.applies(x, q, at) == whyOK && (st == nil || !s.cancelled(st, x))
	}
	if c.node < 0 {
		r := &s.rules[c.ri]
		if !live(r, int(c.at)) {
			return Decision{}, false
		}
		d := Decision{Action: Answer, Rule: c.id, TTL: s.lists[r.list].opts.TTL}
		s.fillRewrite(&d, r, s.addrs[r.addrOff:r.addrOff+uint32(r.addrLen)], s.txts[r.txtOff:r.txtOff+uint32(r.txtLen)])
		return d, true
	}
	refs := s.refs[s.nodeStart[c.node]:s.nodeStart[c.node+1]]
	first, last, cname := -1, -1, -1
	for i := range refs {
		x := &s.rules[refs[i].rule]
		if !live(x, int(c.at)) {
			continue
		}
		if x.ext != 0 {
			e := &s.exts[x.ext]
			if e.rw.rcodeOnly {
				d := Decision{Action: Answer, Rule: RuleID(refs[i].rule + 1), TTL: s.lists[x.list].opts.TTL}
				s.fillRewrite(&d, x, nil, nil)
				return d, true
			}
			if e.rw.cname != nil && !e.rw.ptr {
				if cname < 0 {
					cname = i
				}
				continue
			}
		}
		if first == -1 {
			first, last = i, i
		} else if last == i-1 {
			last = i
		}
	}
	if cname >= 0 {
		x := &s.rules[refs[cname].rule]
		d := Decision{Action: Answer, Rule: RuleID(refs[cname].rule + 1), TTL: s.lists[x.list].opts.TTL}
		s.fillRewrite(&d, x, nil, nil)
		return d, true
	}
	if first < 0 {
		return Decision{}, false
	}
	x := &s.rules[refs[first].rule]
	d := Decision{Action: Answer, Rule: RuleID(refs[first].rule + 1), TTL: s.lists[x.list].opts.TTL}
	a, b := refs[first], refs[last]
	s.fillRewrite(&d, x, s.addrs[a.addrOff:b.addrOff+uint32(b.addrLen)], s.txts[a.txtOff:b.txtOff+uint32(b.txtLen)])
	if d.PTR == nil {
		for i := first + 1; i <= last; i++ {
			if e := &s.exts[s.rules[refs[i].rule].ext]; s.rules[refs[i].rule].ext != 0 && e.rw.ptr {
				d.PTR = e.rw.cname
				break
			}
		}
	}
	return d, true
}

func (s *Set) fillRewrite(d *Decision, r *rule, addrs []netip.Addr, txts [][]byte) {
	if len(addrs) > 0 {
		d.Addrs = addrs[:len(addrs):len(addrs)]
	}
	if len(txts) > 0 {
		d.TXT = txts[:len(txts):len(txts)]
	}
	if r.ext != 0 {
		e := &s.exts[r.ext]
		d.Rcode = e.rw.rcode
		if e.rw.ptr {
			d.PTR = e.rw.cname
		} else {
			d.CNAME = e.rw.cname
		}
		if e.rw.rcodeOnly {
			d.Addrs, d.TXT, d.CNAME, d.PTR = nil, nil, nil, nil
			if e.rw.rcode == 3 || e.rw.rcode == 5 {
				d.EDE = EDEBlocked
			}
		}
	}
}

// InspectAnswer checks an upstream answer: every CNAME target (dotted,
// lower-case, as query names) is decided like a query name for the client
// (CNAME cloaking), and every answer address against the IP/CIDR rules. It
// returns the first Block found (the response then becomes the block
// answer), or a Forward decision (Rule set when an exception matched). It
// does not allocate.
func (s *Set) InspectAnswer(cnames [][]byte, addrs []netip.Addr, client netip.Addr) Decision {
	if s == nil {
		return Decision{}
	}
	var keep Decision
	for _, cn := range cnames {
		q := Query{Name: cn, Client: client}
		d := s.decide(&q, nil)
		if d.Action == Block {
			return d
		}
		if d.Rule != 0 && keep.Rule == 0 && d.Action == Forward {
			keep = d
		}
	}
	if len(s.ipHosts) == 0 && len(s.ipNets) == 0 {
		return keep
	}
	q := Query{Client: client}
	for _, a := range addrs {
		var st state
		a = a.Unmap().WithZone("")
		i, _ := slices.BinarySearchFunc(s.ipHosts, a, func(e ipEntry, t netip.Addr) int { return e.addr.Compare(t) })
		for ; i < len(s.ipHosts) && s.ipHosts[i].addr == a; i++ {
			s.evalRule(&st, &q, s.ipHosts[i].rule, 0, -1, nil, nil)
		}
		for _, ri := range s.ipNets {
			if s.exts[s.rules[ri].ext].prefix.Contains(a) {
				s.evalRule(&st, &q, ri, patternAt, -1, nil, nil)
			}
		}
		c := &st.c
		switch {
		case c[cImpAllow].id != 0:
			continue
		case c[cImpBlock].id != 0:
			return s.blockDecision(c[cImpBlock].id, c[cImpBlock].ri, 0)
		case c[cAllow].id != 0:
			if keep.Rule == 0 {
				keep = Decision{Rule: c[cAllow].id}
			}
		case c[cBlock].id != 0:
			return s.blockDecision(c[cBlock].id, c[cBlock].ri, 0)
		}
	}
	return keep
}

// Match is one rule that Explain found for a query.
type Match struct {
	Rule   RuleID
	Source RuleSource
	Name   string // the suffix of the query the rule is written for ("" for patterns and built-ins)
	Class  string // its precedence class: "block", "exception", "rewrite", ...
	Won    bool   // this rule made the decision
	Why    string // why it won, lost or did not apply
}

type explainer struct {
	ms []Match
	st state // the walk's state, for the reasons of rewrites
}

func (e *explainer) add(id RuleID, name string, class int, why int, won bool) {
	m := Match{Rule: id, Name: name, Won: won}
	if class >= 0 {
		m.Class = classNames[class]
	} else {
		m.Class = "built-in"
	}
	if why != whyOK {
		m.Why = "did not apply: " + whyNames[why]
	}
	e.ms = append(e.ms, m)
}

// Explain returns every rule that matched q's name (its suffixes, patterns,
// built-in signals) with its source, and why it won, lost or did not apply.
// The Decision is the same DecideQuery returns. Explain allocates; it is
// for `dnstun explain` and logs, not the hot path.
func (s *Set) Explain(q *Query) (Decision, []Match) {
	var e explainer
	d := s.decide(q, &e)
	for i := range e.ms {
		m := &e.ms[i]
		m.Source, _ = s.Rule(m.Rule)
		if m.Why != "" {
			continue
		}
		if m.Rule == d.Rule {
			m.Won = true
			m.Why = "won: " + winWhy(d, m.Class)
			continue
		}
		if m.Class == classNames[cRewrite] && m.Rule&simpleID == 0 && s.cancelled(&e.st, &s.rules[m.Rule-1]) {
			m.Why = "lost: cancelled by a rewrite exception"
			continue
		}
		m.Why = "lost: " + lossWhy(s, d, m)
	}
	return d, e.ms
}

func winWhy(d Decision, class string) string {
	switch {
	case class == "built-in":
		return "built-in signal answers before any list rule"
	case class == classNames[cRewriteAllow]:
		return "it cancelled every rewrite, and no other rule applies"
	case d.Action == Forward:
		return class + " outranks every other matching rule"
	}
	return "highest-precedence matching " + class + ", most specific of its class"
}

func lossWhy(s *Set, d Decision, m *Match) string {
	if d.Rule == 0 {
		return "a rewrite exception cancelled it, or nothing to decide"
	}
	src, _ := s.Rule(d.Rule)
	return "the deciding rule " + src.List + ":" + itoa(src.Line) + " (" + src.Text + ") has higher precedence or is more specific"
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}

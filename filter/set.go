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
	plainOnly bool // only simple rules on names: the most specific hit decides at once
	bypass    bool

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
	return s.simple + len(s.rules)
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
	cImpAllow = iota
	cImpBlock
	cImpRewrite
	cAllow
	cRewriteAllow
	cRewrite
	cBlock
	nClasses
)

var classNames = [nClasses]string{"important exception", "important block", "important rewrite", "exception", "rewrite exception", "rewrite", "block"}

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
		if imp {
			return cImpRewrite
		}
		return cRewrite
	case rkRewriteAllow:
		return cRewriteAllow
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

type state struct {
	c   [nClasses]cand
	any bool
}

func (st *state) offer(class int, c cand) {
	old := &st.c[class]
	if old.id == 0 || c.at < old.at || old.at == c.at && c.exact && !old.exact {
		*old = c
		st.any = true
	}
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
)

var whyNames = [...]string{"", "disabled by a $badfilter rule", "$dnstype does not include the query type", "$client does not include the client",
	"$denyallow excludes the name", "a $badfilter rule (matches nothing itself)", "exact rule, the query is a subdomain"}

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
	for _, d := range e.denyallow {
		n := q.Name
		if len(n) == len(d) && string(n) == string(d) ||
			len(n) > len(d) && n[len(n)-len(d)-1] == '.' && string(n[len(n)-len(d):]) == string(d) {
			return whyDenyallow
		}
	}
	return whyOK
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
	c := &st.c
	switch {
	case c[cImpAllow].id != 0:
		return Decision{Rule: c[cImpAllow].id}
	case c[cImpBlock].id != 0:
		return s.blockDecision(c[cImpBlock].id, c[cImpBlock].ri, 0)
	case c[cImpRewrite].id != 0:
		return s.rewriteDecision(q, &c[cImpRewrite], true)
	case c[cAllow].id != 0:
		return Decision{Rule: c[cAllow].id}
	case c[cRewrite].id != 0 && c[cRewriteAllow].id == 0:
		return s.rewriteDecision(q, &c[cRewrite], false)
	case c[cBlock].id != 0:
		return s.blockDecision(c[cBlock].id, c[cBlock].ri, uint32(c[cBlock].id&^simpleID))
	case c[cRewriteAllow].id != 0 && c[cRewrite].id != 0:
		return Decision{Rule: c[cRewriteAllow].id}
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
		if class >= 0 && st.c[class].id != 0 && ex == nil {
			return true // a name rule of the class is more specific
		}
		if !s.exts[r.ext].re.Match(name) {
			return true
		}
		why := s.applies(r, q, patternAt)
		if ex != nil {
			ex.add(RuleID(ri+1), "", class, why, false)
		}
		if why == whyOK && class >= 0 {
			st.offer(class, cand{id: RuleID(ri + 1), at: patternAt, ri: int32(ri), node: -1})
		}
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

// rewriteDecision answers from the rewrite rules of the most specific name
// that has one: an rcode keyword first, then a CNAME, then the addresses
// and TXT strings of the consecutive matching rules starting at the first.
func (s *Set) rewriteDecision(q *Query, c *cand, important bool) Decision {
	r := &s.rules[c.ri]
	d := Decision{Action: Answer, Rule: c.id, TTL: s.lists[r.list].opts.TTL}
	if c.node < 0 {
		s.fillRewrite(&d, r, s.addrs[r.addrOff:r.addrOff+uint32(r.addrLen)], s.txts[r.txtOff:r.txtOff+uint32(r.txtLen)])
		return d
	}
	refs := s.refs[s.nodeStart[c.node]:s.nodeStart[c.node+1]]
	want := cRewrite
	if important {
		want = cImpRewrite
	}
	first, last := -1, -1
	for i := range refs {
		x := &s.rules[refs[i].rule]
		if classOf(x) != want || s.applies(x, q, int(c.at)) != whyOK {
			continue
		}
		if x.ext != 0 {
			e := &s.exts[x.ext]
			if e.rcodeOnly || e.cname != nil {
				d.Rule = RuleID(refs[i].rule + 1)
				d.TTL = s.lists[x.list].opts.TTL
				s.fillRewrite(&d, x, nil, nil)
				if e.rcodeOnly {
					return d
				}
				first = -2
				continue
			}
		}
		if first == -2 {
			continue
		}
		if first == -1 {
			first, last = i, i
		} else if last == i-1 {
			last = i
		}
	}
	if first >= 0 {
		a, b := refs[first], refs[last]
		d.Addrs = s.addrs[a.addrOff : b.addrOff+uint32(b.addrLen) : b.addrOff+uint32(b.addrLen)]
		d.TXT = s.txts[a.txtOff : b.txtOff+uint32(b.txtLen) : b.txtOff+uint32(b.txtLen)]
		if len(d.Addrs) == 0 {
			d.Addrs = nil
		}
		if len(d.TXT) == 0 {
			d.TXT = nil
		}
	}
	return d
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
		d.Rcode = e.rcode
		if e.ptr {
			d.PTR = e.cname
		} else {
			d.CNAME = e.cname
		}
		if e.rcodeOnly {
			d.Addrs, d.TXT, d.CNAME, d.PTR = nil, nil, nil, nil
			if e.rcode == 3 || e.rcode == 5 {
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
		m.Why = "lost: " + lossWhy(s, d, m)
	}
	return d, e.ms
}

func winWhy(d Decision, class string) string {
	switch {
	case class == "built-in":
		return "built-in signal answers before any list rule"
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

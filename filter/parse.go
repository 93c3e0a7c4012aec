// SPDX-License-Identifier: MIT

package filter

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net/netip"
	"slices"
)

// MaxLineLen is the longest line ParseList reads as a rule, in bytes without
// the line end; longer lines are skipped as malformed.
const MaxLineLen = 4096

// maxWarnings bounds the warnings kept while a list is read (they are only
// delivered once the list is known to be one); the rest are counted.
const maxWarnings = 10000

// earlyRejectLines: a list whose first this-many classified lines are all
// malformed is rejected without reading the rest.
const earlyRejectLines = 1000

// maxPresize caps the input size used to pre-size ParseList's buffers.
const maxPresize = 32 << 20

// ErrNotAList is wrapped by ParseList's error for input that is not a rule
// list at all (binary, HTML, or mostly malformed lines).
var ErrNotAList = errors.New("not a filter list")

// WarningKind tells why a line was skipped.
type WarningKind uint8

const (
	// Malformed: the line is no rule of any known syntax. Malformed lines
	// count toward rejecting the whole file as not a list.
	Malformed WarningKind = iota
	// Unsupported: valid syntax that this version does not implement
	// ($ modifiers, wildcards, regex, cosmetic rules, IDN names, ...).
	Unsupported
)

func (k WarningKind) String() string {
	if k == Unsupported {
		return "unsupported"
	}
	return "malformed"
}

// ListWarning reports one skipped line or hosts name.
type ListWarning struct {
	List   string // list name given to ParseList
	Line   int    // 1-based line number; 0 for a summary warning
	Token  string // the offending token (shortened when long)
	Reason string
	Kind   WarningKind
}

func (w ListWarning) String() string {
	if w.Token == "" {
		return fmt.Sprintf("%s:%d: %s", w.List, w.Line, w.Reason)
	}
	return fmt.Sprintf("%s:%d: %s: %q", w.List, w.Line, w.Reason, w.Token)
}

// ListStats counts what ParseList found in one list.
type ListStats struct {
	Lines       int // lines read
	Comments    int // comment and blank lines
	Rules       int // rules added to the builder (one per line)
	Blocks      int // block entries added (names)
	Exceptions  int // exception entries added (names)
	Answers     int // local-answer addresses added (name, address pairs)
	Duplicates  int // entries that were already present (no effect)
	Ignored     int // hosts boilerplate names (localhost, ...)
	Unsupported int // lines skipped as unsupported in this version
	Malformed   int // lines skipped as malformed
}

// entry kinds staged by ParseList.
type itemKind uint8

const (
	kSuffix itemKind = iota
	kExact
	kAllowSuffix
	kAllowExact
	kAnswer
)

// stagedItem is one (name, rule) pair of a list being read; names live in
// listParser.names so that reading a list costs a few large allocations.
type stagedItem struct {
	kind    itemKind
	rule    int32  // index into listParser.rules
	nameOff uint32 // listParser.names[nameOff:][:nameLen]
	nameLen uint32
	addr    int32 // index into listParser.addrs (kAnswer only)
}

type stagedRule struct {
	line    uint32
	textOff uint32 // in Builder.text (written there directly, cut back on failure)
	textLen uint32
}

// listParser holds the state of one ParseList call. Nothing reaches the
// Builder until the whole list has been read and accepted.
type listParser struct {
	name       string
	rules      []stagedRule
	items      []stagedItem
	b          *Builder
	textStart  int          // len(b.text) when the list started
	names      []byte       // normalized names, back to back
	addrs      []netip.Addr // answer addresses of items
	warnings   []ListWarning
	suppressed int
	stats      ListStats
	accepted   int // lines that gave at least one rule
	firstBad   string
	sawRule    bool // a non-comment line has been seen (for HTML detection)

	lastAddr     netip.Addr // cache of parseAddr
	lastAddrText []byte
}

// Builder collects rules from lists and compiles them into a Set. It is not
// safe for concurrent use; Build may be called more than once.
type Builder struct {
	index   map[string]int32 // name -> entries index; keys slice per-list arenas
	entries []node
	names   []string               // entries[i]'s name
	answers map[int32][]netip.Addr // entries index -> local addresses
	rules   []ruleRec
	lists   []string
	text    []byte
}

// NewBuilder returns an empty Builder.
func NewBuilder() *Builder {
	return &Builder{index: make(map[string]int32), answers: make(map[int32][]netip.Addr)}
}

// ParseList reads one list. name labels its warnings and RuleSource.List.
// Skipped lines are reported through warn (which may be nil) once the list
// has been read; see the package documentation for the formats. An error
// (read failure, or input that is not a list: it wraps ErrNotAList) means
// nothing of this list was added.
func (b *Builder) ParseList(r io.Reader, name string, warn func(ListWarning)) (ListStats, error) {
	p := &listParser{name: name, b: b, textStart: len(b.text)}
	// All or nothing: rule texts go straight to b.text and are cut back
	// if the list fails.
	ok := false
	defer func() {
		if !ok {
			b.text = b.text[:p.textStart]
		}
	}()
	if n := int(min(sizeHint(r), maxPresize)); n > 0 {
		// Typical lines are 20-40 bytes; growing by doubling would copy
		// the staging slices about twice over. Capped, so that a huge
		// file which turns out not to be a list costs little up front.
		p.items = make([]stagedItem, 0, n/24)
		p.rules = make([]stagedRule, 0, n/24)
		p.names = make([]byte, 0, n)
		b.text = slices.Grow(b.text, n)
	}
	br := bufio.NewReaderSize(r, MaxLineLen+2) // room for the line, CR and LF
	lineNo := 0
	for {
		raw, err := br.ReadSlice('\n')
		if len(raw) == 0 && err == io.EOF {
			break
		}
		lineNo++
		p.stats.Lines++
		if err == bufio.ErrBufferFull {
			tok := raw
			if err := skipLine(br); err != nil && err != io.EOF {
				return p.stats, fmt.Errorf("filter: read %s: %w", name, err)
			}
			if bytes.IndexByte(tok, 0) >= 0 {
				return p.stats, fmt.Errorf("filter: %s: %w: NUL byte on line %d (binary file?)", name, ErrNotAList, lineNo)
			}
			p.warn(lineNo, tok, fmt.Sprintf("line longer than %d bytes", MaxLineLen), Malformed)
			p.sawRule = true
			continue
		}
		if err != nil && err != io.EOF {
			return p.stats, fmt.Errorf("filter: read %s: %w", name, err)
		}
		if bytes.IndexByte(raw, 0) >= 0 {
			return p.stats, fmt.Errorf("filter: %s: %w: NUL byte on line %d (binary file?)", name, ErrNotAList, lineNo)
		}
		line := raw
		if lineNo == 1 {
			line = bytes.TrimPrefix(line, []byte("\xef\xbb\xbf"))
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) > MaxLineLen {
			p.warn(lineNo, line, fmt.Sprintf("line longer than %d bytes", MaxLineLen), Malformed)
			p.sawRule = true
		} else if err := p.parseLine(lineNo, line); err != nil {
			return p.stats, err
		}
		if p.stats.Malformed >= earlyRejectLines && p.accepted == 0 {
			return p.stats, p.notAList()
		}
		if err == io.EOF {
			break
		}
	}
	if p.stats.Malformed > p.accepted {
		return p.stats, p.notAList()
	}
	if err := b.commit(p); err != nil {
		return p.stats, err
	}
	ok = true
	if warn != nil {
		for _, w := range p.warnings {
			warn(w)
		}
		if p.suppressed > 0 {
			warn(ListWarning{List: name, Reason: fmt.Sprintf("%d more warnings not shown", p.suppressed), Kind: Malformed})
		}
	}
	return p.stats, nil
}

// sizeHint returns the remaining size of r when r knows it cheaply (files,
// bytes and strings readers), or 0.
func sizeHint(r io.Reader) int64 {
	switch v := r.(type) {
	case interface{ Len() int }:
		return int64(v.Len())
	case interface{ Stat() (fs.FileInfo, error) }:
		if fi, err := v.Stat(); err == nil && fi.Mode().IsRegular() {
			return fi.Size()
		}
	}
	return 0
}

// skipLine discards the rest of an over-long line.
func skipLine(br *bufio.Reader) error {
	for {
		_, err := br.ReadSlice('\n')
		if err != bufio.ErrBufferFull {
			return err
		}
	}
}

func (p *listParser) notAList() error {
	return fmt.Errorf("filter: %s: %w: %d malformed lines against %d rules (first: %s)",
		p.name, ErrNotAList, p.stats.Malformed, p.accepted, p.firstBad)
}

// shortToken bounds the token copied into a warning.
func shortToken(tok []byte) string {
	const max = 80
	if len(tok) > max {
		return string(tok[:max]) + "..."
	}
	return string(tok)
}

func (p *listParser) warn(line int, tok []byte, reason string, kind WarningKind) {
	if kind == Malformed {
		p.stats.Malformed++
		if p.firstBad == "" {
			p.firstBad = fmt.Sprintf("line %d: %s: %q", line, reason, shortToken(tok))
		}
	} else {
		p.stats.Unsupported++
	}
	if len(p.warnings) >= maxWarnings {
		p.suppressed++
		return
	}
	p.warnings = append(p.warnings, ListWarning{List: p.name, Line: line, Token: shortToken(tok), Reason: reason, Kind: kind})
}

// nameWarn reports one skipped name of a hosts line without counting a line.
func (p *listParser) nameWarn(line int, tok []byte, reason string, kind WarningKind) {
	if len(p.warnings) >= maxWarnings {
		p.suppressed++
		return
	}
	p.warnings = append(p.warnings, ListWarning{List: p.name, Line: line, Token: shortToken(tok), Reason: reason, Kind: kind})
}

// newRule stages the source of a rule line and returns its index.
func (p *listParser) newRule(line int, text []byte) int32 {
	off := len(p.b.text)
	p.b.text = append(p.b.text, text...)
	p.rules = append(p.rules, stagedRule{line: uint32(line), textOff: uint32(off), textLen: uint32(len(text))})
	p.accepted++
	return int32(len(p.rules) - 1)
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\v' || c == '\f' || c == '\r' }

func trimSpace(b []byte) []byte {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// stripComment removes a trailing comment: a '#' preceded by a space or tab.
func stripComment(b []byte) []byte {
	for i := 1; i < len(b); i++ {
		if b[i] == '#' && isSpace(b[i-1]) {
			return b[:i]
		}
	}
	return b
}

// fields splits on runs of spaces and tabs into dst.
func fields(dst [][]byte, b []byte) [][]byte {
	for len(b) > 0 {
		i := 0
		for i < len(b) && isSpace(b[i]) {
			i++
		}
		b = b[i:]
		j := 0
		for j < len(b) && !isSpace(b[j]) {
			j++
		}
		if j > 0 {
			dst = append(dst, b[:j])
		}
		b = b[j:]
	}
	return dst
}

var cosmeticMarkers = [][]byte{
	[]byte("##"), []byte("#@#"), []byte("#?#"), []byte("#$#"), []byte("#%#"), []byte("#@$#"), []byte("#@%#"), []byte("#@?#"),
}

// blockingAddrs are the hosts addresses that mean "block this name".
var blockingAddrs = [...]netip.Addr{
	netip.IPv4Unspecified(),
	netip.AddrFrom4([4]byte{127, 0, 0, 1}),
	netip.IPv6Unspecified(),
	netip.IPv6Loopback(),
}

// hostsBoilerplate are the names every hosts file defines for the machine
// itself; they are never rules.
var hostsBoilerplate = map[string]bool{
	"localhost": true, "localhost.localdomain": true, "local": true, "broadcasthost": true,
	"ip6-localhost": true, "ip6-loopback": true, "ip6-localnet": true, "ip6-mcastprefix": true,
	"ip6-allnodes": true, "ip6-allrouters": true, "ip6-allhosts": true, "0.0.0.0": true,
	"localhost4": true, "localhost6": true, "localhost4.localdomain4": true, "localhost6.localdomain6": true,
	"localdomain": true,
}

// parseLine classifies one line (already free of its line end). It returns
// an error only for a file-level verdict (not a list).
func (p *listParser) parseLine(lineNo int, line []byte) error {
	t := trimSpace(line)
	if len(t) == 0 || t[0] == '#' || t[0] == '!' {
		p.stats.Comments++
		return nil
	}
	if t[0] == '<' {
		if !p.sawRule {
			return fmt.Errorf("filter: %s: %w: line %d starts with '<' (an HTML or XML page?)", p.name, ErrNotAList, lineNo)
		}
		p.warn(lineNo, t, "markup, not a rule", Malformed)
		return nil
	}
	p.sawRule = true
	t = trimSpace(stripComment(t))
	if bytes.IndexByte(t, '#') >= 0 {
		for _, m := range cosmeticMarkers {
			if bytes.Contains(t, m) {
				p.warn(lineNo, t, "cosmetic rule unsupported in this version", Unsupported)
				return nil
			}
		}
	}
	var buf [8][]byte
	f := fields(buf[:0], t)
	if a, ok := p.parseAddr(f[0]); ok {
		p.hostsLine(lineNo, t, a, f[1:])
		return nil
	}
	if len(f) > 1 {
		p.warn(lineNo, t, "not a rule (several words and no address)", Malformed)
		return nil
	}
	p.patternLine(lineNo, t)
	return nil
}

func (p *listParser) hostsLine(lineNo int, text []byte, a netip.Addr, names [][]byte) {
	if len(names) == 0 {
		p.warn(lineNo, text, "address without names (response-IP rule) unsupported in this version", Unsupported)
		return
	}
	a = a.WithZone("")
	kind := kAnswer
	for _, b := range blockingAddrs {
		if a == b {
			kind = kExact
			break
		}
	}
	rule := int32(-1)
	ignored := 0
	type badName struct {
		tok    []byte
		reason string
		kind   WarningKind
	}
	var bad []badName
	addr := int32(-1)
	if kind == kAnswer {
		addr = int32(len(p.addrs))
		p.addrs = append(p.addrs, a)
	}
	for _, nb := range names {
		off := len(p.names)
		n, reason, wk := normalizeName(p.names, nb)
		if reason != "" {
			bad = append(bad, badName{nb, reason, wk})
			continue
		}
		if hostsBoilerplate[string(n[off:])] {
			ignored++
			continue
		}
		p.names = n
		if rule < 0 {
			rule = p.newRule(lineNo, text)
		}
		p.items = append(p.items, stagedItem{kind: kind, rule: rule, nameOff: uint32(off), nameLen: uint32(len(n) - off), addr: addr})
	}
	p.stats.Ignored += ignored
	for i, bn := range bad {
		if i == 0 && rule < 0 {
			// No name of the line was usable: the line counts as skipped.
			p.warn(lineNo, bn.tok, bn.reason, bn.kind)
			continue
		}
		// Other names were usable (or the line is already counted):
		// report the name without counting the line again.
		p.nameWarn(lineNo, bn.tok, bn.reason, bn.kind)
	}
}

// parseAddr parses the first word of a line as an IP address. Hosts files
// repeat one address on every line, so the last one is remembered: that
// saves ParseAddr's string allocation on nearly every line.
func (p *listParser) parseAddr(b []byte) (netip.Addr, bool) {
	if len(b) == 0 || !(b[0] >= '0' && b[0] <= '9' || bytes.IndexByte(b, ':') >= 0) {
		return netip.Addr{}, false
	}
	if p.lastAddr.IsValid() && string(b) == string(p.lastAddrText) {
		return p.lastAddr, true
	}
	a, err := netip.ParseAddr(string(b))
	if err != nil {
		return netip.Addr{}, false
	}
	p.lastAddr = a
	p.lastAddrText = append(p.lastAddrText[:0], b...)
	return a, true
}

// patternLine handles a single-token line that is not an address: a plain
// domain or an adblock-style rule.
func (p *listParser) patternLine(lineNo int, t []byte) {
	tok := t
	allow := false
	if len(tok) >= 2 && tok[0] == '@' && tok[1] == '@' {
		allow = true
		tok = tok[2:]
	}
	switch {
	case bytes.IndexByte(tok, '$') >= 0:
		p.warn(lineNo, t, "$ modifiers unsupported in this version", Unsupported)
		return
	case len(tok) > 0 && tok[0] == '/':
		p.warn(lineNo, t, "regex or path rule unsupported in this version", Unsupported)
		return
	}
	anchored, suffix := false, false
	switch {
	case len(tok) >= 2 && tok[0] == '|' && tok[1] == '|':
		anchored, suffix = true, true
		tok = tok[2:]
	case len(tok) >= 1 && tok[0] == '|':
		anchored = true
		tok = tok[1:]
	}
	if anchored {
		tok = bytes.TrimSuffix(tok, []byte("|"))
		tok = bytes.TrimSuffix(tok, []byte("^"))
	}
	if i := bytes.IndexAny(tok, "*"); i >= 0 {
		p.warn(lineNo, t, "wildcard unsupported in this version", Unsupported)
		return
	}
	if !anchored {
		if bytes.ContainsAny(tok, "^|:/") || len(tok) > 0 && (tok[0] == '.' || tok[0] == '-') {
			p.warn(lineNo, t, "unanchored adblock pattern unsupported in this version", Unsupported)
			return
		}
		if allow {
			p.warn(lineNo, t, "unanchored exception unsupported in this version (write @@||name^)", Unsupported)
			return
		}
	} else if bytes.ContainsAny(tok, "^|:/?&=;") {
		p.warn(lineNo, t, "path, port or pattern after the domain unsupported in this version", Unsupported)
		return
	}
	off := len(p.names)
	n, reason, wk := normalizeName(p.names, tok)
	if reason != "" {
		p.warn(lineNo, t, reason, wk)
		return
	}
	kind := kSuffix
	switch {
	case allow && suffix:
		kind = kAllowSuffix
	case allow:
		kind = kAllowExact
	case anchored && !suffix:
		kind = kExact
	}
	p.names = n
	rule := p.newRule(lineNo, t)
	p.items = append(p.items, stagedItem{kind: kind, rule: rule, nameOff: uint32(off), nameLen: uint32(len(n) - off), addr: -1})
}

// normalizeName appends b to dst lower-cased, without one trailing dot, and
// validates it (see the package documentation). On failure it returns nil,
// a reason and whether the name is malformed or merely unsupported
// (non-ASCII).
func normalizeName(dst []byte, b []byte) ([]byte, string, WarningKind) {
	if len(b) > 0 && b[len(b)-1] == '.' {
		b = b[:len(b)-1]
	}
	if len(b) == 0 {
		return nil, "empty name", Malformed
	}
	if len(b) > 253 {
		return nil, "name longer than 253 bytes", Malformed
	}
	label := 0
	for _, c := range b {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
		case c >= 'A' && c <= 'Z':
			c += 'a' - 'A'
		case c == '.':
			if label == 0 {
				return nil, "empty label in name", Malformed
			}
			label = -1
		case c >= 0x80:
			return nil, "non-ASCII (IDN) name unsupported in this version; write it in punycode (xn--)", Unsupported
		default:
			return nil, fmt.Sprintf("invalid character %q in name", c), Malformed
		}
		label++
		if label > 63 {
			return nil, "label longer than 63 bytes", Malformed
		}
		dst = append(dst, c)
	}
	if label == 0 {
		return nil, "empty label in name", Malformed
	}
	return dst, "", Malformed
}

// commit adds a parsed list to the builder: rule ids are given to lines that
// add at least one new entry.
func (b *Builder) commit(p *listParser) error {
	if len(b.rules)+len(p.rules) > maxRules || len(b.text) > math.MaxUint32 {
		return fmt.Errorf("filter: %s: too many rules (limit %d) or rule text over 4 GiB", p.name, maxRules)
	}
	// Grow once to the upper bound rather than by doubling. A map cannot
	// be grown in place, so only the first list sizes it.
	if len(b.index) == 0 {
		b.index = make(map[string]int32, len(p.items))
	}
	b.entries = slices.Grow(b.entries, len(p.items))
	b.names = slices.Grow(b.names, len(p.items))
	b.rules = slices.Grow(b.rules, len(p.rules))
	listIdx := uint32(len(b.lists))
	b.lists = append(b.lists, p.name)
	ids := make([]RuleID, len(p.rules))
	idOf := func(r int32) RuleID {
		if ids[r] == 0 {
			sr := p.rules[r]
			b.rules = append(b.rules, ruleRec{list: listIdx, line: sr.line, textOff: sr.textOff, textLen: sr.textLen})
			ids[r] = RuleID(len(b.rules))
		}
		return ids[r]
	}
	names := string(p.names) // one allocation; map keys slice it
	for _, it := range p.items {
		name := names[it.nameOff : it.nameOff+it.nameLen]
		ei, ok := b.index[name]
		if !ok {
			ei = int32(len(b.entries))
			b.entries = append(b.entries, node{})
			b.names = append(b.names, name)
			b.index[name] = ei
		}
		e := &b.entries[ei]
		var slot *RuleID
		switch it.kind {
		case kSuffix:
			slot = &e.suffix
		case kExact:
			slot = &e.exact
		case kAllowSuffix:
			slot = &e.allowSuffix
		case kAllowExact:
			slot = &e.allowExact
		case kAnswer:
			a := p.addrs[it.addr]
			have := b.answers[ei]
			if slices.Contains(have, a) {
				p.stats.Duplicates++
				continue
			}
			b.answers[ei] = append(have, a)
			id := idOf(it.rule)
			if e.answer == 0 {
				e.answer = id
			}
			p.stats.Answers++
			continue
		}
		if *slot != 0 {
			p.stats.Duplicates++
			continue
		}
		*slot = idOf(it.rule)
		if it.kind == kAllowSuffix || it.kind == kAllowExact {
			p.stats.Exceptions++
		} else {
			p.stats.Blocks++
		}
	}
	for _, id := range ids {
		if id != 0 {
			p.stats.Rules++
		}
	}
	return nil
}

// SPDX-License-Identifier: MIT

package filter

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"slices"
	"strconv"
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

// maxPresize caps the input size used to pre-size the Builder's buffers.
const maxPresize = 64 << 20

// ErrNotAList is wrapped by ParseList's error for input that is not a rule
// list at all (binary, HTML, or mostly malformed lines).
var ErrNotAList = errors.New("not a filter list")

// WarningKind tells why a line was skipped.
type WarningKind uint8

const (
	// Malformed: the line is no rule of any known syntax. Malformed lines
	// count toward rejecting the whole file as not a list.
	Malformed WarningKind = iota
	// Unsupported: valid syntax that dnstun does not implement (cosmetic
	// rules, modifiers other than the supported ones, ...).
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
	Blocks      int // block entries added (names, patterns, IPs)
	Exceptions  int // exception entries added
	Answers     int // local-answer and rewrite entries added
	Patterns    int // regex and wildcard rules added
	IPRules     int // response IP/CIDR rules added
	Duplicates  int // entries that were already present (no effect)
	Ignored     int // hosts boilerplate names (localhost, ...)
	Unsupported int // lines skipped as unsupported
	Malformed   int // lines skipped as malformed
}

// ListOptions configure one list.
type ListOptions struct {
	// Name labels the list's warnings and RuleSource.List.
	Name string
	// Mode answers the list's block rules; ModeDefault leaves it to the
	// engine. ModeCustom answers with BlockAddrs.
	Mode       BlockMode
	BlockAddrs []netip.Addr
	// TTL of the answers built from this list's rules; 0 = engine default.
	TTL uint32
}

// listParser holds the state of one ParseList call.
type listParser struct {
	name       string
	b          *Builder
	list       uint32
	snap       snapshot
	warnings   []ListWarning
	suppressed int
	stats      ListStats
	accepted   int // lines that gave at least one rule
	firstBad   string
	sawRule    bool // a non-comment line has been seen (for HTML detection)
	nameBuf    []byte
	textRule   int64 // rule index of the current line's complex rule, -1 none

	lastAddr     netip.Addr // cache of parseAddr
	lastAddrText []byte
}

// ParseList reads one list with default options (ListOptions{Name: name}).
func (b *Builder) ParseList(r io.Reader, name string, warn func(ListWarning)) (ListStats, error) {
	return b.ParseListWith(r, ListOptions{Name: name}, warn)
}

// ParseListWith reads one list. Skipped lines are reported through warn
// (which may be nil) once the list has been read; see the package
// documentation for the formats. An error (read failure, or input that is
// not a list: it wraps ErrNotAList) means nothing of this list was added.
func (b *Builder) ParseListWith(r io.Reader, opts ListOptions, warn func(ListWarning)) (ListStats, error) {
	b.thaw()
	name := opts.Name
	p := &listParser{name: name, b: b, snap: b.snapshot(), list: uint32(len(b.lists))}
	opts.BlockAddrs = slices.Clone(opts.BlockAddrs)
	b.lists = append(b.lists, listInfo{opts: opts, startUnit: b.idx.arena.end()})
	ok := false
	defer func() {
		if !ok {
			b.rollback(&p.snap)
		}
	}()
	// Room for the longest line with its CR and LF, and for the sample.
	br := bufio.NewReaderSize(r, max(MaxLineLen+2, sampleSize))
	if n := int(min(sizeHint(r), maxPresize)); n > 0 {
		// Size the index for the list at once, from the rules in its
		// first bytes, and give its tags the unit bits the arena will
		// need (records take at most ~1.3x the list's bytes).
		b.reserve(b.names+estimateNames(br, n), b.idx.arena.end()+uint32(n/unitSize*4/3))
	}
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
	if len(b.rules) > vIndexMask || b.idx.arena.limit() >= simpleID || len(b.text) > 1<<32-1 {
		return p.stats, fmt.Errorf("filter: %s: too many rules or names", name)
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

// Byte classes patternLine looks for, one table lookup a byte (bytes.
// ContainsAny was a tenth of the time spent loading a 1M-name list).
const (
	classURL     = 1 << iota // ':', '/', '?', '&', '=', ';', '#': a URL rule
	classPattern             // '*', '^', '|' inside the name: a pattern rule
)

var byteClasses = func() (t [256]uint8) {
	for _, c := range []byte(":/?&=;#") {
		t[c] |= classURL
	}
	for _, c := range []byte("*^|") {
		t[c] |= classPattern
	}
	return t
}()

// classesOf returns the union of the classes of b's bytes.
func classesOf(b []byte) uint8 {
	var m uint8
	for _, c := range b {
		m |= byteClasses[c]
	}
	return m
}

// sampleSize is how much of a list estimateNames reads ahead.
const sampleSize = 64 << 10

// estimateNames guesses the names in a list of size bytes from the share
// of rule lines (not empty, not comments) in its first sampleSize bytes.
func estimateNames(br *bufio.Reader, size int) int {
	sample, _ := br.Peek(min(size, sampleSize))
	if len(sample) == 0 {
		return 0
	}
	rules := 0
	for line := range bytes.Lines(sample) {
		line = bytes.TrimLeft(line, " \t")
		if len(line) > 0 && line[0] != '#' && line[0] != '!' && line[0] != '[' && line[0] != '\n' && line[0] != '\r' {
			rules++
		}
	}
	return int(int64(rules) * int64(size) / int64(len(sample)))
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
	p.nameWarn(line, tok, reason, kind)
}

// nameWarn reports one skipped name of a hosts line without counting a line.
func (p *listParser) nameWarn(line int, tok []byte, reason string, kind WarningKind) {
	if len(p.warnings) >= maxWarnings {
		p.suppressed++
		return
	}
	p.warnings = append(p.warnings, ListWarning{List: p.name, Line: line, Token: shortToken(tok), Reason: reason, Kind: kind})
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
				p.warn(lineNo, t, "cosmetic rule unsupported (dnstun filters DNS only)", Unsupported)
				return nil
			}
		}
	}
	var buf [8][]byte
	f := fields(buf[:0], t)
	if a, ok := p.parseAddr(f[0]); ok {
		if len(f) == 1 {
			// A bare address: AdGuard's response-IP rule.
			p.ipRule(lineNo, t, netip.PrefixFrom(a.WithZone(""), a.BitLen()), false, nil)
			return nil
		}
		p.hostsLine(lineNo, t, a, f[1:])
		return nil
	}
	if len(f) > 1 && bytes.IndexByte(t, '$') < 0 {
		p.warn(lineNo, t, "not a rule (several words and no address)", Malformed)
		return nil
	}
	p.patternLine(lineNo, t)
	return nil
}

func (p *listParser) hostsLine(lineNo int, text []byte, a netip.Addr, names [][]byte) {
	a = a.WithZone("")
	block := false
	for _, b := range blockingAddrs {
		if a == b {
			block = true
			break
		}
	}
	type badName struct {
		tok    []byte
		reason string
		kind   WarningKind
	}
	var bad []badName
	ignored, used := 0, 0
	single := len(names) == 1
	ri := int64(-1)
	added := false
	var first []byte // the line's first usable name: its address's reverse record
	for _, nb := range names {
		n, reason, wk := normalizeName(p.nameBuf[:0], nb)
		if reason != "" {
			bad = append(bad, badName{nb, reason, wk})
			continue
		}
		p.nameBuf = n
		if hostsBoilerplate[string(n)] {
			ignored++
			continue
		}
		used++
		if first == nil && !block {
			first = slices.Clone(n)
		}
		if block && single {
			if f := matchForm(text, n, true); f >= 0 {
				if p.b.attachSimple(p, n, true, f, lineNo) {
					added = true
					p.stats.Blocks++
				} else {
					p.stats.Duplicates++
				}
				continue
			}
		}
		if ri < 0 {
			r := rule{list: p.list, line: uint32(lineNo), form: noForm, flags: fExact | fNoBadfilter, kind: rkBlock}
			if !block {
				r.kind = rkHosts
				r.addrOff, r.addrLen = uint32(len(p.b.addrs)), 1
				p.b.addrs = append(p.b.addrs, a)
			}
			r.textOff, r.textLen = p.b.addText(text)
			ri = int64(len(p.b.rules))
			p.b.rules = append(p.b.rules, r)
		}
		if p.b.attach(p, n, uint32(ri)) {
			added = true
			if block {
				p.stats.Blocks++
			} else {
				p.stats.Answers++
			}
		} else {
			p.stats.Duplicates++
		}
	}
	p.b.dropUnused(ri, added)
	if added && !block {
		p.reverseRecord(lineNo, &p.b.rules[ri], a, first)
	}
	p.stats.Ignored += ignored
	if added {
		p.accepted++
		p.stats.Rules++
	}
	for i, bn := range bad {
		if i == 0 && used == 0 && ignored == 0 {
			// No name of the line was usable: the line counts as skipped.
			p.warn(lineNo, bn.tok, bn.reason, bn.kind)
			continue
		}
		p.nameWarn(lineNo, bn.tok, bn.reason, bn.kind)
	}
}

// reverseRecord adds the reverse (PTR) record of a hosts line: the
// address's in-addr.arpa or ip6.arpa name answers PTR queries with the
// line's first name, as AdGuard Home answers from a hosts file. It is a
// rule of the line (same text) and is not counted as one more rule.
func (p *listParser) reverseRecord(lineNo int, line *rule, a netip.Addr, name []byte) {
	b := p.b
	r := rule{list: p.list, line: uint32(lineNo), form: noForm, flags: fExact | fNoBadfilter, kind: rkHosts,
		textOff: line.textOff, textLen: line.textLen, ext: uint32(len(b.exts))}
	b.exts = append(b.exts, ruleExt{rw: rewriteSpec{cname: wireName(name), ptr: true}})
	ri := uint32(len(b.rules))
	b.rules = append(b.rules, r)
	if b.attach(p, reverseName(a), ri) {
		b.ptrs++
		return
	}
	b.rules, b.exts = b.rules[:ri], b.exts[:r.ext]
}

// reverseName returns the name PTR queries for a ask: d.c.b.a.in-addr.arpa
// for IPv4, the 32 nibbles in reverse and ip6.arpa for IPv6.
func reverseName(a netip.Addr) []byte {
	const hex = "0123456789abcdef"
	var out []byte
	if a.Is4() {
		b := a.As4()
		for i := 3; i >= 0; i-- {
			out = strconv.AppendUint(out, uint64(b[i]), 10)
			out = append(out, '.')
		}
		return append(out, "in-addr.arpa"...)
	}
	b := a.As16()
	for i := 15; i >= 0; i-- {
		out = append(out, hex[b[i]&0xf], '.', hex[b[i]>>4], '.')
	}
	return append(out, "ip6.arpa"...)
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

// patternLine handles an adblock-style or plain-domain line.
func (p *listParser) patternLine(lineNo int, t []byte) {
	tok := t
	allow := false
	if len(tok) >= 2 && tok[0] == '@' && tok[1] == '@' {
		allow = true
		tok = tok[2:]
	}
	pat, modText, ok := splitModifiers(tok)
	if !ok {
		p.warn(lineNo, t, "regex without a closing '/'", Malformed)
		return
	}
	var m *mods
	if modText != nil {
		var reason string
		var kind WarningKind
		m, reason, kind = parseMods(modText, allow)
		if reason != "" {
			p.warn(lineNo, t, reason, kind)
			return
		}
	}
	// Regular expressions.
	if len(pat) >= 2 && pat[0] == '/' && pat[len(pat)-1] == '/' {
		p.patternRule(lineNo, t, allow, m, pat, true)
		return
	}
	anchored, suffix := false, false
	core := pat
	switch {
	case len(core) >= 2 && core[0] == '|' && core[1] == '|':
		anchored, suffix = true, true
		core = core[2:]
	case len(core) >= 1 && core[0] == '|':
		anchored = true
		core = core[1:]
	}
	end := core
	end = bytes.TrimSuffix(end, []byte("|"))
	end = bytes.TrimSuffix(end, []byte("^"))
	// IP and CIDR rules (response inspection).
	if len(end) > 0 && bytes.IndexByte(end, '*') < 0 && (end[0] >= '0' && end[0] <= '9' || bytes.IndexByte(end, ':') >= 0) {
		if pf, ok := parseIPRule(end); ok {
			p.ipRule(lineNo, t, pf, allow, m)
			return
		}
	}
	if classesOf(core)&classURL != 0 {
		p.warn(lineNo, t, "URL rule (scheme, path, port or query) unsupported: DNS sees host names only", Unsupported)
		return
	}
	if len(end) == 0 && len(core) > 0 {
		p.warn(lineNo, t, "empty name", Malformed)
		return
	}
	if len(pat) == 0 || classesOf(end)&classPattern != 0 ||
		!anchored && (len(end) != len(core) || end[0] == '.' || end[0] == '-' || end[len(end)-1] == '-') {
		p.patternRule(lineNo, t, allow, m, pat, false)
		return
	}
	n, reason, wk := normalizeName(p.nameBuf[:0], end)
	if reason != "" {
		p.warn(lineNo, t, reason, wk)
		return
	}
	p.nameBuf = n
	exact := anchored && !suffix
	if m == nil && !allow {
		if f := matchForm(t, n, exact); f >= 0 {
			if p.b.attachSimple(p, n, exact, f, lineNo) {
				p.stats.Blocks++
				p.stats.Rules++
				p.accepted++
			} else {
				p.stats.Duplicates++
			}
			return
		}
	}
	r := p.newRule(lineNo, t, allow, m)
	if exact {
		r.flags |= fExact
	}
	if !anchored && !allow && m == nil {
		r.flags |= fNoBadfilter // a plain domain line
	}
	ri := uint32(len(p.b.rules))
	p.b.rules = append(p.b.rules, r)
	if p.b.attach(p, n, ri) {
		p.countKind(&r)
		p.stats.Rules++
		p.accepted++
	} else {
		p.stats.Duplicates++
		p.b.dropUnused(int64(ri), false)
	}
}

func (p *listParser) countKind(r *rule) {
	switch r.kind {
	case rkAllow, rkRewriteAllow:
		p.stats.Exceptions++
	case rkRewrite:
		p.stats.Answers++
	case rkBlock:
		p.stats.Blocks++
	}
}

// newRule makes the complex rule of an adblock-style line.
func (p *listParser) newRule(lineNo int, text []byte, allow bool, m *mods) rule {
	b := p.b
	r := rule{list: p.list, line: uint32(lineNo), form: noForm, kind: rkBlock}
	r.textOff, r.textLen = b.addText(text)
	if allow {
		r.kind = rkAllow
	}
	if m == nil {
		return r
	}
	if m.important {
		r.flags |= fImportant
	}
	e := ruleExt{types: m.types, notTypes: m.notTypes, clients: m.clients, notClients: m.notClients, denyallow: m.denyallow,
		procs: m.procs, notProcs: m.notProcs, modKey: m.key}
	if len(m.types)+len(m.notTypes)+len(m.clients)+len(m.notClients)+len(m.denyallow)+len(m.procs)+len(m.notProcs) > 0 {
		r.flags |= fCond
	}
	if len(m.clients) > 0 {
		r.flags |= fClient
	}
	switch {
	case m.badfilter:
		r.kind = rkBadfilter
		e.allowTarget = allow
	case m.rewrite && allow:
		r.kind = rkRewriteAllow
		e.rw, e.rwAny = m.rw, m.rwAny
	case m.rewrite:
		r.kind = rkRewrite
		e.rw = m.rw
		if m.rw.addr.IsValid() {
			r.addrOff, r.addrLen = uint32(len(b.addrs)), 1
			b.addrs = append(b.addrs, m.rw.addr)
		}
		if m.rw.txt != nil {
			r.txtOff, r.txtLen = uint32(len(b.txts)), 1
			b.txts = append(b.txts, m.rw.txt)
		}
	}
	r.ext = uint32(len(b.exts))
	b.exts = append(b.exts, e)
	return r
}

// normalizeName appends b to dst lower-cased, without one trailing dot,
// converted to punycode when it has non-ASCII labels (IDNA), and validates
// it (see the package documentation). On failure it returns a reason and
// whether the name is malformed or merely unsupported.
func normalizeName(dst []byte, b []byte) ([]byte, string, WarningKind) {
	if len(b) > 0 && b[len(b)-1] == '.' {
		b = b[:len(b)-1]
	}
	if len(b) == 0 {
		return dst, "empty name", Malformed
	}
	if len(b) > maxName {
		for _, c := range b {
			if c >= 0x80 {
				return normalizeIDN(dst, b)
			}
		}
		return dst, "name longer than 253 bytes", Malformed
	}
	start := len(dst)
	dst = slices.Grow(dst, len(b))[:start+len(b)]
	out := dst[start:]
	label := 0
	for i, c := range b {
		m := nameBytes[c]
		switch {
		case m == 0 && c >= 0x80:
			return normalizeIDN(dst[:start], b)
		case m == 0:
			return dst[:start], fmt.Sprintf("invalid character %q in name", c), Malformed
		case m == '.':
			if label == 0 {
				return dst[:start], "empty label in name", Malformed
			}
			label = 0
		default:
			label++
			if label > 63 {
				return dst[:start], "label longer than 63 bytes", Malformed
			}
		}
		out[i] = m
	}
	if label == 0 {
		return dst[:start], "empty label in name", Malformed
	}
	return dst, "", Malformed
}

// normalizeIDN is normalizeName for a name with non-ASCII bytes: IDNA
// (punycode) first.
func normalizeIDN(dst, b []byte) ([]byte, string, WarningKind) {
	a, err := toASCII(b)
	if err != nil {
		return dst, "invalid international name: " + err.Error(), Malformed
	}
	for _, c := range a {
		if c >= 0x80 {
			return dst, "invalid international name", Malformed
		}
	}
	return normalizeName(dst, a)
}

// nameBytes maps the bytes a name may hold to their lower case, '.' to
// itself, and every other byte to 0.
var nameBytes = func() (t [256]byte) {
	for c := 0; c < 256; c++ {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
			t[c] = byte(c)
		case c >= 'A' && c <= 'Z':
			t[c] = byte(c) + 'a' - 'A'
		}
	}
	return t
}()

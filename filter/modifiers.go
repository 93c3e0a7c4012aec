// SPDX-License-Identifier: MIT

package filter

import (
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// mods are the parsed $modifiers of one rule.
type mods struct {
	important, badfilter bool
	rewrite              bool
	rwAny                bool // $dnsrewrite without a value (exceptions: cancel all)
	rw                   rewriteSpec
	types, notTypes      []uint16
	clients, notClients  []netip.Prefix
	denyallow            [][]byte
	procs, notProcs      [][]byte
	key                  string // canonical form without badfilter
}

// rewriteSpec is a parsed $dnsrewrite value.
type rewriteSpec struct {
	rcode     uint8
	rcodeOnly bool // an error rcode: no records
	addr      netip.Addr
	cname     []byte // wire format
	ptr       bool   // cname is a PTR target (local reverse records)
	txt       []byte
}

// cancels reports whether the rewrite exception value x cancels a rewrite
// with value r, as AdGuard's urlfilter decides (dnsrewrite.go,
// matchException): a CNAME exception cancels that CNAME; an error rcode
// cancels every rewrite of that rcode; NOERROR cancels the record of the
// same type and value (and an empty NOERROR the empty ones).
func (x *rewriteSpec) cancels(r *rewriteSpec) bool {
	switch {
	case x.cname != nil && !x.ptr:
		return r.cname != nil && !r.ptr && string(r.cname) == string(x.cname)
	case x.rcode != r.rcode:
		return false
	case x.rcodeOnly:
		return true
	case x.addr.IsValid():
		return r.addr == x.addr
	case x.txt != nil:
		return r.txt != nil && string(r.txt) == string(x.txt)
	case x.ptr:
		return r.ptr && string(r.cname) == string(x.cname)
	}
	// An empty NOERROR cancels the empty NOERROR rewrites.
	return !r.addr.IsValid() && r.txt == nil && r.cname == nil
}

// splitModifiers splits a rule (without "@@") into its pattern and the text
// after '$' (nil when there is none). A regex keeps its '$' anchors: its
// modifiers follow the closing slash ("/re$/$important").
func splitModifiers(tok []byte) (pat, modText []byte, ok bool) {
	if len(tok) >= 3 && tok[0] == '/' {
		if tok[len(tok)-1] == '/' {
			return tok, nil, true
		}
		if i := bytes.LastIndex(tok, []byte("/$")); i > 0 {
			return tok[:i+1], tok[i+2:], true
		}
	}
	i := bytes.IndexByte(tok, '$')
	if i < 0 {
		return tok, nil, true
	}
	return tok[:i], tok[i+1:], true
}

// splitEscaped splits s on sep, honouring backslash escapes of sep, and
// unescapes them.
func splitEscaped(s []byte, sep byte) [][]byte {
	var out [][]byte
	var cur []byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\\' && i+1 < len(s) && s[i+1] == sep {
			cur = append(cur, sep)
			i++
			continue
		}
		if c == sep {
			out = append(out, cur)
			cur = nil
			continue
		}
		cur = append(cur, c)
	}
	return append(out, cur)
}

// unsupportedMods are AdGuard modifiers dnstun knows but does not implement.
var unsupportedMods = map[string]string{
	"ctag": "client tags", "domain": "browser-only", "third-party": "browser-only", "3p": "browser-only",
	"script": "browser-only", "image": "browser-only", "stylesheet": "browser-only", "popup": "browser-only",
	"document": "browser-only", "all": "browser-only", "xmlhttprequest": "browser-only", "subdocument": "browser-only",
	"match-case": "browser-only", "first-party": "browser-only", "1p": "browser-only", "redirect": "browser-only",
	"removeparam": "browser-only", "csp": "browser-only", "app": "app-specific", "network": "browser-only",
	"ping": "browser-only", "media": "browser-only", "font": "browser-only", "object": "browser-only",
	"websocket": "browser-only", "other": "browser-only", "urlblock": "browser-only", "elemhide": "browser-only",
	"generichide": "browser-only", "genericblock": "browser-only", "content": "browser-only", "jsinject": "browser-only",
}

// maxProcName bounds a $process name, in bytes.
const maxProcName = 255

// parseMods parses the comma-separated modifiers of a rule. It returns a
// warning reason for a line to skip.
func parseMods(text []byte, allow bool) (*mods, string, WarningKind) {
	m := &mods{}
	var keys []string
	for _, raw := range splitEscaped(text, ',') {
		item := trimSpace(raw)
		if len(item) == 0 {
			return nil, "empty modifier", Malformed
		}
		name, val, hasVal := bytes.Cut(item, []byte("="))
		lname := strings.ToLower(string(name))
		key := lname + "=" + string(val) // the canonical form, for $badfilter
		switch lname {
		case "important":
			if hasVal || m.important {
				return nil, "bad $important", Malformed
			}
			m.important = true
		case "badfilter":
			if hasVal || m.badfilter {
				return nil, "bad $badfilter", Malformed
			}
			m.badfilter = true
			continue // not part of the key
		case "dnstype":
			if !hasVal || m.types != nil || m.notTypes != nil {
				return nil, "bad $dnstype", Malformed
			}
			for _, t := range bytes.Split(val, []byte("|")) {
				neg := len(t) > 0 && t[0] == '~'
				if neg {
					t = t[1:]
				}
				n, ok := parseType(string(t))
				if !ok {
					return nil, fmt.Sprintf("unknown DNS type %q in $dnstype", t), Malformed
				}
				if neg {
					m.notTypes = append(m.notTypes, n)
				} else {
					m.types = append(m.types, n)
				}
			}
			key = lname + "=" + setKey(m.types, m.notTypes, func(n uint16) string { return strconv.Itoa(int(n)) })
		case "client":
			if !hasVal || m.clients != nil || m.notClients != nil {
				return nil, "bad $client", Malformed
			}
			for _, c := range splitEscaped(val, '|') {
				neg := len(c) > 0 && c[0] == '~'
				if neg {
					c = c[1:]
				}
				if len(c) > 0 && (c[0] == '\'' || c[0] == '"') {
					return nil, "$client by name unsupported (use an IP address or CIDR)", Unsupported
				}
				c = bytes.TrimSuffix(bytes.TrimPrefix(c, []byte("[")), []byte("]"))
				pf, ok := parseIPRule(c)
				if !ok {
					return nil, fmt.Sprintf("$client %q is not an IP address or CIDR (client names unsupported)", c), Unsupported
				}
				if neg {
					m.notClients = append(m.notClients, pf)
				} else {
					m.clients = append(m.clients, pf)
				}
			}
			key = lname + "=" + setKey(m.clients, m.notClients, netip.Prefix.String)
		case "denyallow":
			if !hasVal || m.denyallow != nil {
				return nil, "bad $denyallow", Malformed
			}
			for _, d := range bytes.Split(val, []byte("|")) {
				n, reason, _ := normalizeName(nil, d)
				if reason != "" || bytes.ContainsAny(d, "*~") {
					return nil, fmt.Sprintf("bad $denyallow domain %q", d), Malformed
				}
				m.denyallow = append(m.denyallow, n)
			}
			key = lname + "=" + setKey(m.denyallow, nil, func(b []byte) string { return string(b) })
		case "process":
			if !hasVal || m.procs != nil || m.notProcs != nil {
				return nil, "bad $process (want $process=NAME|~NAME...)", Malformed
			}
			for _, p := range bytes.Split(val, []byte("|")) {
				neg := len(p) > 0 && p[0] == '~'
				if neg {
					p = p[1:]
				}
				if len(p) == 0 || len(p) > maxProcName || bytes.IndexByte(p, ',') >= 0 {
					return nil, fmt.Sprintf("bad $process name %q (1 to %d bytes, no '|' or ',')", p, maxProcName), Malformed
				}
				p = bytes.ToLower(p)
				if neg {
					m.notProcs = append(m.notProcs, p)
				} else {
					m.procs = append(m.procs, p)
				}
			}
			key = lname + "=" + setKey(m.procs, m.notProcs, func(b []byte) string { return string(b) })
		case "dnsrewrite":
			if m.rewrite {
				return nil, "several $dnsrewrite", Malformed
			}
			m.rewrite = true
			if len(val) == 0 {
				// "$dnsrewrite" or "$dnsrewrite=": an exception cancelling
				// every rewrite; a rule answering NOERROR with no records
				// (AdGuard's urlfilter reads both as an empty rewrite).
				m.rwAny = allow
				break
			}
			rw, reason, kind := parseRewrite(val)
			if reason != "" {
				return nil, reason, kind
			}
			m.rw = rw
		default:
			if why, ok := unsupportedMods[lname]; ok {
				return nil, fmt.Sprintf("modifier $%s unsupported (%s)", lname, why), Unsupported
			}
			return nil, fmt.Sprintf("modifier $%s unsupported", lname), Unsupported
		}
		keys = append(keys, key)
	}
	slices.Sort(keys)
	m.key = strings.Join(keys, ",")
	return m, "", Malformed
}

// setKey writes an include/exclude value list as a set: sorted, without
// duplicates, the excluded ones with '~'. Two spellings of one set (another
// order, another spelling of an address or a type) give one key.
func setKey[T any](in, out []T, str func(T) string) string {
	var parts []string
	for _, v := range in {
		parts = append(parts, str(v))
	}
	for _, v := range out {
		parts = append(parts, "~"+str(v))
	}
	slices.Sort(parts)
	return strings.Join(slices.Compact(parts), "|")
}

// rcodes are the response codes a $dnsrewrite may answer with (the 4-bit
// ones of RFC 1035 and RFC 2136, by their usual names).
var rcodes = map[string]uint8{
	"NOERROR": 0, "FORMERR": 1, "SERVFAIL": 2, "NXDOMAIN": 3, "NOTIMP": 4, "REFUSED": 5,
	"YXDOMAIN": 6, "YXRRSET": 7, "NXRRSET": 8, "NOTAUTH": 9, "NOTZONE": 10,
}

// extendedRcodes need EDNS (RFC 6891): a rewrite cannot answer them.
var extendedRcodes = map[string]bool{
	"BADSIG": true, "BADVERS": true, "BADKEY": true, "BADTIME": true, "BADMODE": true,
	"BADNAME": true, "BADALG": true, "BADTRUNC": true, "BADCOOKIE": true,
}

// shortKeywords are the rcodes the short form takes: REFUSED (AdGuard's
// one keyword) and NXDOMAIN, SERVFAIL, NOERROR (dnstun's additions).
var shortKeywords = map[string]uint8{"NOERROR": 0, "SERVFAIL": 2, "NXDOMAIN": 3, "REFUSED": 5}

// allUpper reports whether s is non-empty and only ASCII capital letters.
func allUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
	}
	return s != ""
}

// parseRewrite parses a non-empty $dnsrewrite value in AdGuard's short
// form (an rcode keyword in capitals, an IP address, or a CNAME target) or
// full form (RCODE;RRTYPE;VALUE, where RCODE and RRTYPE take any case).
func parseRewrite(val []byte) (rewriteSpec, string, WarningKind) {
	var rw rewriteSpec
	s := string(val)
	parts := strings.SplitN(s, ";", 3)
	switch len(parts) {
	case 1:
		if allUpper(s) {
			rc, ok := shortKeywords[s]
			if !ok {
				return rw, fmt.Sprintf("unknown $dnsrewrite keyword %q (REFUSED, NXDOMAIN, SERVFAIL, NOERROR; other rcodes take the full form RCODE;;)", s), Malformed
			}
			rw.rcode, rw.rcodeOnly = rc, rc != 0
			return rw, "", Malformed
		}
		if a, err := netip.ParseAddr(s); err == nil {
			rw.addr = a.WithZone("")
			if rw.addr.Is4In6() {
				rw.addr = rw.addr.Unmap() // an IPv4 address, as AdGuard reads it
			}
			return rw, "", Malformed
		}
		return rewriteCNAME(rw, val)
	case 2:
		return rw, fmt.Sprintf("$dnsrewrite %q: the full form is RCODE;RRTYPE;VALUE (two ';')", s), Malformed
	}
	up := strings.ToUpper(parts[0])
	rc, ok := rcodes[up]
	if !ok {
		if extendedRcodes[up] {
			return rw, fmt.Sprintf("$dnsrewrite rcode %s unsupported (an extended rcode needs EDNS)", parts[0]), Unsupported
		}
		return rw, fmt.Sprintf("unknown $dnsrewrite rcode %q", parts[0]), Malformed
	}
	rw.rcode = rc
	if rc != 0 {
		// An error rcode answers no records: AdGuard ignores the rest.
		rw.rcodeOnly = true
		return rw, "", Malformed
	}
	typ, value := strings.ToUpper(parts[1]), parts[2]
	switch typ {
	case "":
		if value != "" {
			return rw, fmt.Sprintf("$dnsrewrite value %q without a type", value), Malformed
		}
		return rw, "", Malformed // empty NOERROR: NODATA
	case "A", "AAAA":
		a, err := netip.ParseAddr(value)
		if err == nil && typ == "A" {
			a = a.Unmap()
		}
		if err != nil || a.Is4() != (typ == "A") {
			fam := map[bool]string{true: "4", false: "6"}[typ == "A"]
			return rw, fmt.Sprintf("$dnsrewrite %s value %q is not an IPv%s address", parts[1], value, fam), Malformed
		}
		rw.addr = a.WithZone("")
		return rw, "", Malformed
	case "CNAME":
		return rewriteCNAME(rw, []byte(value))
	case "PTR":
		rw, reason, kind := rewriteCNAME(rw, []byte(value))
		rw.ptr = true
		return rw, reason, kind
	case "TXT":
		if len(value) > 255 {
			return rw, "$dnsrewrite TXT value longer than 255 bytes", Malformed
		}
		rw.txt = []byte(value)
		return rw, "", Malformed
	}
	if _, known := parseType(typ); known {
		return rw, fmt.Sprintf("$dnsrewrite type %s unsupported (A, AAAA, CNAME, TXT, PTR)", parts[1]), Unsupported
	}
	return rw, fmt.Sprintf("unknown $dnsrewrite type %q", parts[1]), Malformed
}

func rewriteCNAME(rw rewriteSpec, target []byte) (rewriteSpec, string, WarningKind) {
	n, reason, _ := normalizeName(nil, target)
	if reason != "" {
		return rw, fmt.Sprintf("$dnsrewrite target %q: %s", target, reason), Malformed
	}
	rw.cname = wireName(n)
	return rw, "", Malformed
}

// wireName converts a validated dotted name to DNS wire format.
func wireName(n []byte) []byte {
	out := make([]byte, 0, len(n)+2)
	for len(n) > 0 {
		l, rest, _ := bytes.Cut(n, []byte("."))
		out = append(out, byte(len(l)))
		out = append(out, l...)
		n = rest
	}
	return append(out, 0)
}

// parseIPRule parses "192.0.2.1", "2001:db8::1" or a CIDR prefix.
func parseIPRule(b []byte) (netip.Prefix, bool) {
	s := string(b)
	if strings.IndexByte(s, '/') >= 0 {
		pf, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, false
		}
		return pf.Masked(), true
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a, a.BitLen()), true
}

var typeNames = map[string]uint16{
	"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "HINFO": 13, "MX": 15, "TXT": 16, "AAAA": 28,
	"SRV": 33, "NAPTR": 35, "DS": 43, "SSHFP": 44, "RRSIG": 46, "NSEC": 47, "DNSKEY": 48, "TLSA": 52,
	"SVCB": 64, "HTTPS": 65, "ANY": 255, "CAA": 257,
}

func parseType(s string) (uint16, bool) {
	u := strings.ToUpper(s)
	if n, ok := typeNames[u]; ok {
		return n, true
	}
	if rest, ok := strings.CutPrefix(u, "TYPE"); ok {
		n, err := strconv.ParseUint(rest, 10, 16)
		return uint16(n), err == nil
	}
	return 0, false
}

// SPDX-License-Identifier: MIT

package filter

import (
	"net/netip"
	"regexp"
)

// ruleKind is what a complex rule does when it matches.
type ruleKind uint8

const (
	rkBlock        ruleKind = iota // block (class block or important block)
	rkAllow                        // @@ exception
	rkRewrite                      // $dnsrewrite
	rkRewriteAllow                 // @@...$dnsrewrite[=value]: cancels rewrites only
	rkBadfilter                    // never matches; disables its twin at Build
	rkHosts                        // a hosts line with an answering address, or its reverse (PTR) record
)

// rule flags.
const (
	fExact       = 1 << iota // the name only, not its subdomains
	fImportant               // $important
	fDisabled                // disabled by a $badfilter rule
	fCond                    // has $dnstype, $client, $denyallow or $process conditions
	fClient                  // has $client (EDE Filtered)
	fIP                      // an IP/CIDR rule (response inspection only)
	fPattern                 // a regex or wildcard rule
	fNoBadfilter             // a hosts or plain-domain line: $badfilter does not apply (AdGuard's KB)
)

const noForm = 0xff

// rule is a complex rule: anything that is not a simple block of one name.
// Its text is either explicit (text[textOff:][:textLen]) or, when form is
// not noForm, rebuilt from a form and the name of record textOff.
type rule struct {
	list, line       uint32
	textOff, textLen uint32
	addrOff, txtOff  uint32 // own answer addresses / TXT strings
	addrLen, txtLen  uint16
	form             uint8
	kind             ruleKind
	flags            uint8
	ext              uint32 // index into exts; 0 = none
}

// ruleExt holds the rarely used parts of a rule.
type ruleExt struct {
	types, notTypes     []uint16
	clients, notClients []netip.Prefix
	denyallow           [][]byte // normalized names
	procs, notProcs     [][]byte // $process names, lower-case ASCII
	rw                  rewriteSpec
	rwAny               bool   // for rkRewriteAllow: no value, cancels every rewrite it may
	modKey              string // canonical modifiers without badfilter, for $badfilter
	allowTarget         bool   // for rkBadfilter: the disabled rule is an exception
	pattern             string // pattern rules: canonical pattern; IP rules: the prefix
	re                  *regexp.Regexp
	lit                 string // pattern rules: a literal every match contains ("" = none)
	prefix              netip.Prefix
}

func (r *rule) important() bool { return r.flags&fImportant != 0 }

// SPDX-License-Identifier: MIT

package filter

import (
	"fmt"
	"net/netip"
	"strings"
	"sync/atomic"
)

// Action is what the engine does with a query.
type Action uint8

const (
	// Forward sends the query to an upstream resolver.
	Forward Action = iota
	// Block answers at once with the Decision's Mode (and Addrs for
	// ModeCustom), TTL and EDE.
	Block
	// Answer answers at once from the Decision: Rcode, Addrs (A/AAAA, the
	// engine picks by qtype; NODATA when none fits), CNAME and TXT. Local
	// hosts records and $dnsrewrite rules answer this way.
	Answer
)

func (a Action) String() string {
	switch a {
	case Forward:
		return "forward"
	case Block:
		return "block"
	case Answer:
		return "answer"
	}
	return fmt.Sprintf("Action(%d)", uint8(a))
}

// BlockMode is how a blocked query is answered.
type BlockMode uint8

const (
	// ModeDefault means "the engine's configured default mode".
	ModeDefault BlockMode = iota
	// ModeNXDomain answers NXDOMAIN.
	ModeNXDomain
	// ModeNull answers 0.0.0.0 / :: for A / AAAA (NODATA for other types).
	ModeNull
	// ModeRefused answers REFUSED.
	ModeRefused
	// ModeNoData answers NOERROR with no records.
	ModeNoData
	// ModeCustom answers with Decision.Addrs (the list's configured block
	// addresses), NODATA for types they do not cover.
	ModeCustom
)

var modeNames = [...]string{
	ModeDefault:  "default",
	ModeNXDomain: "nxdomain",
	ModeNull:     "null",
	ModeRefused:  "refused",
	ModeNoData:   "nodata",
	ModeCustom:   "custom",
}

func (m BlockMode) String() string {
	if int(m) < len(modeNames) {
		return modeNames[m]
	}
	return fmt.Sprintf("BlockMode(%d)", uint8(m))
}

// ParseBlockMode parses a configured block mode: "nxdomain", "null",
// "refused" or "nodata" (case and surrounding space are ignored). "default"
// is not accepted: it is what rules say, not something an engine can be
// configured to. Custom addresses are parsed by [ParseBlockSpec].
func ParseBlockMode(s string) (BlockMode, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	for m := ModeNXDomain; m < ModeCustom; m++ {
		if modeNames[m] == t {
			return m, nil
		}
	}
	return ModeDefault, fmt.Errorf("filter: unknown block mode %q (valid: nxdomain, null, refused, nodata, or IP addresses)", s)
}

// ParseBlockSpec parses a block mode as ParseBlockMode does, and also a
// comma-separated list of IP addresses ("192.0.2.1,2001:db8::1"), which
// gives ModeCustom and the addresses.
func ParseBlockSpec(s string) (BlockMode, []netip.Addr, error) {
	if m, err := ParseBlockMode(s); err == nil {
		return m, nil, nil
	}
	var addrs []netip.Addr
	for f := range strings.SplitSeq(s, ",") {
		a, err := netip.ParseAddr(strings.TrimSpace(f))
		if err != nil {
			return ModeDefault, nil, fmt.Errorf("filter: unknown block mode %q (valid: nxdomain, null, refused, nodata, or IP addresses)", s)
		}
		addrs = append(addrs, a.WithZone(""))
	}
	return ModeCustom, addrs, nil
}

// RFC 8914 extended DNS error codes a Decision may carry.
const (
	EDEBlocked  uint16 = 15 // the operator's policy (lists configured for everyone)
	EDEFiltered uint16 = 17 // a policy the client asked for ($client rules)
)

// RuleID names one rule of a Set; 0 means no rule. IDs are valid for the
// Set that returned them only.
type RuleID uint32

// RuleSource is where a rule came from, for `dnstun explain` and logs.
type RuleSource struct {
	List string // the list name given to ParseList (the path for LoadFiles)
	Line int    // 1-based line number (0 for built-in rules)
	Text string // the rule as written, without surrounding space, line end and trailing comment
}

// Decision is the verdict on one query. It is a plain value; its slices
// alias the Set's immutable memory and must not be modified.
type Decision struct {
	// The scalar fields come first and the slices after, with no padding:
	// 112 bytes, seven 16-byte words, which Go copies without the
	// overlapping moves that stall store forwarding (the Decision is
	// returned by value through the hot path).

	Action Action
	// Mode is the block mode for Block: the list's mode (ListOptions.Mode)
	// or, for built-in signals, the mode they need. ModeDefault means the
	// engine's configured default.
	Mode BlockMode
	// Rcode is the response code of an Answer ($dnsrewrite=REFUSED etc.);
	// 0 (NOERROR) otherwise.
	Rcode uint8
	// EDE is the RFC 8914 INFO-CODE to attach when the query had EDNS:
	// EDEBlocked or EDEFiltered for blocks, 0 for none.
	EDE uint16
	// Rule is the rule that decided: the block, the answer, or (with
	// Forward) the exception that un-blocked the name. 0 when no rule matched.
	Rule RuleID
	// TTL of the answer records; 0 means the engine's configured TTL.
	TTL uint32
	// Addrs: for Answer, the local addresses (hosts lines, $dnsrewrite A
	// and AAAA), both families, the engine picks those matching the qtype
	// and answers NODATA when none does. For Block with ModeCustom, the
	// list's block addresses.
	Addrs []netip.Addr
	// CNAME is the target of a $dnsrewrite CNAME answer in DNS wire
	// format (uncompressed labels ending with the root), or nil. The engine
	// answers with the CNAME and resolves the target through its normal path.
	CNAME []byte
	// PTR is the target of a $dnsrewrite PTR answer (NOERROR;PTR;name, for
	// local reverse records), in wire format, answered to PTR queries.
	PTR []byte
	// TXT are the TXT strings of a $dnsrewrite TXT answer (each at most
	// 255 bytes, without the length byte), for TXT queries.
	TXT [][]byte
}

// Query is one question as the engine sees it. Decide keeps none of its
// slices.
type Query struct {
	Name   []byte     // lower-case, labels joined by '.', no trailing dot, at most 255 bytes
	QType  uint16     // the question type (1 A, 28 AAAA, ...)
	Client netip.Addr // who asked; the zero Addr when unknown
	// Proc is the name of the asking process (Linux: its comm), Exe the
	// base name of its executable; nil when unknown. $process rules
	// compare both, ignoring ASCII case.
	Proc, Exe []byte
}

// Filter is what the engine calls for every query.
//
// name is lower-case, labels joined by '.', no trailing dot (the root is
// empty), at most 253 bytes; it may contain arbitrary bytes. Decide must not
// allocate or retain name.
type Filter interface {
	Decide(name []byte, qtype uint16) Decision
	DecideQuery(q *Query) Decision
	InspectAnswer(cnames [][]byte, addrs []netip.Addr, client netip.Addr) Decision
}

// Live holds the current Set; the engine decides through it while a reload
// builds the next Set off the hot path and publishes it with Store.
type Live struct {
	p atomic.Pointer[Set]
}

var _ Filter = (*Set)(nil)
var _ Filter = (*Live)(nil)

// NewLive returns a Live holding s (which may be nil: forward everything).
func NewLive(s *Set) *Live {
	l := &Live{}
	l.p.Store(s)
	return l
}

// Load returns the current Set.
func (l *Live) Load() *Set { return l.p.Load() }

// Store publishes s; later Decide calls use it.
func (l *Live) Store(s *Set) { l.p.Store(s) }

// Decide decides with the current Set.
func (l *Live) Decide(name []byte, qtype uint16) Decision {
	return l.p.Load().Decide(name, qtype)
}

// DecideQuery decides with the current Set.
func (l *Live) DecideQuery(q *Query) Decision {
	return l.p.Load().DecideQuery(q)
}

// UsesProcess reports whether the current Set has $process rules.
func (l *Live) UsesProcess() bool {
	return l.p.Load().UsesProcess()
}

// InspectAnswer inspects an upstream answer with the current Set.
func (l *Live) InspectAnswer(cnames [][]byte, addrs []netip.Addr, client netip.Addr) Decision {
	return l.p.Load().InspectAnswer(cnames, addrs, client)
}

// SPDX-License-Identifier: MIT

package filter

import (
	"bytes"
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
	// Block answers at once with the Decision's Mode.
	Block
	// Answer answers at once from Decision.Addrs.
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
)

var modeNames = [...]string{
	ModeDefault:  "default",
	ModeNXDomain: "nxdomain",
	ModeNull:     "null",
	ModeRefused:  "refused",
	ModeNoData:   "nodata",
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
// configured to.
func ParseBlockMode(s string) (BlockMode, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	for m := ModeNXDomain; int(m) < len(modeNames); m++ {
		if modeNames[m] == t {
			return m, nil
		}
	}
	return ModeDefault, fmt.Errorf("filter: unknown block mode %q (valid: nxdomain, null, refused, nodata)", s)
}

// RuleID names one rule of a Set; 0 means no rule.
type RuleID uint32

// RuleSource is where a rule came from, for `dnstun explain` and logs.
type RuleSource struct {
	List string // the list name given to ParseList (the path for LoadFiles)
	Line int    // 1-based line number
	Text string // the rule as written, without surrounding space, line end and trailing comment
}

// Decision is the verdict on one query. It is a plain value; Addrs (for
// Answer) aliases the Set's immutable memory and must not be modified.
type Decision struct {
	Action Action
	// Mode is the block mode for Block; ModeDefault means the engine's
	// configured default. Every rule of this version uses ModeDefault.
	Mode BlockMode
	// Addrs are the local addresses for Answer, of both families: the
	// engine picks those matching the qtype and answers NODATA when there
	// are none.
	Addrs []netip.Addr
	// Rule is the rule that decided: the block, the local answer, or (with
	// Forward) the exception that un-blocked the name. 0 when no rule matched.
	Rule RuleID
}

// Filter is what the engine calls for every query.
//
// name is lower-case, labels joined by '.', no trailing dot (the root is
// empty), at most 253 bytes; it may contain arbitrary bytes. Decide must not
// allocate or retain name.
type Filter interface {
	Decide(name []byte, qtype uint16) Decision
}

// Index values: the top two bits tag the value, the rest is a RuleID or a
// node index. Most names carry a single block rule and need no node, which
// keeps a Set to one map entry per name (the 1M-name memory budget).
const (
	tagShift  = 30
	valueMask = 1<<tagShift - 1
	tagSuffix = 0 // value is the RuleID of a "name and subdomains" block
	tagExact  = 1 // value is the RuleID of an exact-name block
	tagNode   = 2 // value is an index into Set.nodes

	// maxRules keeps RuleIDs and node indexes within valueMask.
	maxRules = valueMask
)

// node holds every rule attached to one name when a single tagged value is
// not enough.
type node struct {
	exact, suffix           RuleID // blocks
	allowExact, allowSuffix RuleID // exceptions
	answer                  RuleID // local answer (first line that gave one)
	addrOff, addrLen        uint32 // Set.addrs[addrOff:][:addrLen]
}

// ruleRec is the compact source of one rule; its text lives in Set.text.
type ruleRec struct {
	list    uint32 // index into Set.lists
	line    uint32
	textOff uint32
	textLen uint32
}

// Set is an immutable, compiled rule set. The zero value and nil forward
// everything. Safe for concurrent use.
type Set struct {
	index    map[string]uint32 // name -> tagged value; keys slice one arena string
	nodes    []node
	addrs    []netip.Addr
	rules    []ruleRec // rules[id-1]
	lists    []string
	text     string
	hasAllow bool // any exception at all; when false a block ends the walk
}

// Len returns the number of rules in the set.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return len(s.rules)
}

// Names returns the number of distinct names the set has rules for.
func (s *Set) Names() int {
	if s == nil {
		return 0
	}
	return len(s.index)
}

// Rule returns the source of rule id.
func (s *Set) Rule(id RuleID) (RuleSource, bool) {
	if s == nil || id == 0 || int(id) > len(s.rules) {
		return RuleSource{}, false
	}
	r := s.rules[id-1]
	return RuleSource{
		List: s.lists[r.list],
		Line: int(r.line),
		Text: s.text[r.textOff : r.textOff+r.textLen],
	}, true
}

// Decide returns the decision for name (see Filter for its form). qtype is
// not used by this version's rules; it is part of the signature for
// $dnstype-style rules. Decide does not allocate.
//
// It walks the label boundaries from the full name toward the TLD with one
// map probe per suffix; m[string(b)] does not allocate.
func (s *Set) Decide(name []byte, qtype uint16) Decision {
	_ = qtype
	if s == nil || len(s.index) == 0 || len(name) == 0 {
		return Decision{}
	}
	var block RuleID
	for i := 0; i < len(name); {
		if v, ok := s.index[string(name[i:])]; ok {
			id := RuleID(v & valueMask)
			switch v >> tagShift {
			case tagSuffix:
				if block == 0 {
					block = id
				}
			case tagExact:
				if i == 0 {
					block = id
				}
			default:
				n := &s.nodes[id]
				if i == 0 {
					if n.answer != 0 {
						return Decision{
							Action: Answer,
							Addrs:  s.addrs[n.addrOff : n.addrOff+n.addrLen : n.addrOff+n.addrLen],
							Rule:   n.answer,
						}
					}
					if n.allowExact != 0 {
						return Decision{Action: Forward, Rule: n.allowExact}
					}
				}
				if n.allowSuffix != 0 {
					return Decision{Action: Forward, Rule: n.allowSuffix}
				}
				if block == 0 {
					if i == 0 && n.exact != 0 {
						block = n.exact
					} else {
						block = n.suffix
					}
				}
			}
			if block != 0 && !s.hasAllow {
				break
			}
		}
		j := bytes.IndexByte(name[i:], '.')
		if j < 0 {
			break
		}
		i += j + 1
	}
	if block != 0 {
		return Decision{Action: Block, Mode: ModeDefault, Rule: block}
	}
	return Decision{}
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

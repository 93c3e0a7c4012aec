// SPDX-License-Identifier: MIT

package macos

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// Kind is the type of a dynamic-store Value.
type Kind uint8

// The kinds scutil prints. Numbers, booleans (1/0 or TRUE/FALSE) and data
// print as scalars and are kept as their text.
const (
	Scalar Kind = iota
	Array
	Dictionary
)

// Value is one value of an scutil dump.
type Value struct {
	Kind  Kind
	Str   string           // Scalar
	Items []Value          // Array, in index order
	Dict  map[string]Value // Dictionary
}

// Get returns the value of key in a dictionary.
func (v Value) Get(key string) (Value, bool) {
	if v.Kind != Dictionary {
		return Value{}, false
	}
	e, ok := v.Dict[key]
	return e, ok
}

// String returns the scalar at key, or "".
func (v Value) String(key string) string {
	e, ok := v.Get(key)
	if !ok || e.Kind != Scalar {
		return ""
	}
	return e.Str
}

// Strings returns the scalars of the array at key (nil when key is absent
// or not an array of scalars).
func (v Value) Strings(key string) []string {
	e, ok := v.Get(key)
	if !ok || e.Kind != Array {
		return nil
	}
	var out []string
	for _, it := range e.Items {
		if it.Kind == Scalar {
			out = append(out, it.Str)
		}
	}
	return out
}

// Addrs returns the addresses of the array at key (ServerAddresses and the
// like); entries that are not addresses are skipped.
func (v Value) Addrs(key string) []netip.Addr {
	var out []netip.Addr
	for _, s := range v.Strings(key) {
		if a, err := netip.ParseAddr(s); err == nil {
			out = append(out, a)
		}
	}
	return out
}

// Shown is the answer to one "show <key>" command: the key's value, or the
// message scutil printed instead (" No such key" when the key is absent).
type Shown struct {
	Value   *Value
	Message string
}

// Missing reports whether scutil said the key does not exist.
func (s Shown) Missing() bool { return s.Value == nil && s.Message == "No such key" }

// ErrNoDump means the text held no value and no message at all.
var ErrNoDump = errors.New("scutil printed nothing")

// ParseShows reads the output of an scutil script of "show" commands, one
// Shown per command, in order. Format (configd's scutil, the dump of
// _SCCopyDescription): a value starts with "<dictionary> {" or
// "<array> {" at the start of a line, each entry on its own line as
// "key : value" (arrays: "index : value"), nested values indented by two
// spaces, closed by "}" at the opening line's indent; a command that fails
// prints its error on one line indented by two spaces ("  No such key").
func ParseShows(out string) ([]Shown, error) {
	lines := splitLines(out)
	var res []Shown
	for i := 0; i < len(lines); {
		l := strings.TrimSpace(lines[i])
		switch {
		case l == "":
			i++
		case l == "<dictionary> {" || l == "<array> {":
			v, next, err := parseBlock(lines, i)
			if err != nil {
				return res, err
			}
			res = append(res, Shown{Value: &v})
			i = next
		default:
			res = append(res, Shown{Message: l})
			i++
		}
	}
	if len(res) == 0 {
		return nil, ErrNoDump
	}
	return res, nil
}

// ParseShow reads the output of a single "show <key>": the value, or an
// error saying what scutil printed instead. missing is true when the key
// does not exist (not an error).
func ParseShow(out string) (v Value, missing bool, err error) {
	res, err := ParseShows(out)
	if err != nil {
		return Value{}, false, err
	}
	if len(res) != 1 {
		return Value{}, false, fmt.Errorf("scutil printed %d values where one was expected: %q", len(res), clip(out))
	}
	if res[0].Missing() {
		return Value{}, true, nil
	}
	if res[0].Value == nil {
		return Value{}, false, fmt.Errorf("scutil: %s", res[0].Message)
	}
	return *res[0].Value, false, nil
}

// parseBlock parses the value opened on lines[i] and returns it with the
// index of the line after its closing brace.
func parseBlock(lines []string, i int) (Value, int, error) {
	open := strings.TrimSpace(lines[i])
	v := Value{Kind: Dictionary, Dict: map[string]Value{}}
	if strings.HasPrefix(open, "<array>") || strings.HasSuffix(open, "<array> {") {
		v = Value{Kind: Array}
	}
	for i++; i < len(lines); i++ {
		raw := lines[i]
		l := strings.TrimLeft(raw, " \t")
		if strings.TrimSpace(l) == "}" {
			return v, i + 1, nil
		}
		if strings.TrimSpace(l) == "" {
			continue
		}
		key, val, ok := cutEntry(l)
		if !ok {
			return v, i, fmt.Errorf("scutil dump line %d: %q is not \"key : value\"", i+1, raw)
		}
		var e Value
		if val == "<dictionary> {" || val == "<array> {" {
			var err error
			e, i, err = parseBlock(lines, i)
			if err != nil {
				return v, i, err
			}
			i-- // the loop's i++ moves past the closing brace
		} else {
			e = Value{Kind: Scalar, Str: val}
		}
		if v.Kind == Array {
			v.Items = append(v.Items, e)
		} else {
			v.Dict[key] = e
		}
	}
	return v, i, fmt.Errorf("scutil dump: %q is not closed", open)
}

// cutEntry splits "key : value". An empty string value prints as "key : "
// (kept as ""), which a copy may have lost its trailing space: "key :".
func cutEntry(l string) (key, val string, ok bool) {
	if k, v, found := strings.Cut(l, " : "); found {
		return k, strings.TrimRight(v, " \t"), true
	}
	if k, found := strings.CutSuffix(strings.TrimRight(l, " \t"), " :"); found {
		return k, "", true
	}
	return "", "", false
}

// splitLines splits text into lines without their "\n" or "\r\n".
func splitLines(s string) []string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimSuffix(l, "\r")
	}
	return lines
}

// clip shortens text quoted in an error.
func clip(s string) string {
	const max = 400
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}

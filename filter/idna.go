// SPDX-License-Identifier: MIT

package filter

import (
	"errors"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// idnaProfile converts list names to their ASCII form with UTS #46
// (mapping, as for lookups: full-width letters and dots, case, ...),
// non-transitional, with the bidi rule, but without the STD3 restriction
// to letters, digits and '-': '_' stays allowed, as in ASCII names.
var idnaProfile = idna.New(
	idna.MapForLookup(),
	idna.StrictDomainName(false),
	idna.Transitional(false),
	idna.BidiRule(),
)

// toASCII converts a name with non-ASCII characters to its IDNA ASCII form.
func toASCII(b []byte) ([]byte, error) {
	if !utf8.Valid(b) {
		return nil, errors.New("not UTF-8")
	}
	s, err := idnaProfile.ToASCII(string(b))
	if err != nil {
		return nil, err
	}
	return []byte(s), nil
}

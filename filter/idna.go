// SPDX-License-Identifier: MIT

package filter

import (
	"errors"
	"strings"
	"unicode/utf8"
)

// toASCII converts a name with non-ASCII labels to its IDNA ASCII form:
// the label separators U+3002, U+FF0E and U+FF61 become '.', labels are
// lower-cased (Unicode simple case folding, not the full UTS #46 mapping)
// and every non-ASCII label becomes "xn--" + its Punycode (RFC 3492).
func toASCII(b []byte) ([]byte, error) {
	if !utf8.Valid(b) {
		return nil, errors.New("not UTF-8")
	}
	s := strings.NewReplacer("\u3002", ".", "\uff0e", ".", "\uff61", ".").Replace(string(b))
	s = strings.ToLower(s)
	var out []byte
	for i, label := range strings.Split(s, ".") {
		if i > 0 {
			out = append(out, '.')
		}
		ascii := true
		for j := 0; j < len(label); j++ {
			if label[j] >= 0x80 {
				ascii = false
				break
			}
		}
		if ascii {
			out = append(out, label...)
			continue
		}
		enc, err := punycodeEncode([]rune(label))
		if err != nil {
			return nil, err
		}
		out = append(out, "xn--"...)
		out = append(out, enc...)
	}
	return out, nil
}

// Punycode parameters (RFC 3492 §5).
const (
	pcBase        = 36
	pcTMin        = 1
	pcTMax        = 26
	pcSkew        = 38
	pcDamp        = 700
	pcInitialBias = 72
	pcInitialN    = 128
)

func pcAdapt(delta, numPoints int, first bool) int {
	if first {
		delta /= pcDamp
	} else {
		delta /= 2
	}
	delta += delta / numPoints
	k := 0
	for delta > ((pcBase-pcTMin)*pcTMax)/2 {
		delta /= pcBase - pcTMin
		k += pcBase
	}
	return k + (pcBase-pcTMin+1)*delta/(delta+pcSkew)
}

func pcDigit(d int) byte {
	if d < 26 {
		return byte('a' + d)
	}
	return byte('0' + d - 26)
}

// punycodeEncode is RFC 3492 §6.3.
func punycodeEncode(in []rune) ([]byte, error) {
	var out []byte
	for _, r := range in {
		if r < 0x80 {
			out = append(out, byte(r))
		}
	}
	b := len(out)
	h := b
	if b > 0 {
		out = append(out, '-')
	}
	n, delta, bias := pcInitialN, 0, pcInitialBias
	for h < len(in) {
		m := int(utf8.MaxRune) + 1
		for _, r := range in {
			if int(r) >= n && int(r) < m {
				m = int(r)
			}
		}
		if (m-n)*(h+1) > 1<<30-delta {
			return nil, errors.New("punycode overflow")
		}
		delta += (m - n) * (h + 1)
		n = m
		for _, r := range in {
			if int(r) < n {
				delta++
			}
			if int(r) == n {
				q := delta
				for k := pcBase; ; k += pcBase {
					t := k - bias
					if t < pcTMin {
						t = pcTMin
					} else if t > pcTMax {
						t = pcTMax
					}
					if q < t {
						break
					}
					out = append(out, pcDigit(t+(q-t)%(pcBase-t)))
					q = (q - t) / (pcBase - t)
				}
				out = append(out, pcDigit(q))
				bias = pcAdapt(delta, h+1, h == b)
				delta = 0
				h++
			}
		}
		delta++
		n++
	}
	return out, nil
}

package loadgen

import (
	"errors"
	"fmt"
	"strings"
)

const hdrLen = 12

// appendName appends the uncompressed wire form of name to b.
func appendName(b []byte, name string) ([]byte, error) {
	if strings.IndexByte(name, '\\') >= 0 {
		return nil, fmt.Errorf("name %q: escapes are not supported", name)
	}
	name = strings.TrimSuffix(name, ".")
	start := len(b)
	if name != "" {
		for _, l := range strings.Split(name, ".") {
			if l == "" {
				return nil, fmt.Errorf("name %q: empty label", name)
			}
			if len(l) > 63 {
				return nil, fmt.Errorf("name %q: label longer than 63 bytes", name)
			}
			b = append(b, byte(len(l)))
			b = append(b, l...)
		}
	}
	b = append(b, 0)
	if len(b)-start > 255 {
		return nil, fmt.Errorf("name %q: longer than 255 bytes", name)
	}
	return b, nil
}

// templates holds the query packet of every name, back to back, with ID 0.
type templates struct {
	buf []byte
	off []int // packet i is buf[off[i]:off[i+1]]
}

func buildTemplates(qs []Query) (*templates, error) {
	if len(qs) == 0 {
		return nil, errors.New("loadgen: no queries")
	}
	t := &templates{off: make([]int, 0, len(qs)+1)}
	for _, q := range qs {
		t.off = append(t.off, len(t.buf))
		// ID 0, flags RD, QDCOUNT 1.
		t.buf = append(t.buf, 0, 0, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0)
		var err error
		if t.buf, err = appendName(t.buf, q.Name); err != nil {
			return nil, fmt.Errorf("loadgen: %w", err)
		}
		t.buf = append(t.buf, byte(q.Type>>8), byte(q.Type), 0, 1) // class IN
	}
	t.off = append(t.off, len(t.buf))
	return t, nil
}

func (t *templates) packet(i int) []byte { return t.buf[t.off[i]:t.off[i+1]] }

// question returns the question section of packet i (name, type, class).
func (t *templates) question(i int) []byte { return t.buf[t.off[i]+hdrLen : t.off[i+1]] }

// sameQuestion reports whether the response question in got starts with
// want: the name compared ASCII case-insensitively, type and class exactly.
func sameQuestion(got, want []byte) bool {
	if len(got) < len(want) {
		return false
	}
	n := len(want) - 4
	for i := 0; i < n; i++ {
		a, b := got[i], want[i]
		if a != b {
			if 'A' <= a && a <= 'Z' {
				a += 'a' - 'A'
			}
			if 'A' <= b && b <= 'Z' {
				b += 'a' - 'A'
			}
			if a != b {
				return false
			}
		}
	}
	return got[n] == want[n] && got[n+1] == want[n+1] && got[n+2] == want[n+2] && got[n+3] == want[n+3]
}

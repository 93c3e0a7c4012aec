package loadgen

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Query is one entry of the query mix: a domain name and a record type.
type Query struct {
	Name string
	Type uint16
}

// typeCodes maps record type mnemonics to their codes.
var typeCodes = map[string]uint16{
	"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "HINFO": 13,
	"MX": 15, "TXT": 16, "RP": 17, "AAAA": 28, "LOC": 29, "SRV": 33,
	"NAPTR": 35, "CERT": 37, "DNAME": 39, "OPT": 41, "DS": 43,
	"SSHFP": 44, "RRSIG": 46, "NSEC": 47, "DNSKEY": 48, "NSEC3": 50,
	"NSEC3PARAM": 51, "TLSA": 52, "SMIMEA": 53, "CDS": 59,
	"CDNSKEY": 60, "OPENPGPKEY": 61, "CSYNC": 62, "ZONEMD": 63,
	"SVCB": 64, "HTTPS": 65, "SPF": 99, "IXFR": 251, "AXFR": 252,
	"ANY": 255, "URI": 256, "CAA": 257,
}

// ParseType parses a record type: a mnemonic such as "AAAA" (case
// insensitive), the generic form "TYPE65", or a decimal number.
func ParseType(s string) (uint16, error) {
	u := strings.ToUpper(s)
	if c, ok := typeCodes[u]; ok {
		return c, nil
	}
	num := strings.TrimPrefix(u, "TYPE")
	if n, err := strconv.ParseUint(num, 10, 16); err == nil && num != "" {
		return uint16(n), nil
	}
	return 0, fmt.Errorf("unknown record type %q", s)
}

// TypeString returns the mnemonic of a record type, or "TYPEn".
func TypeString(t uint16) string {
	for k, v := range typeCodes {
		if v == t {
			return k
		}
	}
	return "TYPE" + strconv.Itoa(int(t))
}

// ReadNames reads a query mix, one query per line: "name [TYPE]". TYPE
// defaults to A. This accepts dnsperf's query-file format ("name TYPE").
// Blank lines and lines starting with '#' or ';' are skipped; text after a
// '#' is a comment. A bad line is reported with its line number.
func ReadNames(r io.Reader) ([]Query, error) {
	var out []Query
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		s := sc.Text()
		if i := strings.IndexByte(s, '#'); i >= 0 {
			s = s[:i]
		}
		s = strings.TrimSpace(s)
		if s == "" || s[0] == ';' {
			continue
		}
		f := strings.Fields(s)
		if len(f) > 2 {
			return nil, fmt.Errorf("line %d: want \"name [TYPE]\", got %d fields", line, len(f))
		}
		q := Query{Name: f[0], Type: 1}
		if len(f) == 2 {
			t, err := ParseType(f[1])
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", line, err)
			}
			q.Type = t
		}
		if _, err := appendName(nil, q.Name); err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		out = append(out, q)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("line %d: %w", line+1, err)
	}
	if len(out) == 0 {
		return nil, errors.New("no queries")
	}
	return out, nil
}

// SPDX-License-Identifier: MIT

package filter

import (
	"bytes"
	"net/netip"
	"regexp"
	"strings"
	"testing"
)

// validName is an independent statement of the name rules in doc.go.
var validName = regexp.MustCompile(`^[a-z0-9_-]{1,63}(\.[a-z0-9_-]{1,63})*$`)

func FuzzParseList(f *testing.F) {
	for _, s := range []string{
		"||example.org^\n@@||good.example.org^\n|exact.example^\n",
		"0.0.0.0 a.example b.example # c\n192.0.2.1 nas.home\n2001:db8::1 nas.home\n127.0.0.1 localhost\n",
		"! comment\n# comment\n\nplain.example\nPLAIN.Example.\n",
		"||a*.example^\n/re/\n||x.example^$important\nexample.org##.ad\n.sub.example^\n://x.\n",
		"\xef\xbb\xbf||a.example^\r\n||b.example^|\r\n",
		"<html><body>404</body></html>\n",
		"\x00\x01binary",
		"fe80::1%lo0 localhost\n::1 ip6-localhost\n0.0.0.0 0.0.0.0\n",
		"||банрек.рус^\n0.0.0.0 пример.рф ok.example\n",
		"||" + strings.Repeat("a", 63) + "." + strings.Repeat("b", 63) + "^\n",
		"1.2.3.4\n1.2.3.4 a..b\n@@example.org\n",
		"||x.example^$important,dnstype=A|~TXT,client=10.0.0.0/8|~10.1.0.0/16,denyallow=a.x.example\n@@||x.example^$important\n",
		"||x.example^$dnsrewrite=NOERROR;TXT;a\\,b\n||x.example^$dnsrewrite=REFUSED\n||y.example^$dnsrewrite=z.example\n||x.example^$badfilter\n",
		"/^ad[0-9]+\\./$important\n||ads*.example^\n*$denyallow=com|net\n198.51.100.0/24\n||192.0.2.1^\n@@/re$/$dnstype=AAAA\n",
		strings.Repeat("x", MaxLineLen+10) + "\nok.example\n",
		"||x.example^$dnsrewrite=1.2.3.4\n||x.example^$dnsrewrite=1.2.3.5,important\n@@||x.example^$dnsrewrite=1.2.3.4\n@@||example^$dnsrewrite,important\n",
		"||x.example^$dnsrewrite=noerror;cname;y.example\n@@||x.example^$dnsrewrite=Y.example\n||x.example^$dnsrewrite=FORMERR;;\n||x.example^$dnsrewrite=FORMERR\n||x.example^$dnsrewrite=x.example\n",
		"||x.example^$process=firefox|~Curl\n@@||x.example^$process=a|b,badfilter\n||y.example^$process=\n*$denyallow=com,process=~ssh\n",
		"192.0.2.7 nas.home printer.home\n2001:db8::7 nas.home\n7.2.0.192.in-addr.arpa\n||ｅｘａｍｐｌｅ．ｏｒｇ^\n192.0.2.1 ｎａｓ．ｈｏｍｅ\n",
		"||x.example^$client=10.0.0.1|192.168.0.0/24\n||x.example^$client=192.168.0.0/24|10.0.0.1,badfilter\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		b := NewBuilder()
		var ws []ListWarning
		st, err := b.ParseList(bytes.NewReader(data), "fuzz", func(w ListWarning) { ws = append(ws, w) })
		s := b.Build()
		if err != nil {
			if s.Len() != 0 || s.Names() != 0 || len(ws) != 0 {
				t.Fatalf("rejected input added %d rules, %d warnings", s.Len(), len(ws))
			}
			return
		}
		if st.Rules != s.Len() || st.Malformed > 0 && st.Malformed > st.Rules+st.Duplicates+st.Ignored+len(data) {
			t.Fatalf("stats %+v vs Len %d", st, s.Len())
		}
		for _, w := range ws {
			if w.List != "fuzz" || w.Reason == "" || len(w.Token) > 83 {
				t.Fatalf("bad warning %+v", w)
			}
		}
		// Every stored name is valid, and deciding it names a rule whose
		// source exists.
		for _, name := range setNames(s) {
			if len(name) > 253 || !validName.MatchString(name) {
				t.Fatalf("invalid name stored: %q", name)
			}
			d := s.Decide([]byte(name), 1)
			if _, ms := s.Explain(&Query{Name: []byte(name), QType: 1}); len(ms) == 0 {
				t.Fatalf("Explain(%q): a stored name with no rule", name)
			}
			if d.Rule == 0 {
				continue // only conditional or $badfilter rules
			}
			src, ok := s.Rule(d.Rule)
			if !ok || src.List != "fuzz" || src.Line < 1 || src.Text == "" {
				t.Fatalf("Rule(%d) = %+v, %v", d.Rule, src, ok)
			}
			if d.Action == Answer && d.CNAME != nil && (len(d.CNAME) < 2 || d.CNAME[len(d.CNAME)-1] != 0) {
				t.Fatalf("bad CNAME wire form for %q: %q", name, d.CNAME)
			}
		}
		// Deciding arbitrary pieces of the input never panics. (Every
		// suffix only for the first tokens: the harness stays linear in
		// the input size, so big inputs do not stall the fuzzer.)
		for n, tok := range bytes.FieldsFunc(data, func(r rune) bool { return r == '\n' || r == ' ' || r == '\t' }) {
			if len(tok) > 255 {
				tok = tok[:255]
			}
			d := s.Decide(tok, 1)
			if d.Action > Answer {
				t.Fatalf("bad action %v", d.Action)
			}
			if n < 8 {
				q := Query{Name: tok, QType: 28, Client: netip.MustParseAddr("10.0.0.1"), Proc: []byte("Firefox")}
				d2, ms := s.Explain(&q)
				if d3 := s.DecideQuery(&q); d2.Rule != d3.Rule || d2.Action != d3.Action {
					t.Fatalf("Explain and DecideQuery differ on %q", tok)
				}
				for _, m := range ms {
					if m.Won && m.Rule != d2.Rule {
						t.Fatalf("Explain winner %d != %d", m.Rule, d2.Rule)
					}
				}
				_ = s.InspectAnswer([][]byte{tok}, []netip.Addr{netip.MustParseAddr("192.0.2.1")}, q.Client)
			}
			if n < 32 {
				for i := range tok {
					_ = s.Decide(tok[i:], 28)
				}
			}
		}
	})
}

// SPDX-License-Identifier: MIT

package filter

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func ruleText(s *Set, id RuleID) string {
	src, _ := s.Rule(id)
	return src.Text
}

// TestPrecedencePairs: every pair of rule classes on one name, in both
// list orders, decides as doc.go's table says.
func TestPrecedencePairs(t *testing.T) {
	kinds := map[string]string{
		"impallow":   "@@||x.example^$important",
		"impblock":   "||x.example^$important",
		"allow":      "@@||x.example^",
		"rewrite":    "||x.example^$dnsrewrite=192.0.2.1",
		"hostsans":   "192.0.2.2 x.example",
		"block":      "||x.example^",
		"rwallow":    "@@||x.example^$dnsrewrite",
		"impRewrite": "||x.example^$dnsrewrite=192.0.2.3,important",
	}
	rank := []string{"impallow", "impblock", "impRewrite", "allow", "rewrite", "hostsans", "block"}
	pos := func(k string) int { return slices.Index(rank, k) }
	for a := range kinds {
		for b := range kinds {
			if a == b {
				continue
			}
			for _, order := range [][2]string{{a, b}, {b, a}} {
				s, ws := build(t, kinds[order[0]]+"\n"+kinds[order[1]])
				if len(ws) != 0 {
					t.Fatalf("warnings %v", ws)
				}
				d := s.Decide([]byte("x.example"), 1)
				got := ruleText(s, d.Rule)
				var want string
				switch {
				case a == "rwallow" || b == "rwallow":
					other := a
					if a == "rwallow" {
						other = b
					}
					// A rewrite exception cancels plain rewrites only.
					switch other {
					case "rewrite", "hostsans":
						want = kinds["rwallow"]
					default:
						want = kinds[other]
					}
				case pos(a) < pos(b):
					want = kinds[a]
				default:
					want = kinds[b]
				}
				if a == "rewrite" && b == "hostsans" || a == "hostsans" && b == "rewrite" {
					// Two rewrites of one name: the exact one (a hosts
					// line) is more specific than the subtree rule.
					want = kinds["hostsans"]
				}
				if got != want {
					t.Errorf("%q then %q: decided by %q (%v), want %q", kinds[order[0]], kinds[order[1]], got, d.Action, want)
				}
			}
		}
	}
}

func TestModifiers(t *testing.T) {
	c1 := netip.MustParseAddr("192.168.1.5")
	c2 := netip.MustParseAddr("10.0.0.1")
	cases := []struct {
		name   string
		list   string
		q      Query
		action Action
		rule   string
	}{
		{"dnstype match", "||x.example^$dnstype=AAAA", Query{QType: 28}, Block, "||x.example^$dnstype=AAAA"},
		{"dnstype no match", "||x.example^$dnstype=AAAA", Query{QType: 1}, Forward, ""},
		{"dnstype list", "||x.example^$dnstype=A|AAAA", Query{QType: 1}, Block, "||x.example^$dnstype=A|AAAA"},
		{"dnstype negated", "||x.example^$dnstype=~TXT", Query{QType: 16}, Forward, ""},
		{"dnstype negated other", "||x.example^$dnstype=~TXT", Query{QType: 1}, Block, "||x.example^$dnstype=~TXT"},
		{"client ip", "||x.example^$client=192.168.1.5", Query{QType: 1, Client: c1}, Block, "||x.example^$client=192.168.1.5"},
		{"client other", "||x.example^$client=192.168.1.5", Query{QType: 1, Client: c2}, Forward, ""},
		{"client unknown", "||x.example^$client=192.168.1.5", Query{QType: 1}, Forward, ""},
		{"client cidr", "||x.example^$client=192.168.1.0/24|10.9.0.0/16", Query{QType: 1, Client: c1}, Block, "||x.example^$client=192.168.1.0/24|10.9.0.0/16"},
		{"client negated", "||x.example^$client=~192.168.1.0/24", Query{QType: 1, Client: c1}, Forward, ""},
		{"client negated other", "||x.example^$client=~192.168.1.0/24", Query{QType: 1, Client: c2}, Block, "||x.example^$client=~192.168.1.0/24"},
		{"client v4-mapped", "||x.example^$client=192.168.1.5", Query{QType: 1, Client: netip.MustParseAddr("::ffff:192.168.1.5")}, Block, "||x.example^$client=192.168.1.5"},
		{"denyallow", "||x.example^$denyallow=x.example", Query{QType: 1}, Forward, ""},
		{"denyallow sub", "||example^$denyallow=x.example", Query{QType: 1}, Forward, ""},
		{"denyallow other", "||example^$denyallow=y.example", Query{QType: 1}, Block, "||example^$denyallow=y.example"},
		{"badfilter", "||x.example^\n||x.example^$badfilter", Query{QType: 1}, Forward, ""},
		{"badfilter before", "||x.example^$badfilter\n||x.example^", Query{QType: 1}, Forward, ""},
		{"badfilter other mods", "||x.example^$important\n||x.example^$badfilter", Query{QType: 1}, Block, "||x.example^$important"},
		{"badfilter same mods", "||x.example^$dnstype=A,important\n||x.example^$important,dnstype=A,badfilter", Query{QType: 1}, Forward, ""},
		{"badfilter exception", "||example^\n@@||x.example^\n@@||x.example^$badfilter", Query{QType: 1}, Block, "||example^"},
		{"badfilter pattern", "||ads*.example^\n||ads*.example^$badfilter", Query{Name: []byte("ads1.example"), QType: 1}, Forward, ""},
		{"wildcard", "||ads*.example^", Query{Name: []byte("ads42.example"), QType: 1}, Block, "||ads*.example^"},
		{"wildcard subdomain", "||ads*.example^", Query{Name: []byte("a.ads42.example"), QType: 1}, Block, "||ads*.example^"},
		{"wildcard no", "||ads*.example^", Query{Name: []byte("bads.example"), QType: 1}, Forward, ""},
		{"star label", "*.x.example", Query{Name: []byte("a.x.example"), QType: 1}, Block, "*.x.example"},
		{"regex", "/^ad[0-9]+\\.example$/", Query{Name: []byte("ad7.example"), QType: 1}, Block, "/^ad[0-9]+\\.example$/"},
		{"regex no", "/^ad[0-9]+\\.example$/", Query{Name: []byte("ad.example"), QType: 1}, Forward, ""},
		{"regex with mods", "/^ad[0-9]+\\.example$/$dnstype=AAAA", Query{Name: []byte("ad7.example"), QType: 1}, Forward, ""},
		{"regex exception", "||example^\n@@/^ok[0-9]\\.example$/", Query{Name: []byte("ok1.example"), QType: 1}, Forward, "@@/^ok[0-9]\\.example$/"},
		{"denyallow everything", "*$denyallow=com|net", Query{Name: []byte("a.org"), QType: 1}, Block, "*$denyallow=com|net"},
		{"denyallow everything no", "*$denyallow=com|net", Query{Name: []byte("a.com"), QType: 1}, Forward, ""},
		{"name rule beats pattern", "/x/\n@@||x.example^", Query{QType: 1}, Forward, "@@||x.example^"},
		{"idna list, punycode query", "||пример.рф^", Query{Name: []byte("www.xn--e1afmkfd.xn--p1ai"), QType: 1}, Block, "||пример.рф^"},
		{"unanchored suffix", "example.org^", Query{Name: []byte("badexample.org"), QType: 1}, Block, "example.org^"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, ws := build(t, tc.list)
			if len(ws) != 0 {
				t.Fatalf("warnings %v", ws)
			}
			q := tc.q
			if q.Name == nil {
				q.Name = []byte("x.example")
			}
			d := s.DecideQuery(&q)
			if d.Action != tc.action || ruleText(s, d.Rule) != tc.rule {
				t.Errorf("%s: %v by %q, want %v by %q", q.Name, d.Action, ruleText(s, d.Rule), tc.action, tc.rule)
			}
			if got := testing.AllocsPerRun(50, func() { _ = s.DecideQuery(&q) }); got != 0 && !raceEnabled {
				t.Errorf("DecideQuery allocates %.1f", got)
			}
		})
	}
}

func TestRewrites(t *testing.T) {
	wire := func(n string) []byte { return wireName([]byte(n)) }
	cases := []struct {
		list  string
		qtype uint16
		want  Decision
		addrs []string
		txt   []string
	}{
		{"||x.example^$dnsrewrite=1.2.3.4", 1, Decision{Action: Answer}, []string{"1.2.3.4"}, nil},
		{"||x.example^$dnsrewrite=NOERROR;A;1.2.3.4\n||x.example^$dnsrewrite=NOERROR;AAAA;2001:db8::1", 28, Decision{Action: Answer}, []string{"1.2.3.4", "2001:db8::1"}, nil},
		{"||x.example^$dnsrewrite=REFUSED", 1, Decision{Action: Answer, Rcode: 5, EDE: EDEBlocked}, nil, nil},
		{"||x.example^$dnsrewrite=NXDOMAIN;;", 1, Decision{Action: Answer, Rcode: 3, EDE: EDEBlocked}, nil, nil},
		{"||x.example^$dnsrewrite=NOERROR;;", 1, Decision{Action: Answer}, nil, nil},
		{"||x.example^$dnsrewrite=1.2.3.4\n||x.example^$dnsrewrite=REFUSED", 1, Decision{Action: Answer, Rcode: 5, EDE: EDEBlocked}, nil, nil},
		{"||x.example^$dnsrewrite=y.example", 1, Decision{Action: Answer, CNAME: wire("y.example")}, nil, nil},
		{"||x.example^$dnsrewrite=NOERROR;CNAME;Y.Example.", 1, Decision{Action: Answer, CNAME: wire("y.example")}, nil, nil},
		{"||x.example^$dnsrewrite=NOERROR;TXT;hello\\, world", 16, Decision{Action: Answer}, nil, []string{"hello, world"}},
		{"||x.example^$dnsrewrite=1.2.3.4,dnstype=AAAA", 1, Decision{}, nil, nil},
	}
	for _, tc := range cases {
		s, ws := build(t, tc.list)
		if len(ws) != 0 {
			t.Fatalf("%q: warnings %v", tc.list, ws)
		}
		name := []byte("x.example")
		d := s.Decide(name, tc.qtype)
		var addrs, txt []string
		for _, a := range d.Addrs {
			addrs = append(addrs, a.String())
		}
		for _, x := range d.TXT {
			txt = append(txt, string(x))
		}
		if d.Action != tc.want.Action || d.Rcode != tc.want.Rcode || d.EDE != tc.want.EDE || string(d.CNAME) != string(tc.want.CNAME) ||
			!slices.Equal(addrs, tc.addrs) || !slices.Equal(txt, tc.txt) {
			t.Errorf("%q: %+v addrs %v txt %v", tc.list, d, addrs, txt)
		}
		if got := testing.AllocsPerRun(50, func() { _ = s.Decide(name, tc.qtype) }); got != 0 && !raceEnabled {
			t.Errorf("%q: allocates %.1f", tc.list, got)
		}
	}
}

func TestListOptionsAndEDE(t *testing.T) {
	b := NewBuilder()
	custom := []netip.Addr{netip.MustParseAddr("192.0.2.99")}
	if _, err := b.ParseListWith(strings.NewReader("||a.example^\n"), ListOptions{Name: "one", Mode: ModeRefused, TTL: 77}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := b.ParseListWith(strings.NewReader("0.0.0.0 b.example\n||c.example^$client=10.0.0.0/8\n"), ListOptions{Name: "two", Mode: ModeCustom, BlockAddrs: custom}, nil); err != nil {
		t.Fatal(err)
	}
	s := b.Build()
	if d := s.Decide([]byte("x.a.example"), 1); d.Mode != ModeRefused || d.TTL != 77 || d.EDE != EDEBlocked {
		t.Errorf("list one: %+v", d)
	}
	if d := s.Decide([]byte("b.example"), 1); d.Mode != ModeCustom || !slices.Equal(d.Addrs, custom) || d.TTL != 0 {
		t.Errorf("list two: %+v", d)
	}
	q := Query{Name: []byte("c.example"), QType: 1, Client: netip.MustParseAddr("10.1.2.3")}
	if d := s.DecideQuery(&q); d.Action != Block || d.EDE != EDEFiltered {
		t.Errorf("client rule: %+v", d)
	}
	m, addrs, err := ParseBlockSpec("192.0.2.1, 2001:db8::1")
	if err != nil || m != ModeCustom || len(addrs) != 2 {
		t.Errorf("ParseBlockSpec: %v %v %v", m, addrs, err)
	}
}

func TestBypassSignals(t *testing.T) {
	s, _ := build(t, "@@||use-application-dns.net^\n")
	for name, mode := range map[string]BlockMode{"use-application-dns.net": ModeNXDomain, "mask.icloud.com": ModeNXDomain, "mask-h2.icloud.com": ModeNXDomain, "_dns.resolver.arpa": ModeNoData} {
		d := s.Decide([]byte(name), 1)
		src, ok := s.Rule(d.Rule)
		if d.Action != Block || d.Mode != mode || d.EDE != 0 || !ok || src.List != "built-in" {
			t.Errorf("%s: %+v %+v", name, d, src)
		}
	}
	if s.Decide([]byte("x.mask.icloud.com"), 1).Action != Forward {
		t.Error("signal applies to subdomains")
	}
	b := NewBuilder()
	b.SetBypassSignals(false)
	if d := b.Build().Decide([]byte("use-application-dns.net"), 1); d.Action != Forward {
		t.Errorf("signals off: %+v", d)
	}
}

func TestInspectAnswer(t *testing.T) {
	s, ws := build(t, "||tracker.example^\n@@||ok.tracker.example^\n||192.0.2.1^\n198.51.100.0/24\n@@198.51.100.7\n2001:db8::bad\n")
	if len(ws) != 0 {
		t.Fatalf("warnings %v", ws)
	}
	a := netip.MustParseAddr
	cases := []struct {
		cnames []string
		addrs  []netip.Addr
		action Action
		rule   string
	}{
		{[]string{"cdn.example", "x.tracker.example"}, nil, Block, "||tracker.example^"},
		{[]string{"ok.tracker.example"}, nil, Forward, "@@||ok.tracker.example^"},
		{nil, []netip.Addr{a("203.0.113.1"), a("192.0.2.1")}, Block, "||192.0.2.1^"},
		{nil, []netip.Addr{a("198.51.100.9")}, Block, "198.51.100.0/24"},
		{nil, []netip.Addr{a("198.51.100.7")}, Forward, "@@198.51.100.7"},
		{nil, []netip.Addr{a("2001:db8::bad")}, Block, "2001:db8::bad"},
		{nil, []netip.Addr{a("::ffff:192.0.2.1")}, Block, "||192.0.2.1^"},
		{[]string{"fine.example"}, []netip.Addr{a("203.0.113.1")}, Forward, ""},
	}
	for _, tc := range cases {
		var cn [][]byte
		for _, c := range tc.cnames {
			cn = append(cn, []byte(c))
		}
		d := s.InspectAnswer(cn, tc.addrs, netip.Addr{})
		if d.Action != tc.action || ruleText(s, d.Rule) != tc.rule {
			t.Errorf("%v %v: %v by %q, want %v by %q", tc.cnames, tc.addrs, d.Action, ruleText(s, d.Rule), tc.action, tc.rule)
		}
		if got := testing.AllocsPerRun(50, func() { _ = s.InspectAnswer(cn, tc.addrs, netip.Addr{}) }); got != 0 && !raceEnabled {
			t.Errorf("InspectAnswer allocates %.1f", got)
		}
	}
	// Query names never match IP rules.
	if d := s.Decide([]byte("192.0.2.1"), 1); d.Action != Forward {
		t.Errorf("IP rule matched a query name: %+v", d)
	}
}

func TestExplain(t *testing.T) {
	s, _ := build(t, "||example.org^\n||ads.example.org^$dnstype=AAAA\n@@||ok.ads.example.org^\n/ads/\n")
	q := Query{Name: []byte("ok.ads.example.org"), QType: 1}
	d, ms := s.Explain(&q)
	if d.Rule != s.DecideQuery(&q).Rule {
		t.Fatal("Explain decided differently")
	}
	won := 0
	texts := map[string]string{}
	for _, m := range ms {
		texts[m.Source.Text] = m.Why
		if m.Won {
			won++
			if m.Source.Text != "@@||ok.ads.example.org^" || m.Source.Line != 3 {
				t.Errorf("winner %+v", m)
			}
		}
	}
	if won != 1 || len(ms) != 4 {
		t.Errorf("matches %+v", ms)
	}
	if !strings.Contains(texts["||ads.example.org^$dnstype=AAAA"], "dnstype") || !strings.HasPrefix(texts["||example.org^"], "lost") || !strings.HasPrefix(texts["/ads/"], "lost") {
		t.Errorf("reasons %v", texts)
	}
}

// TestDecideNoAllocPaths: every Decide path with a client.
func TestDecideNoAllocPaths(t *testing.T) {
	s, _ := build(t, "||a.example^\n|b.example^\n@@||ok.a.example^\n||imp.example^$important\n@@||imp.example^$important,dnstype=TXT\n"+
		"||rw.example^$dnsrewrite=1.2.3.4\n||rw.example^$dnsrewrite=::1\n192.0.2.1 host.example\n||c.example^$client=10.0.0.0/8,denyallow=d.c.example\n"+
		"/re[0-9]+x/\n||w*.example^\n")
	c := netip.MustParseAddr("10.1.1.1")
	long := strings.Repeat("a.", 127) + "x"
	for _, n := range []string{"a.example", "x.a.example", "ok.a.example", "b.example", "imp.example", "rw.example", "host.example",
		"c.example", "d.c.example", "re12x.example", "w1.example", "miss.example", "use-application-dns.net", long, strings.Repeat("x", 300), "", ".", "a..b"} {
		for _, qt := range []uint16{1, 16, 28} {
			q := Query{Name: []byte(n), QType: qt, Client: c}
			if got := testing.AllocsPerRun(50, func() { _ = s.DecideQuery(&q) }); got != 0 && !raceEnabled {
				t.Errorf("DecideQuery(%q, %d) allocates %.1f", n, qt, got)
			}
		}
	}
}

func TestPunycode(t *testing.T) {
	// RFC 3492 §7.1 samples and common IDNs.
	for in, want := range map[string]string{
		"bücher":            "bcher-kva",
		"пример":            "e1afmkfd",
		"例え":                "r8jz45g",
		"ليهمابتكلموشعربي؟": "egbpdaj6bu4bxfgehfvwxn",
		"他们为什么不说中文":         "ihqwcrb4cv8a8dqg056pqjye",
	} {
		got, err := punycodeEncode([]rune(in))
		if err != nil || string(got) != want {
			t.Errorf("punycode(%s) = %s, %v; want %s", in, got, err, want)
		}
	}
}

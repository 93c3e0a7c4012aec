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
// list orders, decides as doc.go's table says: rewrites first (a plain
// rewrite exception cancels the plain ones), then important exceptions,
// important blocks, exceptions, blocks, and hosts records last.
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
	rank := []string{"impallow", "impblock", "allow", "block", "hostsans"}
	pos := func(k string) int { return slices.Index(rank, k) }
	isRewrite := func(k string) bool { return k == "rewrite" || k == "impRewrite" }
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
				case isRewrite(a) && isRewrite(b):
					want = kinds[order[0]] // summed: the first reports
				case order[0] == "rwallow" && order[1] == "rewrite" || order[1] == "rwallow" && order[0] == "rewrite":
					want = kinds["rwallow"] // it cancelled the only rewrite
				case isRewrite(a):
					want = kinds[a]
				case isRewrite(b):
					want = kinds[b]
				case a == "rwallow":
					want = kinds[b]
				case b == "rwallow":
					want = kinds[a]
				case pos(a) < pos(b):
					want = kinds[a]
				default:
					want = kinds[b]
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

// TestIDNA: names in lists go through UTS #46 (x/net/idna): RFC 3492's
// samples, and the mappings a hand-written Punycode missed (full-width
// letters and dots, compatibility forms, final sigma).
func TestIDNA(t *testing.T) {
	for in, want := range map[string]string{
		"bücher.example":        "xn--bcher-kva.example",
		"пример.рф":             "xn--e1afmkfd.xn--p1ai",
		"例え.テスト":                "xn--r8jz45g.xn--zckzah",
		"ليهمابتكلموشعربي؟":     "xn--egbpdaj6bu4bxfgehfvwxn",
		"他们为什么不说中文":             "xn--ihqwcrb4cv8a8dqg056pqjye",
		"ｅｘａｍｐｌｅ．ｏｒｇ":           "example.org",        // full-width letters and dot: plain ASCII
		"ＡＤＳ．ｅｘａｍｐｌｅ":           "ads.example",        // full-width capitals
		"faß.example":           "xn--fa-hia.example", // non-transitional: ß stays
		"ｂüｃｈｅｒ.example":        "xn--bcher-kva.example",
		"münchen。de":            "xn--mnchen-3ya.de",
		"_dmarc.bücher.example": "_dmarc.xn--bcher-kva.example",
	} {
		got, reason, _ := normalizeName(nil, []byte(in))
		if string(got) != want || reason != "" {
			t.Errorf("normalizeName(%q) = %q, %q; want %q", in, got, reason, want)
		}
	}
	for _, bad := range []string{"a\u200db.example", "\xff.example", "ab\u0661\u0031.example"} {
		if got, reason, _ := normalizeName(nil, []byte(bad)); reason == "" {
			t.Errorf("normalizeName(%q) = %q, want an error", bad, got)
		}
	}
	// A list written in full-width letters decides like its ASCII twin.
	s, ws := build(t, "||ａｄｓ．ｅｘａｍｐｌｅ^\n")
	if len(ws) != 0 || s.Decide([]byte("x.ads.example"), 1).Action != Block {
		t.Errorf("full-width rule: warnings %v, decision %+v", ws, s.Decide([]byte("x.ads.example"), 1))
	}
}

// TestProcess: $process matches the asking process's name or executable,
// ignoring ASCII case; "~" excludes; an unknown process matches only rules
// without positive names.
func TestProcess(t *testing.T) {
	s, ws := build(t, "||x.example^$process=firefox|Curl\n||y.example^$process=~ssh\n||z.example^$process=~ssh|git\n"+
		"@@||w.example^$process=Safari\n||w.example^\n||r.example^$process=dig,dnsrewrite=192.0.2.9\n")
	if len(ws) != 0 {
		t.Fatalf("warnings %v", ws)
	}
	if !s.UsesProcess() || !NewLive(s).UsesProcess() {
		t.Error("UsesProcess false for a set with $process rules")
	}
	cases := []struct {
		name, proc, exe string
		action          Action
		rule            string
	}{
		{"x.example", "firefox", "", Block, "||x.example^$process=firefox|Curl"},
		{"x.example", "", "curl", Block, "||x.example^$process=firefox|Curl"},
		{"x.example", "FireFox", "", Block, "||x.example^$process=firefox|Curl"},
		{"x.example", "Web Content", "firefox", Block, "||x.example^$process=firefox|Curl"},
		{"x.example", "chrome", "chrome", Forward, ""},
		{"x.example", "firefox-bin", "", Forward, ""},
		{"x.example", "", "", Forward, ""}, // unknown: a positive list does not match
		{"y.example", "", "", Block, "||y.example^$process=~ssh"},
		{"y.example", "ssh", "", Forward, ""},
		{"y.example", "bash", "SSH", Forward, ""},
		{"y.example", "bash", "bash", Block, "||y.example^$process=~ssh"},
		{"z.example", "git", "", Block, "||z.example^$process=~ssh|git"},
		{"z.example", "", "", Forward, ""},
		{"w.example", "Safari", "", Forward, "@@||w.example^$process=Safari"},
		{"w.example", "", "", Block, "||w.example^"},
		{"r.example", "dig", "", Answer, "||r.example^$process=dig,dnsrewrite=192.0.2.9"},
		{"r.example", "host", "", Forward, ""},
	}
	b := func(s string) []byte {
		if s == "" {
			return nil
		}
		return []byte(s)
	}
	for _, tc := range cases {
		q := Query{Name: []byte(tc.name), QType: 1, Proc: b(tc.proc), Exe: b(tc.exe)}
		d := s.DecideQuery(&q)
		if d.Action != tc.action || ruleText(s, d.Rule) != tc.rule {
			t.Errorf("%s proc %q exe %q: %v by %q, want %v by %q", tc.name, tc.proc, tc.exe, d.Action, ruleText(s, d.Rule), tc.action, tc.rule)
		}
		if got := testing.AllocsPerRun(50, func() { _ = s.DecideQuery(&q) }); got != 0 && !raceEnabled {
			t.Errorf("DecideQuery with a process allocates %.1f", got)
		}
	}
	// Explain says why a $process rule did not apply.
	_, ms := s.Explain(&Query{Name: []byte("x.example"), QType: 1, Proc: []byte("chrome")})
	if len(ms) != 1 || !strings.Contains(ms[0].Why, "$process") {
		t.Errorf("Explain: %+v", ms)
	}
	// A set without $process rules, or whose only one a $badfilter
	// disabled, does not use the process.
	for _, list := range []string{"||x.example^\n", "||x.example^$process=a|b\n||x.example^$process=b|a|a,badfilter\n"} {
		if s, _ := build(t, list); s.UsesProcess() {
			t.Errorf("%q: UsesProcess true", list)
		}
	}
	var nilSet *Set
	if nilSet.UsesProcess() {
		t.Error("nil Set uses the process")
	}
}

// TestProcessBadfilter: $badfilter compares $process values as sets of
// names, ignoring order, duplicates and ASCII case.
func TestProcessBadfilter(t *testing.T) {
	q := Query{Name: []byte("x.example"), QType: 1, Proc: []byte("curl")}
	for list, disabled := range map[string]bool{
		"||x.example^$process=curl|wget\n||x.example^$process=WGET|curl,badfilter":      true,
		"||x.example^$process=curl|wget\n||x.example^$process=curl|wget|curl,badfilter": true,
		"||x.example^$process=curl|wget\n||x.example^$process=curl,badfilter":           false,
		"||x.example^$process=curl\n||x.example^$process=~curl,badfilter":               false,
		"||x.example^$process=curl\n||x.example^$badfilter":                             false,
		"/x\\.example/$process=curl\n/x\\.example/$process=CURL,badfilter":              true,
	} {
		s, ws := build(t, list)
		if len(ws) != 0 {
			t.Fatalf("%q: warnings %v", list, ws)
		}
		if got := s.DecideQuery(&q).Action == Forward; got != disabled {
			t.Errorf("%q: disabled %v, want %v", list, got, disabled)
		}
	}
}

// TestRewriteAndHostsNoAlloc: the rewrite exceptions, hosts records and
// their reverse records decide without allocating.
func TestRewriteAndHostsNoAlloc(t *testing.T) {
	s, _ := build(t, "||x.example^$dnsrewrite=192.0.2.1\n||x.example^$dnsrewrite=192.0.2.2\n@@||x.example^$dnsrewrite=192.0.2.1\n"+
		"||a.x.example^$dnsrewrite=y.example\n@@||x.example^$dnsrewrite=NOERROR;CNAME;y.example,important\n"+
		"192.0.2.7 nas.home\n2001:db8::7 nas.home\n*$denyallow=com\n")
	for _, q := range []Query{
		{Name: []byte("x.example"), QType: 1}, {Name: []byte("a.x.example"), QType: 1},
		{Name: []byte("nas.home"), QType: 28}, {Name: []byte("7.2.0.192.in-addr.arpa"), QType: 12},
		{Name: []byte("10.0.0.1"), QType: 1}, {Name: []byte("2001:db8::1"), QType: 1},
	} {
		if got := testing.AllocsPerRun(50, func() { _ = s.DecideQuery(&q) }); got != 0 && !raceEnabled {
			t.Errorf("DecideQuery(%s) allocates %.1f", q.Name, got)
		}
	}
}

func TestIsIPName(t *testing.T) {
	for n, want := range map[string]bool{
		"10.1.2.3": true, "0.0.0.0": true, "255.255.255.255": true, "::1": true, "2001:db8::1": true, "::ffff:1.2.3.4": true,
		"256.1.1.1": false, "1.2.3": false, "1.2.3.4.5": false, "01.2.3.4": false, "1..2.3": false, "a.b.c.d": false,
		"1.2.3.4.example": false, "": false, "dead.beef": false, ":1": false, "1:2": false,
	} {
		if got := isIPName([]byte(n)); got != want {
			t.Errorf("isIPName(%q) = %v", n, got)
		}
	}
}

// TestReverseName: the names PTR queries ask for.
func TestReverseName(t *testing.T) {
	for a, want := range map[string]string{
		"192.0.2.7":      "7.2.0.192.in-addr.arpa",
		"2001:db8::7":    "7.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa",
		"::ffff:1.2.3.4": "4.0.3.0.2.0.1.0.f.f.f.f.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa",
	} {
		if got := string(reverseName(netip.MustParseAddr(a))); got != want {
			t.Errorf("reverseName(%s) = %s, want %s", a, got, want)
		}
	}
}

// TestExplainRewriteCancelled: Explain says which rewrites an exception
// cancelled and that the rest answered.
func TestExplainRewriteCancelled(t *testing.T) {
	s, _ := build(t, "||x.example^$dnsrewrite=192.0.2.1\n||x.example^$dnsrewrite=192.0.2.2\n@@||x.example^$dnsrewrite=192.0.2.1\n")
	d, ms := s.Explain(&Query{Name: []byte("x.example"), QType: 1})
	why := map[string]string{}
	for _, m := range ms {
		why[m.Source.Text] = m.Why
	}
	if d.Action != Answer || len(d.Addrs) != 1 || d.Addrs[0] != netip.MustParseAddr("192.0.2.2") ||
		why["||x.example^$dnsrewrite=192.0.2.1"] != "lost: cancelled by a rewrite exception" ||
		!strings.HasPrefix(why["||x.example^$dnsrewrite=192.0.2.2"], "won") {
		t.Errorf("decision %+v, reasons %v", d, why)
	}
}

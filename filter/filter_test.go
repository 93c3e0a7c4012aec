// SPDX-License-Identifier: MIT

package filter

import (
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
)

// build parses each text as one list named "listN" and fails the test on
// an error.
func build(t testing.TB, lists ...string) (*Set, []ListWarning) {
	t.Helper()
	b := NewBuilder()
	var ws []ListWarning
	for i, l := range lists {
		if _, err := b.ParseList(strings.NewReader(l), "list"+string(rune('0'+i)), func(w ListWarning) { ws = append(ws, w) }); err != nil {
			t.Fatalf("ParseList(list%d): %v", i, err)
		}
	}
	return b.Build(), ws
}

func TestActionModeStrings(t *testing.T) {
	for a, want := range map[Action]string{Forward: "forward", Block: "block", Answer: "answer", Action(9): "Action(9)"} {
		if got := a.String(); got != want {
			t.Errorf("Action(%d).String() = %q, want %q", a, got, want)
		}
	}
	for m, want := range map[BlockMode]string{ModeDefault: "default", ModeNXDomain: "nxdomain", ModeNull: "null", ModeRefused: "refused", ModeNoData: "nodata", BlockMode(9): "BlockMode(9)"} {
		if got := m.String(); got != want {
			t.Errorf("BlockMode(%d).String() = %q, want %q", m, got, want)
		}
	}
}

func TestParseBlockMode(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want BlockMode
		ok   bool
	}{
		{"nxdomain", ModeNXDomain, true},
		{"null", ModeNull, true},
		{"refused", ModeRefused, true},
		{"nodata", ModeNoData, true},
		{" NXDomain ", ModeNXDomain, true},
		{"default", 0, false},
		{"", 0, false},
		{"servfail", 0, false},
	} {
		got, err := ParseBlockMode(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseBlockMode(%q) = %v, %v; want %v, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
		if err != nil {
			for _, v := range []string{"nxdomain", "null", "refused", "nodata"} {
				if !strings.Contains(err.Error(), v) {
					t.Errorf("ParseBlockMode(%q) error %q does not list %q", tc.in, err, v)
				}
			}
		}
	}
}

// want describes an expected decision: the action, the text of the deciding
// rule ("" for none) and, for Answer, the addresses in order.
type want struct {
	action Action
	rule   string
	addrs  []string
}

func checkDecide(t *testing.T, s *Set, name string, w want) {
	t.Helper()
	d := s.Decide([]byte(name), 1)
	var text string
	if d.Rule != 0 {
		src, ok := s.Rule(d.Rule)
		if !ok {
			t.Fatalf("Decide(%q): Rule(%d) not found", name, d.Rule)
		}
		text = src.Text
	}
	var addrs []string
	for _, a := range d.Addrs {
		addrs = append(addrs, a.String())
	}
	if d.Action != w.action || text != w.rule || !slices.Equal(addrs, w.addrs) || d.Mode != ModeDefault {
		t.Errorf("Decide(%q) = %v rule %q addrs %v mode %v; want %v rule %q addrs %v", name, d.Action, text, addrs, d.Mode, w.action, w.rule, w.addrs)
	}
}

func fwd() want                         { return want{action: Forward} }
func blk(rule string) want              { return want{action: Block, rule: rule} }
func allow(rule string) want            { return want{action: Forward, rule: rule} }
func ans(rule string, a ...string) want { return want{action: Answer, rule: rule, addrs: a} }

// TestDecideFormats checks what each syntax matches: the name itself, its
// subdomains, its parent, and a name sharing a suffix without a label
// boundary.
func TestDecideFormats(t *testing.T) {
	cases := []struct {
		name  string
		list  string
		query map[string]want
	}{
		{"adblock subtree", "||ads.example^", map[string]want{
			"ads.example": blk("||ads.example^"), "x.ads.example": blk("||ads.example^"), "a.b.c.ads.example": blk("||ads.example^"),
			"example": fwd(), "bads.example": fwd(), "ads.example.org": fwd(), "": fwd(),
		}},
		{"adblock subtree without caret", "||ads.example", map[string]want{
			"ads.example": blk("||ads.example"), "x.ads.example": blk("||ads.example"), "ads.examples": fwd(),
		}},
		{"adblock subtree with end anchor", "||ads.example^|", map[string]want{
			"ads.example": blk("||ads.example^|"), "x.ads.example": blk("||ads.example^|"),
		}},
		{"adblock exact", "|ads.example^", map[string]want{
			"ads.example": blk("|ads.example^"), "x.ads.example": fwd(), "example": fwd(),
		}},
		{"adblock exact without caret", "|ads.example", map[string]want{
			"ads.example": blk("|ads.example"), "x.ads.example": fwd(),
		}},
		{"adblock upper case and trailing dot", "||ADS.Example.^", map[string]want{
			"ads.example": blk("||ADS.Example.^"), "x.ads.example": blk("||ADS.Example.^"),
		}},
		{"plain domain is a subtree", "tracker.example", map[string]want{
			"tracker.example": blk("tracker.example"), "x.tracker.example": blk("tracker.example"), "example": fwd(), "xtracker.example": fwd(),
		}},
		{"plain domain with trailing comment", "tracker.example # why", map[string]want{
			"tracker.example": blk("tracker.example"),
		}},
		{"tld rule", "||zip^", map[string]want{
			"zip": blk("||zip^"), "a.zip": blk("||zip^"), "zipp": fwd(),
		}},
		{"hosts 0.0.0.0 is exact", "0.0.0.0 ads.example", map[string]want{
			"ads.example": blk("0.0.0.0 ads.example"), "x.ads.example": fwd(), "example": fwd(),
		}},
		{"hosts every blocking address", "127.0.0.1 a.example\n:: b.example\n::1 c.example\n0.0.0.0 d.example e.example # c", map[string]want{
			"a.example": blk("127.0.0.1 a.example"), "b.example": blk(":: b.example"), "c.example": blk("::1 c.example"),
			"d.example": blk("0.0.0.0 d.example e.example"), "e.example": blk("0.0.0.0 d.example e.example"),
		}},
		{"hosts answer", "192.0.2.7 nas.home\t printer.home", map[string]want{
			"nas.home": ans("192.0.2.7 nas.home\t printer.home", "192.0.2.7"), "printer.home": ans("192.0.2.7 nas.home\t printer.home", "192.0.2.7"),
			"x.nas.home": fwd(), "home": fwd(),
		}},
		{"hosts answers accumulate across families", "192.0.2.7 nas.home\n2001:db8::7 nas.home\n192.0.2.7 nas.home\nfe80::1%eth0 nas.home", map[string]want{
			"nas.home": ans("192.0.2.7 nas.home", "192.0.2.7", "2001:db8::7", "fe80::1"),
		}},
		{"other loopback address is an answer", "127.0.0.2 x.example", map[string]want{
			"x.example": ans("127.0.0.2 x.example", "127.0.0.2"),
		}},
		{"hosts boilerplate ignored", "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n255.255.255.255 broadcasthost\n0.0.0.0 0.0.0.0\n127.0.0.1 local\nfe80::1%lo0 localhost\nff02::1 ip6-allnodes", map[string]want{
			"localhost": fwd(), "ip6-localhost": fwd(), "broadcasthost": fwd(), "0.0.0.0": fwd(), "local": fwd(), "ip6-allnodes": fwd(),
		}},
		{"punycode accepted", "||xn--80ak6aa92e.com^", map[string]want{
			"xn--80ak6aa92e.com": blk("||xn--80ak6aa92e.com^"),
		}},
		{"underscore accepted", "||_dmarc.example^", map[string]want{
			"_dmarc.example": blk("||_dmarc.example^"),
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, ws := build(t, tc.list)
			if len(ws) != 0 {
				t.Errorf("unexpected warnings: %v", ws)
			}
			for q, w := range tc.query {
				checkDecide(t, s, q, w)
			}
		})
	}
}

// TestDecidePrecedence covers every pair of rule kinds on one name or a
// name and its parent.
func TestDecidePrecedence(t *testing.T) {
	cases := []struct {
		name  string
		lists []string
		query map[string]want
	}{
		{"subtree exception beats subtree block", []string{"||example.org^\n@@||example.org^"}, map[string]want{
			"example.org": allow("@@||example.org^"), "www.example.org": allow("@@||example.org^"),
		}},
		{"exception beats block in another list, either order", []string{"@@||example.org^", "||example.org^"}, map[string]want{
			"example.org": allow("@@||example.org^"), "a.example.org": allow("@@||example.org^"),
		}},
		{"parent exception beats child block", []string{"||ads.example.org^\n@@||example.org^"}, map[string]want{
			"ads.example.org": allow("@@||example.org^"), "x.ads.example.org": allow("@@||example.org^"),
		}},
		{"child exception carves a hole in parent block", []string{"||example.org^\n@@||good.example.org^"}, map[string]want{
			"example.org": blk("||example.org^"), "ads.example.org": blk("||example.org^"),
			"good.example.org": allow("@@||good.example.org^"), "x.good.example.org": allow("@@||good.example.org^"),
		}},
		{"exact exception only frees the exact name", []string{"||example.org^\n@@|www.example.org^"}, map[string]want{
			"www.example.org": allow("@@|www.example.org^"), "x.www.example.org": blk("||example.org^"),
		}},
		{"exception beats hosts block", []string{"0.0.0.0 ads.example.org\n@@||example.org^"}, map[string]want{
			"ads.example.org": allow("@@||example.org^"),
		}},
		{"exception beats exact block", []string{"|ads.example.org^\n@@|ads.example.org^"}, map[string]want{
			"ads.example.org": allow("@@|ads.example.org^"),
		}},
		{"most specific exception reported", []string{"@@||example.org^\n@@||a.example.org^\n||b.a.example.org^"}, map[string]want{
			"b.a.example.org": allow("@@||a.example.org^"),
		}},
		{"subtree block of parent beats hosts answer (AdGuard: network rules before hosts rules)", []string{"||example.org^\n192.0.2.1 nas.example.org"}, map[string]want{
			"nas.example.org": blk("||example.org^"), "x.nas.example.org": blk("||example.org^"), "example.org": blk("||example.org^"),
		}},
		{"hosts block beats hosts answer of the same name", []string{"0.0.0.0 nas.example.org", "192.0.2.1 nas.example.org"}, map[string]want{
			"nas.example.org": blk("0.0.0.0 nas.example.org"),
		}},
		{"exact block beats hosts answer", []string{"|nas.example.org^\n192.0.2.1 nas.example.org"}, map[string]want{
			"nas.example.org": blk("|nas.example.org^"),
		}},
		{"hosts answer where no block applies", []string{"||example.org^$dnstype=AAAA\n192.0.2.1 nas.example.org"}, map[string]want{
			"nas.example.org": ans("192.0.2.1 nas.example.org", "192.0.2.1"),
		}},
		{"exception beats answer (AdGuard: @@ outranks rewrites)", []string{"@@||example.org^\n192.0.2.1 nas.example.org"}, map[string]want{
			"nas.example.org": allow("@@||example.org^"), "x.example.org": allow("@@||example.org^"),
		}},
		{"most specific block wins", []string{"||example.org^\n||ads.example.org^"}, map[string]want{
			"x.ads.example.org": blk("||ads.example.org^"), "ads.example.org": blk("||ads.example.org^"), "x.example.org": blk("||example.org^"),
		}},
		{"exact block preferred over subtree block on the same name", []string{"||ads.example.org^\n0.0.0.0 ads.example.org"}, map[string]want{
			"ads.example.org": blk("0.0.0.0 ads.example.org"), "x.ads.example.org": blk("||ads.example.org^"),
		}},
		{"exact block of child beats subtree block of parent", []string{"||example.org^\n|ads.example.org^"}, map[string]want{
			"ads.example.org": blk("|ads.example.org^"), "x.ads.example.org": blk("||example.org^"),
		}},
		{"first duplicate keeps its rule", []string{"||example.org^", "example.org\n||example.org^"}, map[string]want{
			"example.org": blk("||example.org^"),
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, ws := build(t, tc.lists...)
			if len(ws) != 0 {
				t.Errorf("unexpected warnings: %v", ws)
			}
			for q, w := range tc.query {
				checkDecide(t, s, q, w)
			}
		})
	}
}

func TestRuleSource(t *testing.T) {
	s, _ := build(t, "# header\n||a.example^\n", "\n\n  0.0.0.0 b.example c.example  # tail\n")
	if s.Len() != 2 {
		t.Fatalf("Len() = %d, want 2", s.Len())
	}
	for _, tc := range []struct {
		q    string
		want RuleSource
	}{
		{"x.a.example", RuleSource{List: "list0", Line: 2, Text: "||a.example^"}},
		{"c.example", RuleSource{List: "list1", Line: 3, Text: "0.0.0.0 b.example c.example"}},
	} {
		d := s.Decide([]byte(tc.q), 1)
		got, ok := s.Rule(d.Rule)
		if !ok || got != tc.want {
			t.Errorf("Rule(Decide(%q)) = %+v, %v; want %+v", tc.q, got, ok, tc.want)
		}
	}
	for _, id := range []RuleID{0, 3, 1 << 31} {
		if _, ok := s.Rule(id); ok {
			t.Errorf("Rule(%d) found", id)
		}
	}
}

func TestNilAndEmpty(t *testing.T) {
	var s *Set
	if d := s.Decide([]byte("a.example"), 1); d.Action != Forward || d.Rule != 0 {
		t.Errorf("nil Set decided %+v", d)
	}
	if s.Len() != 0 || s.Names() != 0 {
		t.Error("nil Set not empty")
	}
	if _, ok := s.Rule(1); ok {
		t.Error("nil Set has rule 1")
	}
	e := NewBuilder().Build()
	if d := e.Decide([]byte("a.example"), 1); d.Action != Forward {
		t.Errorf("empty Set decided %+v", d)
	}
	l := NewLive(nil)
	if d := l.Decide([]byte("a.example"), 1); d.Action != Forward {
		t.Errorf("Live(nil) decided %+v", d)
	}
}

func TestLiveSwap(t *testing.T) {
	s1, _ := build(t, "||a.example^")
	s2, _ := build(t, "||b.example^")
	l := NewLive(s1)
	if l.Load() != s1 || l.Decide([]byte("a.example"), 1).Action != Block {
		t.Fatal("Live does not use its first set")
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				d := l.Decide([]byte("a.example"), 1)
				e := l.Decide([]byte("b.example"), 1)
				_, _ = d, e
			}
		}()
	}
	for range 100 {
		l.Store(s2)
		l.Store(s1)
	}
	l.Store(s2)
	close(stop)
	wg.Wait()
	if l.Decide([]byte("a.example"), 1).Action != Forward || l.Decide([]byte("b.example"), 1).Action != Block {
		t.Fatal("Live does not use the stored set")
	}
}

// TestDecideNoAlloc: Decide allocates nothing for hits, misses, exceptions,
// answers and odd or long names.
func TestDecideNoAlloc(t *testing.T) {
	s, _ := build(t, "||ads.example^\n@@||good.ads.example^\n|exact.example^\n192.0.2.1 nas.home\n2001:db8::1 nas.home\n0.0.0.0 host.example\n")
	long := strings.Repeat("a.", 127) + "x" // 255 bytes
	long63 := strings.Repeat(strings.Repeat("b", 63)+".", 3) + "ads.example"
	names := []string{
		"ads.example", "x.y.z.ads.example", "good.ads.example", "x.good.ads.example", "exact.example",
		"nas.home", "host.example", "miss.example", "", ".", "..", "a..b", "ads.example.", long, long63,
		"\x00\xff.ads.example", strings.Repeat("x", 255),
	}
	// The same names against a set of plain block rules only, which
	// takes plainHit instead of walkStaged.
	plain, _ := build(t, "||ads.example^\n|exact.example^\n0.0.0.0 host.example\nx.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q\n")
	if !plain.plainOnly || plain.hasPatterns || s.plainOnly {
		t.Fatalf("plainOnly: %v %v %v, the test misses a walk", plain.plainOnly, plain.hasPatterns, s.plainOnly)
	}
	names = append(names, "a.x.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q") // 18 labels: walkNames
	for _, set := range []*Set{s, plain} {
		for _, n := range names {
			b := []byte(n)
			if got := testing.AllocsPerRun(100, func() { _ = set.Decide(b, 28) }); got != 0 && !raceEnabled {
				t.Errorf("Decide(%q) allocates %.1f times", n, got)
			}
		}
	}
	l := NewLive(s)
	b := []byte("nas.home")
	if got := testing.AllocsPerRun(100, func() { _ = l.Decide(b, 1) }); got != 0 && !raceEnabled {
		t.Errorf("Live.Decide allocates %.1f times", got)
	}
}

// TestAddrsImmutableShape: Addrs has no spare capacity, so an append by a
// careless caller copies instead of writing into the next name's addresses.
func TestAddrsImmutableShape(t *testing.T) {
	s, _ := build(t, "192.0.2.1 a.home\n192.0.2.2 b.home\n")
	d := s.Decide([]byte("a.home"), 1)
	if len(d.Addrs) != 1 || cap(d.Addrs) != 1 {
		t.Fatalf("Addrs len %d cap %d, want 1 1", len(d.Addrs), cap(d.Addrs))
	}
	_ = append(d.Addrs, netip.MustParseAddr("198.51.100.1"))
	if got := s.Decide([]byte("b.home"), 1).Addrs[0]; got != netip.MustParseAddr("192.0.2.2") {
		t.Fatalf("b.home answer changed to %v", got)
	}
}

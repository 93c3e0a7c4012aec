// SPDX-License-Identifier: MIT

package filter

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// listsDir is the shared folder of real-world lists (../shared/lists from
// the repository root). CI always has it; a fresh clone does not.
const listsDir = "../../shared/lists"

var (
	adguardList = filepath.Join(listsDir, "adguard-dns-filter-2019.txt")
	hostsList   = filepath.Join(listsDir, "stevenblack-hosts-2019.txt")
)

func requireLists(tb testing.TB) {
	tb.Helper()
	if _, err := os.Stat(listsDir); os.IsNotExist(err) {
		tb.Skipf("real-world lists absent: %s does not exist (see ../shared/lists/README.md; only CI and the dev machines have it)", listsDir)
	}
}

func TestRealLists(t *testing.T) {
	requireLists(t)
	b := NewBuilder()
	var ws []ListWarning
	stats := map[string]ListStats{}
	for _, p := range []string{adguardList, hostsList} {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		st, err := b.ParseList(f, p, func(w ListWarning) { ws = append(ws, w) })
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		stats[p] = st
		t.Logf("%s: %+v", filepath.Base(p), st)
	}
	s := b.Build()
	t.Logf("set: %d rules, %d names, %d warnings", s.Len(), s.Names(), len(ws))

	ag, sb := stats[adguardList], stats[hostsList]
	// AdGuard SDN 2.0.4.55: 27,979 lines, of which 21 exceptions (one of
	// them unanchored), 132 wildcard/regex rules, 63 IP rules, about 130
	// URL-path, cosmetic or browser-only rules, and no garbage.
	if ag.Lines != 27979 || ag.Malformed != 0 || ag.Exceptions != 21 || ag.Blocks < 27000 || ag.Patterns != 132 || ag.IPRules != 63 ||
		ag.Unsupported < 100 || ag.Unsupported > 200 || ag.Answers != 0 {
		t.Errorf("adguard stats out of range: %+v", ag)
	}
	// StevenBlack says "Number of unique domains: 55,983"; its header
	// defines 14 boilerplate names (localhost, broadcasthost, ip6-*, 0.0.0.0).
	if sb.Lines != 58152 || sb.Blocks != 55983 || sb.Rules != 55983 || sb.Ignored != 14 || sb.Malformed != 0 || sb.Unsupported != 0 || sb.Answers != 0 || sb.Duplicates != 0 {
		t.Errorf("hosts stats out of range: %+v", sb)
	}
	if s.Len() != ag.Rules+sb.Rules {
		t.Errorf("Len %d != %d + %d", s.Len(), ag.Rules, sb.Rules)
	}
	for _, w := range ws {
		if w.Kind != Unsupported || !strings.Contains(w.Reason, "unsupported") || w.List != adguardList {
			t.Errorf("unexpected warning %v", w)
		}
	}

	type check struct {
		name   string
		action Action
		list   string
		line   int
	}
	for _, c := range []check{
		// AdGuard, line 20: ||clickiocdn.com^ (subtree).
		{"clickiocdn.com", Block, adguardList, 20},
		{"static.clickiocdn.com", Block, adguardList, 20},
		// Line 70: a plain domain in an adblock list.
		{"sub.octopusads.net", Block, adguardList, 70},
		// Line 91: ||1biznes.net without '^'.
		{"x.1biznes.net", Block, adguardList, 91},
		{"google-analytics.com", Block, hostsList, 22165},
		{"ssl.x.google-analytics.com", Block, adguardList, 24861},
		// StevenBlack lines 41 and 56601 are exact: no subdomains.
		{"adservice.google.nl", Block, hostsList, 41},
		{"x.adservice.google.nl", Forward, "", 0},
		{"facebook.com", Block, hostsList, 56601},
		{"www.facebook.com", Block, hostsList, 57244},
		{"nosuchsub.facebook.com", Forward, "", 0},
		// doubleclick.net: AdGuard's subtree rule (line 27853) comes first
		// in the set, the hosts line 5378 is then a second rule on the
		// name; the exact hosts rule is the more specific one for the name.
		{"doubleclick.net", Block, hostsList, 5378},
		{"anything.doubleclick.net", Block, adguardList, 27853},
		// Exceptions of the AdGuard list free names the hosts list blocks:
		// @@||pagead.l.doubleclick.net^| (hosts line 5640),
		// @@||www.googleadservices.com^| (hosts line 14297).
		{"pagead.l.doubleclick.net", Forward, adguardList, 0},
		{"www.googleadservices.com", Forward, adguardList, 27968},
		{"acdn.adnxs.com", Forward, adguardList, 27973},
		{"ib.adnxs.com", Block, hostsList, 10873},
		{"x.ib.adnxs.com", Block, adguardList, 26687},
		{"other.adnxs.com", Block, adguardList, 5098},
		// Boilerplate of the hosts header.
		{"localhost", Forward, "", 0},
		{"broadcasthost", Forward, "", 0},
		{"example.org", Forward, "", 0},
	} {
		d := s.Decide([]byte(c.name), 1)
		src, _ := s.Rule(d.Rule)
		if d.Action != c.action || src.List != c.list || (c.line != 0 && src.Line != c.line) {
			t.Errorf("Decide(%q) = %v by %s:%d %q; want %v by %s:%d", c.name, d.Action, src.List, src.Line, src.Text, c.action, c.list, c.line)
		}
		if c.action == Forward && c.list != "" && (d.Rule == 0 || !strings.HasPrefix(src.Text, "@@")) {
			t.Errorf("Decide(%q): forwarded without its exception: %+v", c.name, src)
		}
	}
}

// SPDX-License-Identifier: MIT

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dnstun/dnstun/internal/demo"
	"github.com/miekg/dns"
)

// rulesList has one line of each format the filter reads.
const rulesList = `! adblock-style and hosts lines in one file
||adblock.example^
|exact.example^
@@||ok.adblock.example^
||wild*.example^
/^re[0-9]+\.example$/
||typed.example^$dnstype=AAAA
||rew.example^$dnsrewrite=192.0.2.55
||txtrew.example^$dnsrewrite=NOERROR;TXT;dnstun
plain.example
0.0.0.0 hosts.example
192.0.2.77 local.example
||tracker.example^
`

// TestE2EFormatsThroughTheEngine checks every list format through the real
// engine on a real TUN, with a real client.
func TestE2EFormatsThroughTheEngine(t *testing.T) {
	l := startLabLists(t, map[string]string{"rules.txt": rulesList})
	for _, tc := range []struct {
		name  string
		qtype uint16
		want  string
	}{
		{"adblock.example", dns.TypeA, "NXDOMAIN"},
		{"sub.adblock.example", dns.TypeA, "NXDOMAIN"},
		{"ok.adblock.example", dns.TypeA, "NXDOMAIN from upstream"},
		{"exact.example", dns.TypeA, "NXDOMAIN"},
		{"sub.exact.example", dns.TypeA, "NXDOMAIN from upstream"},
		{"wildcard.example", dns.TypeA, "NXDOMAIN"},
		{"re42.example", dns.TypeA, "NXDOMAIN"},
		{"typed.example", dns.TypeAAAA, "NXDOMAIN"},
		{"typed.example", dns.TypeA, "NXDOMAIN from upstream"},
		{"rew.example", dns.TypeA, "192.0.2.55"},
		{"txtrew.example", dns.TypeTXT, "\"dnstun\""},
		{"deep.plain.example", dns.TypeA, "NXDOMAIN"},
		{"hosts.example", dns.TypeA, "NXDOMAIN"},
		{"local.example", dns.TypeA, "192.0.2.77"},
		{"use-application-dns.net", dns.TypeA, "NXDOMAIN"},
		{"pixel.tracker.example", dns.TypeA, "NXDOMAIN"},
	} {
		before := l.PrimaryServer.Queries()
		m := mustQuery(t, l, demo.Resolver4, tc.name, tc.qtype)
		got := demo.AnswerText(m)
		if l.PrimaryServer.Queries() != before && got == "NXDOMAIN" {
			got = "NXDOMAIN from upstream"
		}
		if got != tc.want {
			t.Errorf("%s %s: %s, want %s", tc.name, dns.TypeToString[tc.qtype], got, tc.want)
		}
	}
}

// TestE2EBlockModeCustomAndNoData covers the modes not covered elsewhere
// (nxdomain: the default everywhere; null and refused: their own tests).
func TestE2EBlockModeCustomAndNoData(t *testing.T) {
	l := startLab(t, "--block-mode", "192.0.2.99,2001:db8::99")
	if got := demo.AnswerText(mustQuery(t, l, demo.Resolver4, "ads.doubleclick.net", dns.TypeA)); got != "192.0.2.99" {
		t.Errorf("custom A: %s", got)
	}
	if got := demo.AnswerText(mustQuery(t, l, demo.Resolver6, "ads.doubleclick.net", dns.TypeAAAA)); got != "2001:db8::99" {
		t.Errorf("custom AAAA: %s", got)
	}
	l2 := startLab(t, "--block-mode", "nodata")
	if m := mustQuery(t, l2, demo.Resolver4, "ads.doubleclick.net", dns.TypeA); m.Rcode != dns.RcodeSuccess || len(m.Answer) != 0 {
		t.Errorf("nodata: %v", m)
	}
}

// TestE2EPerListBlockModes: each list answers its blocks its own way.
func TestE2EPerListBlockModes(t *testing.T) {
	l := captureLab(t)
	dir := l.Dir
	os.WriteFile(filepath.Join(dir, "null.txt"), []byte("nulled.example\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "refused.txt"), []byte("refused.example\n"), 0o644)
	exe, _ := os.Executable()
	args := append([]string{"--log-level", "info",
		"--blocklist", filepath.Join(dir, "null.txt") + " mode=null ttl=42",
		"--blocklist", filepath.Join(dir, "refused.txt") + " mode=refused"}, demo.UpstreamArgs...)
	if err := l.StartDnstun(t.Context(), []string{exe}, []string{"DNSTUN_TEST_MAIN=1"}, map[string]string{"demo.txt": demo.Blocklist}, args...); err != nil {
		t.Fatal(err)
	}
	m := mustQuery(t, l, demo.Resolver4, "nulled.example", dns.TypeA)
	if demo.AnswerText(m) != "0.0.0.0" || m.Answer[0].Header().Ttl != 42 {
		t.Errorf("null list: %v", m)
	}
	if m := mustQuery(t, l, demo.Resolver4, "refused.example", dns.TypeA); m.Rcode != dns.RcodeRefused {
		t.Errorf("refused list: %v", m)
	}
	if got := demo.AnswerText(mustQuery(t, l, demo.Resolver4, "ads.doubleclick.net", dns.TypeA)); got != "NXDOMAIN" {
		t.Errorf("default list: %s", got)
	}
}

// startLabLists is startLab with the given lists instead of the demo's.
func startLabLists(t *testing.T, lists map[string]string, args ...string) *demo.Lab {
	t.Helper()
	l := captureLab(t) // the lab, without dnstun yet
	exe, _ := os.Executable()
	if err := l.StartDnstun(t.Context(), []string{exe}, []string{"DNSTUN_TEST_MAIN=1"}, lists, append(append([]string{"--log-level", "info"}, demo.UpstreamArgs...), args...)...); err != nil {
		t.Fatal(err)
	}
	return l
}

func TestExplainCommand(t *testing.T) {
	dir := t.TempDir()
	list := filepath.Join(dir, "l.txt")
	os.WriteFile(list, []byte("||ads.example^\n@@||ok.ads.example^\n"), 0o644)
	exe, _ := os.Executable()
	run := func(args ...string) string {
		cmd := exec.Command(exe, append([]string{"explain", "--blocklist", list}, args...)...)
		cmd.Env = append(os.Environ(), "DNSTUN_TEST_MAIN=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("explain %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	if out := run("x.ads.example"); !strings.HasPrefix(out, "x.ads.example A: block (nxdomain)") || !strings.Contains(out, "l.txt:1: ||ads.example^") {
		t.Errorf("blocked:\n%s", out)
	}
	cmd := exec.Command(exe, "check", "--upstream", "192.0.2.1", "--list-cache", dir, "--blocklist", "https://lists.example/ads.txt")
	cmd.Env = append(os.Environ(), "DNSTUN_TEST_MAIN=1")
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "not downloaded yet") {
		t.Errorf("check with an uncached URL list: %v\n%s", err, out)
	}
	if out := run("ok.ads.example", "AAAA"); !strings.HasPrefix(out, "ok.ads.example AAAA: forward") || !strings.Contains(out, "* "+list+":2") {
		t.Errorf("exception:\n%s", out)
	}
	// run's other list options: inline rules (per-rule answers), the
	// default block mode, the bypass switch.
	for _, c := range []struct{ args []string }{
		{[]string{"--rule", "||r.example^$dnsrewrite=REFUSED", "r.example", "A: answer (REFUSED)"}},
		{[]string{"--rule", "||r.example^$dnsrewrite=NOERROR", "r.example", "A: answer (NODATA)"}},
		{[]string{"--rule", "192.0.2.7 r.example", "r.example", "A: answer (192.0.2.7)"}},
		{[]string{"--block-mode", "null", "x.ads.example", "A: block (null)"}},
		{[]string{"--bypass-signals=false", "mask.icloud.com", "A: forward"}},
		{[]string{"mask.icloud.com", "A: block (nxdomain)"}},
	} {
		want := c.args[len(c.args)-1]
		name := c.args[len(c.args)-2]
		if out := run(c.args[:len(c.args)-1]...); !strings.HasPrefix(out, name+" "+want) {
			t.Errorf("explain %v: want %q\n%s", c.args[:len(c.args)-1], name+" "+want, out)
		}
	}
}

// TestE2EInlineRulesAndBypassSwitch: rules from the config file (local
// records, a CNAME rewrite, an exception), and the bypass signals off.
func TestE2EInlineRulesAndBypassSwitch(t *testing.T) {
	l := captureLab(t)
	cfg := filepath.Join(l.Dir, "dnstun.yaml")
	os.WriteFile(cfg, []byte(`rules:
  - 192.0.2.10 printer.lan
  - "||nas.lan^$dnsrewrite=www.example.com"
  - "||ads.example.com^"
  - "@@||cdn.ads.example.com^"
bypass_signals: false
`), 0o644)
	exe, _ := os.Executable()
	args := append([]string{"--log-level", "info", "--config", cfg}, demo.UpstreamArgs...)
	if err := l.StartDnstun(t.Context(), []string{exe}, []string{"DNSTUN_TEST_MAIN=1"}, nil, args...); err != nil {
		t.Fatal(err)
	}
	if got := demo.AnswerText(mustQuery(t, l, demo.Resolver4, "printer.lan", dns.TypeA)); got != "192.0.2.10" {
		t.Errorf("local record: %s", got)
	}
	m := mustQuery(t, l, demo.Resolver4, "nas.lan", dns.TypeA)
	if len(m.Answer) != 2 || demo.AnswerText(m) != "CNAME 192.0.2.80" && !strings.Contains(demo.AnswerText(m), "192.0.2.80") {
		t.Errorf("CNAME rewrite: %v", m)
	}
	if got := demo.AnswerText(mustQuery(t, l, demo.Resolver4, "x.ads.example.com", dns.TypeA)); got != "NXDOMAIN" {
		t.Errorf("inline block: %s", got)
	}
	if got := demo.AnswerText(mustQuery(t, l, demo.Resolver4, "cdn.ads.example.com", dns.TypeA)); got != "192.0.2.67" {
		t.Errorf("inline exception: %s", got)
	}
	// With the signals off the canary name is forwarded (the lab's
	// upstream does not know it: NXDOMAIN from there).
	before := l.PrimaryServer.QueriesFor("use-application-dns.net")
	mustQuery(t, l, demo.Resolver4, "use-application-dns.net", dns.TypeA)
	if l.PrimaryServer.QueriesFor("use-application-dns.net") != before+1 {
		t.Error("bypass signals off, but the canary was answered locally")
	}
}

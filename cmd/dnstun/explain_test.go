// SPDX-License-Identifier: MIT

package main

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dnstun/dnstun/filter"
	"github.com/miekg/dns"
)

// TestExplainProcess: --process fills both the process name and the
// executable of the query, which $process rules compare.
func TestExplainProcess(t *testing.T) {
	list := filepath.Join(t.TempDir(), "p.txt")
	if err := os.WriteFile(list, []byte("||x.example^$process=firefox\n||y.example^$process=~curl\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--process", "firefox", "x.example"}, "x.example A: block (nxdomain)\n* " + list + ":1: ||x.example^$process=firefox  [block] won"},
		{[]string{"--process", "FireFox", "x.example"}, "x.example A: block (nxdomain)"},
		{[]string{"--process", "curl", "x.example"}, "x.example A: forward\n  " + list + ":1: ||x.example^$process=firefox  [block] did not apply: $process"},
		{[]string{"x.example"}, "x.example A: forward"},
		{[]string{"y.example"}, "y.example A: block (nxdomain)"},
		{[]string{"--process", "curl", "y.example"}, "y.example A: forward"},
	} {
		var out, errb bytes.Buffer
		args := append([]string{"explain", "--block-mode", "nxdomain", "--blocklist", list}, tc.args...)
		if code := Main(args, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), tc.want) {
			t.Errorf("%v: code %d\nstdout %q\nstderr %q\nwant prefix %q", tc.args, code, out.String(), errb.String(), tc.want)
		}
	}
}

// TestExplainAnswerSummary: explain prints what the engine answers for the
// type, v4-mapped IPv6 addresses in AAAA answers included.
func TestExplainAnswerSummary(t *testing.T) {
	a := netip.MustParseAddr
	d := filter.Decision{Action: filter.Answer, Addrs: []netip.Addr{a("192.0.2.1"), a("::ffff:192.0.2.2"), a("2001:db8::1")}}
	for qt, want := range map[uint16]string{
		dns.TypeA:    "192.0.2.1",
		dns.TypeAAAA: "::ffff:192.0.2.2, 2001:db8::1",
		dns.TypeMX:   "NODATA",
	} {
		if got := answerSummary(d, qt); got != want {
			t.Errorf("%s: %q, want %q", dns.TypeToString[qt], got, want)
		}
	}
	var out, errb bytes.Buffer
	if code := Main([]string{"explain", "--rule", "::ffff:192.0.2.9 m.example", "m.example", "AAAA"}, &out, &errb); code != 0 ||
		!strings.HasPrefix(out.String(), "m.example AAAA: answer (::ffff:192.0.2.9)") {
		t.Errorf("code %d\nstdout %q\nstderr %q", code, out.String(), errb.String())
	}
}

// SPDX-License-Identifier: MIT

package main

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/dnstun/dnstun/internal/demo"
	"github.com/dnstun/dnstun/internal/privtest"
	"github.com/miekg/dns"
)

// TestE2ECache: repeated queries over UDP and TCP are answered from the
// cache (the upstream sees one); `dnstun cache flush NAME` drops that name
// only, `dnstun cache flush` everything.
func TestE2ECache(t *testing.T) {
	privtest.RequirePriv(t)
	l, err := demo.NewLab("dnstun-cache")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	exe, _ := os.Executable()
	if err := l.StartDnstun(context.Background(), []string{exe}, []string{"DNSTUN_TEST_MAIN=1"}, nil, demo.UpstreamArgs...); err != nil {
		t.Fatal(err)
	}
	seen := func(name string) int { return l.PrimaryServer.QueriesFor(name) + l.PrimaryTCP.QueriesFor(name) }
	askBoth := func(name string) {
		t.Helper()
		if m := mustQuery(t, l, demo.Resolver4, name, dns.TypeA); m.Rcode != dns.RcodeSuccess || len(m.Answer) == 0 {
			t.Fatalf("%s over UDP: %v", name, m)
		}
		m, _, err := l.QueryNet("tcp", demo.Resolver6, name, dns.TypeA, 3*time.Second)
		if err != nil || m.Rcode != dns.RcodeSuccess || len(m.Answer) == 0 {
			t.Fatalf("%s over TCP: %v %v", name, m, err)
		}
	}
	askBoth("www.example.com")
	askBoth("www.example.com")
	askBoth("mail.example.com")
	if seen("www.example.com") != 1 || seen("mail.example.com") != 1 {
		t.Fatalf("the upstream saw www %d, mail %d; want 1 each", seen("www.example.com"), seen("mail.example.com"))
	}
	flush := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(exe, append([]string{"cache", "flush", "--control", l.ControlPath()}, args...)...)
		cmd.Env = append(os.Environ(), "DNSTUN_TEST_MAIN=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("dnstun cache flush %v: %v %s", args, err, out)
		}
		return string(out)
	}
	if out := flush("WWW.example.com"); !strings.Contains(out, "flushed 1 cache entries") {
		t.Errorf("flush one name: %q", out)
	}
	askBoth("www.example.com")
	askBoth("mail.example.com")
	if seen("www.example.com") != 2 || seen("mail.example.com") != 1 {
		t.Errorf("after flushing www: the upstream saw www %d, mail %d; want 2 and 1", seen("www.example.com"), seen("mail.example.com"))
	}
	flush()
	askBoth("mail.example.com")
	if seen("mail.example.com") != 2 {
		t.Errorf("after flushing all: the upstream saw mail %d, want 2", seen("mail.example.com"))
	}
	st, err := client(t, l).Stats(context.Background())
	if err != nil || st["cache_hits"] < 5 {
		t.Errorf("stats: %v %v", st, err)
	}
}

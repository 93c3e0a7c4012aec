// SPDX-License-Identifier: MIT

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMain lets the test binary stand in for the dnstun binary: the
// end-to-end tests start it as `dnstun run` inside a namespace with
// DNSTUN_TEST_MAIN=1.
func TestMain(m *testing.M) {
	if os.Getenv("DNSTUN_TEST_MAIN") == "1" {
		os.Exit(Main(os.Args[1:], os.Stdout, os.Stderr))
	}
	if os.Getenv("DNSTUN_TEST_CLIENT") == "1" {
		os.Exit(testClient(os.Args[1:]))
	}
	os.Exit(m.Run())
}

func TestMainUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if code := Main(nil, &out, &errb); code != 2 || !strings.Contains(errb.String(), "Usage") {
		t.Errorf("no args: code %d, stderr %q", code, errb.String())
	}
	if code := Main([]string{"frobnicate"}, &out, &errb); code != 2 {
		t.Errorf("unknown command: code %d", code)
	}
	if code := Main([]string{"help"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "dnstun run") {
		t.Errorf("help: code %d", code)
	}
}

// TestCheckAndExplain: the settings commands read flags and files through
// the same options as run (the validation itself is config's tests).
func TestCheckAndExplain(t *testing.T) {
	dir := t.TempDir()
	list := filepath.Join(dir, "ads.txt")
	os.WriteFile(list, []byte("||ads.example^\n0.0.0.0 tracker.example\nbad line with spaces ^^\n"), 0o644)
	cfg := filepath.Join(dir, "dnstun.yaml")
	os.WriteFile(cfg, []byte("blocklists: [\""+list+" mode=null\"]\nblock_mode: 192.0.2.1\n"), 0o644)
	for _, tc := range []struct {
		args     []string
		code     int
		out, err string
	}{
		{[]string{"check", "--config", cfg}, 0, "ads.txt:3: not a rule (several words and no address): \"bad line with spaces ^^\"\nconfiguration ok: 2 rules from 1 lists, upstreams the system's resolvers (failover), mode tun, capture false", ""},
		{[]string{"check", "--config", cfg, "--upstream", "192.0.2.53"}, 0, "upstreams [192.0.2.53:53]", ""},
		{[]string{"check", "--config", cfg, "--max-pending", "1048576"}, 1, "", "--max-pending: 1048576 is out of range"},
		{[]string{"check", "--block-mode", "192.0.2.1,2001:db8::1"}, 0, "configuration ok", ""},
		{[]string{"check", "stray"}, 2, "", `unexpected argument "stray"`},
		{[]string{"explain", "--config", cfg, "x.ads.example", "AAAA"}, 0, "x.ads.example AAAA: block (null)\n* " + list + ":1: ||ads.example^", ""},
		{[]string{"explain", "--rule", "||ok.example^", "--block-mode", "refused", "ok.example"}, 0, "ok.example A: block (refused)", ""},
		{[]string{"explain", "--config", cfg}, 2, "", "want NAME [TYPE]"},
	} {
		var out, errb bytes.Buffer
		code := Main(tc.args, &out, &errb)
		if code != tc.code || !strings.Contains(out.String(), tc.out) || !strings.Contains(errb.String(), tc.err) {
			t.Errorf("%v: code %d, stdout %q, stderr %q; want code %d, stdout with %q, stderr with %q", tc.args, code, out.String(), errb.String(), tc.code, tc.out, tc.err)
		}
	}
}

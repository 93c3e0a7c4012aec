// SPDX-License-Identifier: MIT

package main

import (
	"bytes"
	"os"
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
	os.Exit(m.Run())
}

func TestParseRunFlags(t *testing.T) {
	resolv := t.TempDir() + "/resolv.conf"
	os.WriteFile(resolv, []byte("nameserver 192.0.2.1\nnameserver 198.19.53.53\n"), 0o644)
	for _, tc := range []struct {
		name    string
		args    []string
		wantErr string
		check   func(t *testing.T, c *runConfig)
	}{
		{"defaults read resolv.conf and skip our own resolver", []string{"--resolv-conf", resolv}, "", func(t *testing.T, c *runConfig) {
			if len(c.upstreams) != 1 || c.upstreams[0].String() != "192.0.2.1:53" {
				t.Errorf("upstreams %v", c.upstreams)
			}
			if len(c.tunAddrs) != 2 || c.tunAddrs[0] != defaultTunAddr4 || c.tunAddrs[1] != defaultTunAddr6 {
				t.Errorf("tun addrs %v", c.tunAddrs)
			}
			if c.engine.Mark == 0 {
				t.Error("upstream sockets are not marked")
			}
		}},
		{"v4-only resolver gets only a v4 tun address", []string{"--resolver", "198.19.0.53", "--upstream", "192.0.2.1:5353"}, "", func(t *testing.T, c *runConfig) {
			if len(c.tunAddrs) != 1 || c.tunAddrs[0] != defaultTunAddr4 {
				t.Errorf("tun addrs %v", c.tunAddrs)
			}
			if c.upstreams[0].Port() != 5353 {
				t.Errorf("upstreams %v", c.upstreams)
			}
		}},
		{"block mode", []string{"--upstream", "192.0.2.1", "--block-mode", "null"}, "", func(t *testing.T, c *runConfig) {
			if c.engine.BlockMode.String() != "null" {
				t.Errorf("mode %v", c.engine.BlockMode)
			}
		}},
		{"flow mode", []string{"--upstream", "192.0.2.1", "--mode", "flow", "--listen", "127.0.0.1:5300"}, "", func(t *testing.T, c *runConfig) {
			if c.mode != "flow" || c.listen.String() != "127.0.0.1:5300" {
				t.Errorf("mode %q listen %v", c.mode, c.listen)
			}
		}},
		{"bad mode", []string{"--upstream", "192.0.2.1", "--mode", "socks"}, "--mode", nil},
		{"bad listen", []string{"--upstream", "192.0.2.1", "--mode", "flow", "--listen", "localhost"}, "--listen", nil},
		{"per-list settings", []string{"--upstream", "192.0.2.1", "--blocklist", "/x/a.txt mode=null ttl=30", "--blocklist", "https://l.example/b.txt mode=192.0.2.1"}, "", func(t *testing.T, c *runConfig) {
			ls, err := parseListSpec(c.blocklists[0])
			if err != nil || ls.src != "/x/a.txt" || ls.opts.Mode.String() != "null" || ls.opts.TTL != 30 {
				t.Errorf("spec %+v %v", ls, err)
			}
			ls, err = parseListSpec(c.blocklists[1])
			if err != nil || ls.src != "https://l.example/b.txt" || len(ls.opts.BlockAddrs) != 1 {
				t.Errorf("spec %+v %v", ls, err)
			}
		}},
		{"bad per-list setting", []string{"--upstream", "192.0.2.1", "--blocklist", "/x/a.txt colour=red"}, "unknown setting", nil},
		{"bad block mode", []string{"--upstream", "192.0.2.1", "--block-mode", "drop"}, "--block-mode", nil},
		{"upstream loops to our resolver", []string{"--upstream", "198.19.53.53"}, "would loop", nil},
		{"resolver equals tun address", []string{"--upstream", "192.0.2.1", "--resolver", "198.19.53.1"}, "TUN's own address", nil},
		{"host name upstream", []string{"--upstream", "dns.example"}, "host name", nil},
		{"bad resolver", []string{"--upstream", "192.0.2.1", "--resolver", "x"}, "not an IP", nil},
		{"no upstream anywhere", []string{"--resolv-conf", t.TempDir() + "/missing"}, "no --upstream", nil},
		{"stray argument", []string{"--upstream", "192.0.2.1", "extra"}, "unexpected argument", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			c, err := parseRunFlags(tc.args, &stderr)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to mention %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
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

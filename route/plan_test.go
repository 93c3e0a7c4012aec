// SPDX-License-Identifier: MIT

package route

import (
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./route -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from %s:\n--- got\n%s--- want\n%s", name, path, got, want)
	}
}

func TestPlanLinuxGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"linux-dual", Config{Tun: "dnstun0", IPv4: true, IPv6: true}},
		{"linux-v4-nft", Config{Tun: "dnstun0", IPv4: true, NFT: true}},
		{"linux-custom", Config{Tun: "dt1", Table: 100, Pref: 200, Mask: 0xff000000, IPv6: true}},
	} {
		t.Run(tc.name, func(t *testing.T) { golden(t, tc.name, PlanLinux(tc.cfg).String()) })
	}
}

func TestPlanLinuxShape(t *testing.T) {
	p := PlanLinux(Config{Tun: "dnstun0", IPv4: true, IPv6: true})
	// The exemption lives in each rule's own selector, so no rule depends
	// on another and any subset left behind is harmless.
	for _, r := range p.Rules {
		if !r.IifLo || r.Mark != 0 || r.Mask&DefaultMark != DefaultMark || r.Dport != 53 || r.IPProto != "udp" {
			t.Errorf("rule %v: want iif lo, fwmark 0/mask covering the own mark, udp dport 53", r)
		}
		if r.Table != DefaultTable {
			t.Errorf("rule %v: table", r)
		}
	}
	for _, r := range p.Routes {
		if r.Dev != "dnstun0" {
			t.Errorf("route %v does not go through the TUN", r)
		}
	}
	if len(p.Sysctls) != 0 {
		t.Errorf("sysctls without nft: %v", p.Sysctls)
	}
}

func TestPlanDarwinGolden(t *testing.T) {
	p := PlanDarwin(DarwinConfig{Resolvers: []netip.Addr{netip.MustParseAddr("198.19.53.53"), netip.MustParseAddr("fd64:6e73:7475::53")}})
	golden(t, "darwin", p.String())
	if p.Key != "State:/Network/Service/dnstun-dns-filter/DNS" || p.Remove != "remove "+p.Key+"\n" {
		t.Errorf("key %q remove %q", p.Key, p.Remove)
	}
}

func TestResolvedPlanGolden(t *testing.T) {
	cmds := ResolvedPlan("dnstun0", []netip.Addr{netip.MustParseAddr("198.19.53.53")})
	var s string
	for _, c := range cmds {
		for i, a := range c {
			if i > 0 {
				s += " "
			}
			s += a
		}
		s += "\n"
	}
	golden(t, "resolved", s)
}

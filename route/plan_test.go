// SPDX-License-Identifier: MIT

package route

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/dnstun/dnstun/internal/golden"
)

func TestPlanLinuxGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"linux-dual", Config{Tun: "dnstun0", IPv4: true, IPv6: true}},
		{"linux-v4-nft", Config{Tun: "dnstun0", IPv4: true, NFT: true}},
		{"linux-custom", Config{Tun: "dt1", Table: 100, Pref: 200, Mask: 0xff000000, IPv6: true}},
	} {
		t.Run(tc.name, func(t *testing.T) { golden.Check(t, tc.name, PlanLinux(tc.cfg).String()) })
	}
}

func TestPlanLinuxShape(t *testing.T) {
	p := PlanLinux(Config{Tun: "dnstun0", IPv4: true, IPv6: true})
	// The exemption lives in each rule's own selector, so no rule depends
	// on another and any subset left behind is harmless.
	protos := map[string]int{}
	for _, r := range p.Rules {
		if !r.IifLo || r.Mark != 0 || r.Mask&DefaultMark != DefaultMark || r.Dport != 53 || (r.IPProto != "udp" && r.IPProto != "tcp") {
			t.Errorf("rule %v: want iif lo, fwmark 0/mask covering the own mark, udp or tcp dport 53", r)
		}
		if r.Table != DefaultTable {
			t.Errorf("rule %v: table", r)
		}
		protos[fmt.Sprintf("-%d %s", r.Family, r.IPProto)]++
	}
	// UDP/53 and TCP/53, for both families, once each.
	if want := map[string]int{"-4 udp": 1, "-4 tcp": 1, "-6 udp": 1, "-6 tcp": 1}; fmt.Sprint(protos) != fmt.Sprint(want) {
		t.Errorf("rules per family and protocol: %v, want %v", protos, want)
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

// TestPlanLinuxTCPLikeUDP: every piece of capture covers TCP/53 as it
// covers UDP/53, and each rule can be told apart by its priority (the
// monitor re-adds deleted rules one by one; Withdraw deletes them so).
func TestPlanLinuxTCPLikeUDP(t *testing.T) {
	for _, c := range []Config{
		{Tun: "dnstun0", IPv4: true, IPv6: true, NFT: true},
		{Tun: "dt1", Table: 100, Pref: 200, Mask: 0xff000000, IPv4: true, IPv6: true},
	} {
		p := PlanLinux(c)
		c.setDefaults()
		seen := map[[2]int]Rule{}
		byProto := map[string]Rule{}
		for _, r := range p.Rules {
			k := [2]int{r.Family, r.Pref}
			if o, dup := seen[k]; dup {
				t.Errorf("%v and %v share a priority", o, r)
			}
			seen[k] = r
			if r.Table != c.Table {
				t.Errorf("rule %v: table, want %d", r, c.Table)
			}
			if r.IPProto != "" {
				byProto[fmt.Sprint(r.Family, r.IPProto)] = r
			}
		}
		for _, f := range []int{4, 6} {
			u, tc := byProto[fmt.Sprint(f, "udp")], byProto[fmt.Sprint(f, "tcp")]
			if u.Pref != c.Pref || tc.Pref != c.Pref+1 {
				t.Errorf("-%d: udp pref %d, tcp pref %d; want %d and %d", f, u.Pref, tc.Pref, c.Pref, c.Pref+1)
			}
			// The same selector but for the protocol: the own mark exempts
			// dnstun's TCP upstream sockets as it does its UDP ones.
			u.IPProto, u.Pref = "tcp", tc.Pref
			if u != tc {
				t.Errorf("-%d: tcp rule %v is not the udp rule %v for tcp", f, tc, u)
			}
			if tc.Mark&c.Mask != 0 || DefaultMark&tc.Mask == 0 {
				t.Errorf("-%d: tcp rule %v does not exempt dnstun's own mark %#x", f, tc, DefaultMark)
			}
		}
		if !c.NFT {
			continue
		}
		// nftables: the output chain marks UDP/53 and TCP/53; the
		// prerouting chain marks everything from the TUN (no protocol
		// match), so TCP segments from the TUN pass strict rp_filter as UDP
		// replies do; its rule is the last line (startNFT waits for it).
		nft := strings.Join(p.NFT, "\n")
		for _, proto := range []string{"udp", "tcp"} {
			if !strings.Contains(nft, "output meta l4proto "+proto+" th dport 53 meta mark set") {
				t.Errorf("nft output chain does not mark %s/53:\n%s", proto, nft)
			}
		}
		last := p.NFT[len(p.NFT)-1]
		if !strings.Contains(last, "prerouting iifname") || strings.Contains(last, "l4proto") || strings.Contains(last, "dport") {
			t.Errorf("last nft command %q: want the prerouting mark for everything from the TUN", last)
		}
	}
}

func TestPlanDarwinGolden(t *testing.T) {
	cfg := DarwinConfig{Resolvers: []netip.Addr{netip.MustParseAddr("198.19.53.53"), netip.MustParseAddr("fd64:6e73:7475::53")}, PID: 4242}
	p, err := PlanDarwin(cfg)
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "darwin", p.String())
	if p.Key != "State:/Network/Service/dnstun-dns-filter/DNS" || p.Remove != "remove "+p.Key+"\n" || p.Show != "show "+p.Key+"\n" {
		t.Errorf("key %q remove %q show %q", p.Key, p.Remove, p.Show)
	}
	// What scutil shows for the key this plan publishes (a fixture of
	// scutil's dump format, internal/macos/testdata/SOURCES.md) passes the
	// check of the read-back.
	if err := VerifyDarwinKey(golden.MacFixture(t, "show-dnstun-key.txt"), cfg); err != nil {
		t.Errorf("read-back of the published key: %v", err)
	}
}

func TestPlanDarwinRefuses(t *testing.T) {
	r := []netip.Addr{netip.MustParseAddr("198.19.53.53")}
	var many []netip.Addr
	for i := range 8 {
		many = append(many, netip.MustParseAddr(fmt.Sprintf("fd64:6e73:7475:1234:5678:9abc:def0:%04x", i)))
	}
	for _, tc := range []struct {
		name string
		cfg  DarwinConfig
		want string
	}{
		{"no resolver", DarwinConfig{PID: 1}, "no virtual resolver"},
		{"no pid", DarwinConfig{Resolvers: r}, "pid 0"},
		{"a line scutil would cut", DarwinConfig{Resolvers: many, PID: 1}, "scutil reads 254"},
		{"a service id that ends the line", DarwinConfig{Resolvers: r, PID: 1, ServiceID: "x\nremove State:/Network/Global/DNS"}, "no spaces"},
	} {
		if _, err := PlanDarwin(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestVerifyDarwinKey(t *testing.T) {
	cfg := DarwinConfig{Resolvers: []netip.Addr{netip.MustParseAddr("198.19.53.53"), netip.MustParseAddr("fd64:6e73:7475::53")}, PID: 4242}
	key := golden.MacFixture(t, "show-dnstun-key.txt")
	for _, tc := range []struct {
		name, show string
		cfg        DarwinConfig
		want       string
	}{
		{"missing", golden.MacFixture(t, "show-missing.txt"), cfg, "not in the dynamic store"},
		{"another owner", key, DarwinConfig{Resolvers: cfg.Resolvers, PID: 7}, `owned by pid "4242"`},
		{"other addresses", key, DarwinConfig{Resolvers: cfg.Resolvers[:1], PID: 4242}, "not [198.19.53.53]"},
		{"not a default resolver", strings.Replace(key, "    0 : \n", "    0 : example.com\n", 1), cfg, "no empty SupplementalMatchDomains"},
		{"an error instead", "  Permission denied\n", cfg, "Permission denied"},
	} {
		if err := VerifyDarwinKey(tc.show, tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestDecideSweep(t *testing.T) {
	key := golden.MacFixture(t, "show-dnstun-key.txt") // DnstunPID 4242
	dead := func(int) bool { return false }
	live := func(int) bool { return true }
	for _, tc := range []struct {
		name             string
		show             string
		journalPID, self int
		alive            func(int) bool
		remove           bool
		why              string
	}{
		{"the journal's dead instance", key, 4242, 1, live, true, "dead instance of the journal"},
		{"an earlier process with our pid", key, 0, 4242, live, true, "this one's pid"},
		{"owner gone", key, 0, 1, dead, true, "no longer runs"},
		{"owner running", key, 99, 1, live, false, "which is running"},
		{"no marker", golden.MacFixture(t, "show-state-service-dns.txt"), 4242, 4242, dead, false, "no DnstunPID"},
		{"marker not a pid", strings.Replace(key, ": 4242", ": x", 1), 0, 1, dead, false, "not a pid"},
		{"no key", golden.MacFixture(t, "show-missing.txt"), 4242, 1, dead, false, ""},
	} {
		remove, why, err := DecideSweep(tc.show, tc.journalPID, tc.self, tc.alive)
		if err != nil || remove != tc.remove || !strings.Contains(why, tc.why) || (tc.why == "" && why != "") {
			t.Errorf("%s: remove=%v why=%q err=%v", tc.name, remove, why, err)
		}
	}
	if _, _, err := DecideSweep("  Permission denied\n", 0, 1, dead); err == nil {
		t.Error("an error from scutil decided nothing")
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
	golden.Check(t, "resolved", s)
}

// SPDX-License-Identifier: MIT

package upstream

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/dnstun/dnstun/internal/golden"
)

// dnstun's own addresses with the default flags: virtual resolvers and TUN
// addresses.
var ownAddrs = []netip.Addr{
	netip.MustParseAddr("198.19.53.53"), netip.MustParseAddr("fd64:6e73:7475::53"),
	netip.MustParseAddr("198.19.53.1"), netip.MustParseAddr("fd64:6e73:7475::1"),
}

func TestDarwinScriptsGolden(t *testing.T) {
	svc, err := DarwinServiceScript("8A2E6C39-5F1B-4E8E-9C6A-3F2D1B0A7E44")
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "darwin-resolver-scripts", "# DarwinGlobalScript\n"+DarwinGlobalScript+"# DarwinServiceScript\n"+svc)
	for _, bad := range []string{"", "a b", "x\nremove State:/Network/Global/DNS", `a"b`} {
		if _, err := DarwinServiceScript(bad); err == nil {
			t.Errorf("service id %q accepted", bad)
		}
	}
}

func TestPickDarwinResolvers(t *testing.T) {
	ipv4 := golden.MacFixture(t, "show-global-ipv4.txt")
	gdns := golden.MacFixture(t, "show-global-dns.txt")
	gdnsOwn := golden.MacFixture(t, "show-global-dns-captured.txt")
	setup := golden.MacFixture(t, "show-setup-service-dns.txt")
	state := golden.MacFixture(t, "show-state-service-dns.txt")
	missing := golden.MacFixture(t, "show-missing.txt")
	const svc = "8A2E6C39-5F1B-4E8E-9C6A-3F2D1B0A7E44"
	ownAndReal := "<dictionary> {\n  ServerAddresses : <array> {\n    0 : 198.19.53.53\n    1 : 1.1.1.1\n  }\n}\n"
	for _, tc := range []struct {
		name             string
		d                DarwinDNSDumps
		source, ups, own string
		err              string
	}{
		{name: "DHCP, before capture", d: DarwinDNSDumps{ipv4 + gdns, missing + state},
			source: "State:/Network/Service/" + svc + "/DNS", ups: "[192.168.1.1:53 [fe80::1%en0]:53]", own: "[]"},
		{name: "set by hand wins over DHCP", d: DarwinDNSDumps{ipv4 + gdns, setup + state},
			source: "Setup:/Network/Service/" + svc + "/DNS", ups: "[9.9.9.9:53 [2620:fe::fe]:53]", own: "[]"},
		// Defect 3: capture made dnstun the global resolver; the primary
		// service's own key still names the network's resolver.
		{name: "global resolver is dnstun itself", d: DarwinDNSDumps{ipv4 + gdnsOwn, missing + state},
			source: "State:/Network/Service/" + svc + "/DNS", ups: "[192.168.1.1:53 [fe80::1%en0]:53]", own: "[]"},
		{name: "dnstun's address set by hand is left out", d: DarwinDNSDumps{ipv4 + gdnsOwn, ownAndReal + state},
			source: "Setup:/Network/Service/" + svc + "/DNS", ups: "[1.1.1.1:53]", own: "[198.19.53.53:53]"},
		{name: "a service without DNS keys falls back to the global one", d: DarwinDNSDumps{ipv4 + gdns, missing + missing},
			source: "State:/Network/Global/DNS", ups: "[192.168.1.1:53 [fe80::1%en0]:53]", own: "[]"},
		{name: "only dnstun anywhere", d: DarwinDNSDumps{ipv4 + gdnsOwn, missing + missing},
			err: "only dnstun's own addresses"},
		{name: "offline", d: DarwinDNSDumps{missing + missing, ""}, err: "no such key"},
		{name: "not scutil output", d: DarwinDNSDumps{"scutil: command not found\n", ""}, err: "2 commands"},
		{name: "service read cut short", d: DarwinDNSDumps{ipv4 + gdns, state}, err: "2 commands"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := PickDarwinResolvers(tc.d, ownAddrs)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want one containing %q (result %+v)", err, tc.err, r)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.Source != tc.source || fmt.Sprint(r.Upstreams) != tc.ups || fmt.Sprint(r.Own) != tc.own {
				t.Errorf("source %s upstreams %v own %v", r.Source, r.Upstreams, r.Own)
			}
			if r.PrimaryService != svc || r.PrimaryInterface != "en0" {
				t.Errorf("primary %q %q", r.PrimaryService, r.PrimaryInterface)
			}
		})
	}
	_, err := PickDarwinResolvers(DarwinDNSDumps{ipv4 + gdnsOwn, missing + missing}, ownAddrs)
	if !errors.Is(err, ErrNoUsableResolver) {
		t.Errorf("only-own error does not wrap ErrNoUsableResolver: %v", err)
	}
	if svc2, iface, err := PrimaryOf(ipv4 + gdns); svc2 != svc || iface != "en0" || err != nil {
		t.Errorf("PrimaryOf: %q %q %v", svc2, iface, err)
	}
	if svc2, _, err := PrimaryOf(missing + missing); svc2 != "" || err != nil {
		t.Errorf("PrimaryOf offline: %q %v", svc2, err)
	}
}

func TestFilterOwn(t *testing.T) {
	ap := func(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }
	usable, onlyOwn := FilterOwn([]netip.AddrPort{ap("198.19.53.53:53"), ap("[::ffff:198.19.53.1]:53"), ap("[fd64:6e73:7475::53%en0]:53")}, ownAddrs)
	if len(usable) != 0 || !onlyOwn {
		t.Errorf("own only (mapped, zoned): %v %v", usable, onlyOwn)
	}
	usable, onlyOwn = FilterOwn([]netip.AddrPort{ap("198.19.53.53:53"), ap("192.0.2.1:53")}, ownAddrs)
	if fmt.Sprint(usable) != "[192.0.2.1:53]" || onlyOwn {
		t.Errorf("mixed: %v %v", usable, onlyOwn)
	}
	if usable, onlyOwn = FilterOwn(nil, ownAddrs); len(usable) != 0 || onlyOwn {
		t.Errorf("empty: %v %v", usable, onlyOwn)
	}
}

func TestRefreshUpstreams(t *testing.T) {
	ap := func(ss ...string) []netip.AddrPort {
		var out []netip.AddrPort
		for _, s := range ss {
			out = append(out, netip.MustParseAddrPort(s))
		}
		return out
	}
	last := ap("192.168.1.1:53")
	// The system names only dnstun: keep the last good list, say why.
	r := RefreshUpstreams(last, ap("198.19.53.53:53", "[fd64:6e73:7475::53]:53"), ownAddrs)
	if !r.Kept || r.Changed || fmt.Sprint(r.Use) != "[192.168.1.1:53]" || !strings.Contains(r.Why, "only dnstun's own") || !strings.Contains(r.Why, "keeping") {
		t.Errorf("only own: %+v", r)
	}
	r = RefreshUpstreams(last, nil, ownAddrs)
	if !r.Kept || fmt.Sprint(r.Use) != "[192.168.1.1:53]" || !strings.Contains(r.Why, "no resolver") {
		t.Errorf("empty: %+v", r)
	}
	r = RefreshUpstreams(nil, ap("198.19.53.53:53"), ownAddrs)
	if !r.Kept || len(r.Use) != 0 || !strings.Contains(r.Why, "SERVFAIL") {
		t.Errorf("nothing ever: %+v", r)
	}
	r = RefreshUpstreams(last, ap("198.19.53.53:53", "192.168.1.1:53"), ownAddrs)
	if r.Kept || r.Changed || fmt.Sprint(r.Use) != "[192.168.1.1:53]" {
		t.Errorf("same list with dnstun in it: %+v", r)
	}
	r = RefreshUpstreams(last, ap("10.0.0.1:53"), ownAddrs)
	if r.Kept || !r.Changed || fmt.Sprint(r.Use) != "[10.0.0.1:53]" {
		t.Errorf("changed: %+v", r)
	}
}

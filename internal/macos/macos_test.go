// SPDX-License-Identifier: MIT

package macos

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// fixture reads testdata/name; testdata/SOURCES.md says where each
// fixture's format comes from.
func fixture(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func TestParseShowDictionaries(t *testing.T) {
	v, missing, err := ParseShow(fixture(t, "show-global-ipv4.txt"))
	if err != nil || missing {
		t.Fatalf("global IPv4: %v missing=%v", err, missing)
	}
	if got := v.String("PrimaryService"); got != "8A2E6C39-5F1B-4E8E-9C6A-3F2D1B0A7E44" {
		t.Errorf("PrimaryService %q", got)
	}
	if got := v.String("PrimaryInterface"); got != "en0" {
		t.Errorf("PrimaryInterface %q", got)
	}

	v, _, err = ParseShow(fixture(t, "show-state-service-dns.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if got := v.Addrs("ServerAddresses"); !reflect.DeepEqual(got, addrs("192.168.1.1", "fe80::1%en0")) {
		t.Errorf("ServerAddresses %v", got)
	}
	if got := v.Strings("SearchDomains"); !reflect.DeepEqual(got, []string{"lan"}) {
		t.Errorf("SearchDomains %v", got)
	}

	// Our own key: the empty match domain ("0 : ") is an empty string,
	// numbers are scalars.
	v, _, err = ParseShow(fixture(t, "show-dnstun-key.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if got := v.Strings("SupplementalMatchDomains"); !reflect.DeepEqual(got, []string{""}) {
		t.Errorf("SupplementalMatchDomains %q", got)
	}
	if got := v.String("DnstunPID"); got != "4242" {
		t.Errorf("DnstunPID %q", got)
	}
	if got := v.Strings("SupplementalMatchOrders"); !reflect.DeepEqual(got, []string{"1"}) {
		t.Errorf("orders %q", got)
	}

	v, _, err = ParseShow(fixture(t, "show-global-dns.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if got := v.String("__CONFIGURATION_ID__"); got != "Default: 0" {
		t.Errorf("a value holding \": \" is cut at the first separator only: %q", got)
	}
}

func TestParseShowMissing(t *testing.T) {
	_, missing, err := ParseShow(fixture(t, "show-missing.txt"))
	if err != nil || !missing {
		t.Fatalf("missing=%v err=%v", missing, err)
	}
	// Anything else scutil says instead of a value is an error that quotes it.
	_, _, err = ParseShow("  Permission denied\n")
	if err == nil || !strings.Contains(err.Error(), "Permission denied") {
		t.Errorf("err %v", err)
	}
	if _, _, err := ParseShow(""); !errors.Is(err, ErrNoDump) {
		t.Errorf("empty output: %v", err)
	}
}

// One scutil session given several "show" commands prints the answers one
// after the other; ParseShows keeps them apart and in order.
func TestParseShowsSequence(t *testing.T) {
	out := fixture(t, "show-global-ipv4.txt") + fixture(t, "show-global-dns-captured.txt") +
		fixture(t, "show-missing.txt") + fixture(t, "show-state-service-dns.txt")
	res, err := ParseShows(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 4 {
		t.Fatalf("%d results: %+v", len(res), res)
	}
	if res[0].Value.String("PrimaryInterface") != "en0" || !res[2].Missing() || res[3].Value == nil {
		t.Errorf("order lost: %+v", res)
	}
	if got := res[1].Value.Addrs("ServerAddresses"); !reflect.DeepEqual(got, addrs("198.19.53.53", "fd64:6e73:7475::53")) {
		t.Errorf("captured global DNS %v", got)
	}
}

func TestParseShowsErrors(t *testing.T) {
	for _, in := range []string{
		"<dictionary> {\n  A : 1\n",                       // not closed
		"<dictionary> {\n  no separator here\n}\n",        // not key : value
		"<dictionary> {\n  A : <array> {\n    0 : x\n}\n", // inner closed, outer not
	} {
		if _, err := ParseShows(in); err == nil {
			t.Errorf("%q: no error", in)
		}
	}
	// Nested dictionaries inside arrays parse.
	res, err := ParseShows("<dictionary> {\n  L : <array> {\n    0 : <dictionary> {\n      K : v\n    }\n    1 : w\n  }\n}\n")
	if err != nil || len(res) != 1 {
		t.Fatal(err)
	}
	l, _ := res[0].Value.Get("L")
	if len(l.Items) != 2 || l.Items[0].String("K") != "v" || l.Items[1].Str != "w" {
		t.Errorf("nested: %+v", l)
	}
}

func TestParseDNSConfig(t *testing.T) {
	c := ParseDNSConfig(fixture(t, "scutil-dns.txt"))
	if len(c.Default) != 7 || len(c.Scoped) != 1 || len(c.ServiceSpecific) != 0 {
		t.Fatalf("sections: %d %d %d", len(c.Default), len(c.Scoped), len(c.ServiceSpecific))
	}
	r := c.Default[0]
	want := Resolver{Index: 1, Search: []string{"lan"}, Nameservers: addrs("192.168.1.1", "fe80::1%en0"),
		IfIndex: 14, IfName: "en0", Flags: []string{"Request A records", "Request AAAA records"},
		Reach: "0x00020002 (Reachable,Directly Reachable Address)"}
	if !reflect.DeepEqual(r, want) {
		t.Errorf("resolver #1:\n got %+v\nwant %+v", r, want)
	}
	if m := c.Default[1]; m.Domain != "local" || m.Options != "mdns" || m.Timeout != 5 || m.Order != 300000 {
		t.Errorf("mdns resolver %+v", m)
	}
	if !c.Scoped[0].HasFlag("Scoped") {
		t.Errorf("scoped flags %v", c.Scoped[0].Flags)
	}
	if d, ok := c.DefaultResolver(); !ok || d.Index != 1 {
		t.Errorf("default resolver %+v %v", d, ok)
	}

	// With capture on (predicted; see SOURCES.md), dnstun's resolver comes
	// first, without a domain, with its own addresses.
	c = ParseDNSConfig(fixture(t, "scutil-dns-captured.txt"))
	d, ok := c.DefaultResolver()
	if !ok || !reflect.DeepEqual(d.Nameservers, addrs("198.19.53.53", "fd64:6e73:7475::53")) || d.Order != 1 || !d.HasFlag("Supplemental") {
		t.Errorf("captured default resolver %+v", d)
	}

	// A VPN's catch-all supplemental resolver precedes the primary's.
	c = ParseDNSConfig(fixture(t, "scutil-dns-vpn.txt"))
	if d, _ := c.DefaultResolver(); d.IfName != "utun12" || d.Order != 101200 {
		t.Errorf("vpn default resolver %+v", d)
	}
	if len(c.Default) != 4 || len(c.Scoped) != 2 || c.Default[2].Domain != "dove-climb.ts.net." {
		t.Errorf("vpn config %+v", c)
	}

	c = ParseDNSConfig(fixture(t, "scutil-dns-none.txt"))
	if _, ok := c.DefaultResolver(); ok || len(c.Default) != 0 {
		t.Errorf("no configuration: %+v", c)
	}
}

func TestParseRouteGet(t *testing.T) {
	for _, tc := range []struct {
		file             string
		dest, gw, iface  string
		flag             string
		wantErr, noRoute bool
	}{
		{file: "route-get-default.txt", dest: "default", gw: "192.168.1.1", iface: "en0", flag: "GATEWAY"},
		{file: "route-get-resolver.txt", dest: "198.19.53.53", iface: "utun6", flag: "HOST"},
		{file: "route-get-resolver6.txt", dest: "fd64:6e73:7475::53", iface: "utun6", flag: "HOST"},
		{file: "route-get-onlink.txt", dest: "192.168.1.1", iface: "en0", flag: "LLINFO"},
		{file: "route-get-offlink.txt", dest: "default", gw: "192.168.1.1", iface: "en0", flag: "GATEWAY"},
		{file: "route-get-vpn.txt", dest: "10.8.0.0", iface: "utun4", flag: "CLONING"},
		{file: "route-get-loopback.txt", dest: "127.0.0.1", iface: "lo0", flag: "LOCAL"},
		{file: "route-get-noroute.txt", wantErr: true, noRoute: true},
	} {
		t.Run(tc.file, func(t *testing.T) {
			r, err := ParseRouteGet(fixture(t, tc.file))
			if tc.wantErr {
				if err == nil || errors.Is(err, ErrNoRoute) != tc.noRoute {
					t.Fatalf("err %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.Destination != tc.dest || r.Gateway != tc.gw || r.Interface != tc.iface || !r.HasFlag(tc.flag) || !r.HasFlag("UP") {
				t.Errorf("%+v", r)
			}
		})
	}
	if _, err := ParseRouteGet("usage: route [-dnqtv] command [[modifiers] args]\n"); err == nil || errors.Is(err, ErrNoRoute) {
		t.Errorf("usage text: %v", err)
	}
}

func TestParseIfconfig(t *testing.T) {
	ifs, err := ParseIfconfig(fixture(t, "ifconfig-utun.txt"))
	if err != nil || len(ifs) != 1 {
		t.Fatal(ifs, err)
	}
	u := ifs[0]
	if u.Name != "utun6" || u.MTU != 1500 || !u.HasFlag("UP") || !u.HasFlag("POINTOPOINT") {
		t.Errorf("header %+v", u)
	}
	want4 := []IfAddr{{Addr: netip.MustParseAddr("198.19.53.1"), Dest: netip.MustParseAddr("198.19.53.1"), Bits: 32}}
	if !reflect.DeepEqual(u.Inet, want4) {
		t.Errorf("inet %+v", u.Inet)
	}
	if a, ok := u.Addr(netip.MustParseAddr("fd64:6e73:7475::1")); !ok || a.Bits != 128 || len(a.Flags) != 0 {
		t.Errorf("inet6 %+v %v", a, ok)
	}
	if a, ok := u.Addr(netip.MustParseAddr("fe80::b0c2:5ff:fe3a:1d0e%utun6")); !ok || a.Bits != 64 {
		t.Errorf("link-local %+v %v", a, ok)
	}

	ifs, _ = ParseIfconfig(fixture(t, "ifconfig-utun-tentative.txt"))
	if a, _ := ifs[0].Addr(netip.MustParseAddr("fd64:6e73:7475::1")); fmt.Sprint(a.Flags) != "[tentative]" {
		t.Errorf("tentative flags %v", a.Flags)
	}
	ifs, _ = ParseIfconfig(fixture(t, "ifconfig-utun-down.txt"))
	if ifs[0].HasFlag("UP") || len(ifs[0].Inet6) != 0 {
		t.Errorf("down %+v", ifs[0])
	}

	ifs, err = ParseIfconfig(fixture(t, "ifconfig-en0.txt"))
	if err != nil {
		t.Fatal(err)
	}
	e := ifs[0]
	if len(e.Inet) != 1 || e.Inet[0].Bits != 24 || e.Inet[0].Dest.IsValid() || len(e.Inet6) != 2 {
		t.Errorf("en0 %+v", e)
	}
	if fmt.Sprint(e.Inet6[1].Flags) != "[autoconf secured]" {
		t.Errorf("en0 inet6 flags %v", e.Inet6[1].Flags)
	}

	// Two interfaces in one output, and what ifconfig says for an unknown one.
	ifs, err = ParseIfconfig(fixture(t, "ifconfig-en0.txt") + fixture(t, "ifconfig-utun.txt"))
	if err != nil || len(ifs) != 2 || ifs[1].Name != "utun6" {
		t.Errorf("two interfaces: %v %v", ifs, err)
	}
	if _, err := ParseIfconfig("ifconfig: interface utun9 does not exist\n"); err == nil {
		t.Error("error text parsed as an interface")
	}
}

func FuzzParsers(f *testing.F) {
	for _, name := range []string{"scutil-dns.txt", "show-dnstun-key.txt", "route-get-default.txt", "ifconfig-utun.txt", "show-missing.txt"} {
		f.Add(fixture(f, name))
	}
	f.Fuzz(func(t *testing.T, s string) {
		ParseShows(s)
		ParseShow(s)
		ParseDNSConfig(s).DefaultResolver()
		ParseRouteGet(s)
		ParseIfconfig(s)
	})
}

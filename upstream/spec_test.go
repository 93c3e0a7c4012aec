// SPDX-License-Identifier: MIT

package upstream

import (
	"crypto/sha256"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
)

var (
	stPinA    = sha256.Sum256([]byte("a"))
	stPinB    = sha256.Sum256([]byte("b"))
	stPinAB64 = PinString(stPinA)
	stPinBB64 = PinString(stPinB)
)

func TestParseSpec(t *testing.T) {
	ip := netip.MustParseAddr
	for _, tc := range []struct {
		in   string
		want Spec
	}{
		// dnsproxy's README and AddressToUpstream's documented forms.
		{"8.8.8.8:53", Spec{Proto: ProtoUDP, Host: "8.8.8.8", Addr: ip("8.8.8.8"), Port: 53}},
		{"1.1.1.1", Spec{Proto: ProtoUDP, Host: "1.1.1.1", Addr: ip("1.1.1.1"), Port: 53}},
		{"udp://1.1.1.1", Spec{Proto: ProtoUDP, Host: "1.1.1.1", Addr: ip("1.1.1.1"), Port: 53}},
		{"udp://5.3.5.3:53", Spec{Proto: ProtoUDP, Host: "5.3.5.3", Addr: ip("5.3.5.3"), Port: 53}},
		{"tcp://1.1.1.1", Spec{Proto: ProtoTCP, Host: "1.1.1.1", Addr: ip("1.1.1.1"), Port: 53}},
		{"tcp://5.3.5.3:5353", Spec{Proto: ProtoTCP, Host: "5.3.5.3", Addr: ip("5.3.5.3"), Port: 5353}},
		{"tls://dns.adguard.com", Spec{Proto: ProtoTLS, Host: "dns.adguard.com", Port: 853}},
		{"tls://5.3.5.3:853", Spec{Proto: ProtoTLS, Host: "5.3.5.3", Addr: ip("5.3.5.3"), Port: 853}},
		{"tls://name.server:8853", Spec{Proto: ProtoTLS, Host: "name.server", Port: 8853}},
		{"https://dns.adguard.com/dns-query", Spec{Proto: ProtoHTTPS, Host: "dns.adguard.com", Port: 443, Path: "/dns-query"}},
		{"https://5.3.5.3:443/dns-query", Spec{Proto: ProtoHTTPS, Host: "5.3.5.3", Addr: ip("5.3.5.3"), Port: 443, Path: "/dns-query"}},
		{"https://dns.example", Spec{Proto: ProtoHTTPS, Host: "dns.example", Port: 443, Path: "/dns-query"}},
		{"https://dns.example/", Spec{Proto: ProtoHTTPS, Host: "dns.example", Port: 443, Path: "/"}},
		{"https://dns.nextdns.io/abc123", Spec{Proto: ProtoHTTPS, Host: "dns.nextdns.io", Port: 443, Path: "/abc123"}},
		{"https://dns.example:8443/q?x=1", Spec{Proto: ProtoHTTPS, Host: "dns.example", Port: 8443, Path: "/q?x=1"}},
		{"h3://dns.google/dns-query", Spec{Proto: ProtoH3, Host: "dns.google", Port: 443, Path: "/dns-query"}},
		{"h3://dns.google", Spec{Proto: ProtoH3, Host: "dns.google", Port: 443, Path: "/dns-query"}},
		{"quic://dns.adguard.com", Spec{Proto: ProtoQUIC, Host: "dns.adguard.com", Port: 853}},
		{"quic://5.3.5.3:784", Spec{Proto: ProtoQUIC, Host: "5.3.5.3", Addr: ip("5.3.5.3"), Port: 784}},
		// IPv6, bracketed or bare, with a zone.
		{"[2001:db8::1]:5353", Spec{Proto: ProtoUDP, Host: "2001:db8::1", Addr: ip("2001:db8::1"), Port: 5353}},
		{"[2001:db8::1]", Spec{Proto: ProtoUDP, Host: "2001:db8::1", Addr: ip("2001:db8::1"), Port: 53}},
		{"2001:db8::1", Spec{Proto: ProtoUDP, Host: "2001:db8::1", Addr: ip("2001:db8::1"), Port: 53}},
		{"2001:db8::", Spec{Proto: ProtoUDP, Host: "2001:db8::", Addr: ip("2001:db8::"), Port: 53}},
		{"fe80::1%eth0", Spec{Proto: ProtoUDP, Host: "fe80::1%eth0", Addr: ip("fe80::1%eth0"), Port: 53}},
		{"tcp://[fe80::1%25eth0]:53", Spec{Proto: ProtoTCP, Host: "fe80::1%eth0", Addr: ip("fe80::1%eth0"), Port: 53}},
		{"tls://[2606:4700:4700::1111]", Spec{Proto: ProtoTLS, Host: "2606:4700:4700::1111", Addr: ip("2606:4700:4700::1111"), Port: 853}},
		{"https://[2001:db8::53]:8443/dns-query", Spec{Proto: ProtoHTTPS, Host: "2001:db8::53", Addr: ip("2001:db8::53"), Port: 8443, Path: "/dns-query"}},
		{"::ffff:192.0.2.1", Spec{Proto: ProtoUDP, Host: "192.0.2.1", Addr: ip("192.0.2.1"), Port: 53}},
		// Case, a trailing dot, spaces around.
		{" TLS://DNS.Example.:853 ", Spec{Proto: ProtoTLS, Host: "dns.example", Port: 853}},
		{"tls://dns.example/", Spec{Proto: ProtoTLS, Host: "dns.example", Port: 853}},
		{"tls://_dns.resolver.arpa", Spec{Proto: ProtoTLS, Host: "_dns.resolver.arpa", Port: 853}},
		// Pins.
		{"tls://dns.example#pin-sha256=" + stPinAB64, Spec{Proto: ProtoTLS, Host: "dns.example", Port: 853, Pins: [][32]byte{stPinA}}},
		{"https://1.1.1.1/dns-query#pin-sha256=" + stPinAB64 + "," + stPinBB64 + "," + stPinAB64,
			Spec{Proto: ProtoHTTPS, Host: "1.1.1.1", Addr: ip("1.1.1.1"), Port: 443, Path: "/dns-query", Pins: [][32]byte{stPinA, stPinB}}},
		{"quic://dns.example:853#pin-sha256=" + stPinBB64, Spec{Proto: ProtoQUIC, Host: "dns.example", Port: 853, Pins: [][32]byte{stPinB}}},
	} {
		got, err := ParseSpec(tc.in)
		if err != nil {
			t.Errorf("ParseSpec(%q): %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseSpec(%q) = %#v, want %#v", tc.in, got, tc.want)
		}
		checkSpecRoundTrip(t, tc.in, got)
	}
}

func TestParseSpecErrors(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // in the error
	}{
		{"", "empty"},
		{"   ", "empty"},
		{"dns.google", "not a host name"},
		{"udp://dns.google", "plain DNS upstreams take an IP address"},
		{"tcp://dns.google:53", "give the server's address"},
		{"name.server:53", "plain DNS upstreams"},
		{"sdns://AQIAAAAAAAAAFDE3Ni4xMDMuMTMwLjEzMDo1NDQz", "DNS stamps"},
		{"ftp://1.1.1.1", "unknown scheme"},
		{"tls://", "no server"},
		{"https:///dns-query", "no server"},
		{"tls://user:pw@dns.example", "credentials"},
		{"tls://dns.example:0", "port"},
		{"tls://dns.example:65536", "port"},
		{"tls://dns.example:", "port"},
		{"tls://dns.example:x", "port"},
		{"1.1.1.1:", "port"},
		{"[2001:db8::1]x", "[IPv6]:port"},
		{"[2001:db8::1", "missing ]"},
		{"[192.0.2.1]:53", "IPv6 address in brackets"},
		{"2001:db8::zz", "IPv6"},
		{"::%]0", "zone"}, // found by FuzzParseSpec: did not survive String
		{"[fe80::1%25a!b]:53", "zone"},
		{"tls://1.2.3", "neither an IP address nor a host name"},
		{"tls://dns..example", "1 to 63"},
		{"tls://-dns.example", "start or end"},
		{"tls://dns.ex ample", "not allowed"},
		{"tls://dnś.example", "ASCII"},
		{"tls://" + strings.Repeat("a", 64) + ".example", "1 to 63"},
		{"tls://" + strings.Repeat("abcdefghi.", 26) + "example", "253"},
		{"tls://dns.example/dns-query", "only https:// and h3://"},
		{"1.1.1.1/x", "only https:// and h3://"},
		{"https://dns.example/a b", "percent-encoded"},
		{"1.1.1.1#pin-sha256=" + stPinAB64, "pins need an encrypted upstream"},
		{"tcp://1.1.1.1#pin-sha256=" + stPinAB64, "pins need an encrypted upstream"},
		{"tls://dns.example#", "the only fragment"},
		{"tls://dns.example#sha256=" + stPinAB64, "the only fragment"},
		{"tls://dns.example#pin-sha256=", "the only fragment"},
		{"tls://dns.example#pin-sha256=abc", "standard base64"},
		{"tls://dns.example#pin-sha256=" + stPinAB64 + ",", "standard base64"},
		{"tls://dns.example#pin-sha256=" + strings.TrimRight(stPinAB64, "="), "standard base64"},
		{"tls://dns.example 8.8.8.8", "not allowed"},
	} {
		_, err := ParseSpec(tc.in)
		if err == nil {
			t.Errorf("ParseSpec(%q) succeeded, want an error with %q", tc.in, tc.want)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), strings.TrimSpace(tc.in)) {
			t.Errorf("ParseSpec(%q) = %v, want an error quoting the input and saying %q", tc.in, err, tc.want)
		}
	}
}

// TestParseUpstreamArg holds the examples of dnsproxy's README ("Specifying
// upstreams for domains") and of its ParseUpstreamsConfig documentation.
func TestParseUpstreamArg(t *testing.T) {
	udp := func(s string) Spec {
		ap := netip.MustParseAddrPort(s)
		return Spec{Proto: ProtoUDP, Host: ap.Addr().String(), Addr: ap.Addr(), Port: ap.Port()}
	}
	for _, tc := range []struct {
		in         string
		domains    []string
		spec       Spec
		useDefault bool
	}{
		// ./dnsproxy -u 8.8.8.8:53 -u [/local/]192.168.0.1:53
		{"8.8.8.8:53", nil, udp("8.8.8.8:53"), false},
		{"[/local/]192.168.0.1:53", []string{"local"}, udp("192.168.0.1:53"), false},
		// -u [/host.com/]1.1.1.1:53 -u [/maps.host.com/]#
		{"[/host.com/]1.1.1.1:53", []string{"host.com"}, udp("1.1.1.1:53"), false},
		{"[/maps.host.com/]#", []string{"maps.host.com"}, Spec{}, true},
		// -u [/*.host.com/]1.1.1.1:53: the subdomains, not host.com.
		{"[/*.host.com/]1.1.1.1:53", []string{"*.host.com"}, udp("1.1.1.1:53"), false},
		// ParseUpstreamsConfig's doc.
		{"[/www.host.com/]2.3.4.5", []string{"www.host.com"}, udp("2.3.4.5:53"), false},
		{"[/maps.host.com/news.host.com/]#", []string{"maps.host.com", "news.host.com"}, Spec{}, true},
		{"[/*.domain.com/]1.2.3.4", []string{"*.domain.com"}, udp("1.2.3.4:53"), false},
		// AdGuard Home's documented examples.
		{"[/host.com/example.com/]tls://1.1.1.1", []string{"host.com", "example.com"},
			Spec{Proto: ProtoTLS, Host: "1.1.1.1", Addr: netip.MustParseAddr("1.1.1.1"), Port: 853}, false},
		{"[/home/]192.168.10.2", []string{"home"}, udp("192.168.10.2:53"), false},
		// Ours: case, trailing dots, duplicates, spaces, DoH with a path.
		{" [/Corp.Example./lab.example/corp.example/]https://dns.corp.example/q ", []string{"corp.example", "lab.example"},
			Spec{Proto: ProtoHTTPS, Host: "dns.corp.example", Port: 443, Path: "/q"}, false},
		{"[/corp.example/] tls://dns.corp.example", []string{"corp.example"}, Spec{Proto: ProtoTLS, Host: "dns.corp.example", Port: 853}, false},
		{"[::1]:5353", nil, udp("[::1]:5353"), false},
	} {
		domains, spec, useDefault, err := ParseUpstreamArg(tc.in)
		if err != nil {
			t.Errorf("ParseUpstreamArg(%q): %v", tc.in, err)
			continue
		}
		if !slices.Equal(domains, tc.domains) || !reflect.DeepEqual(spec, tc.spec) || useDefault != tc.useDefault {
			t.Errorf("ParseUpstreamArg(%q) = %q, %#v, %v; want %q, %#v, %v", tc.in, domains, spec, useDefault, tc.domains, tc.spec, tc.useDefault)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{"[/host.com/", "not closed"},
		{"[/host.com]1.1.1.1", "not closed"},
		{"[/host.com/]", "no upstream after the domain list"},
		{"[//]1.1.1.1", "unqualified names"},
		{"[/a.com//b.com/]1.1.1.1", "unqualified names"},
		{"[/host.com/]1.1.1.1 8.8.8.8", "one upstream per argument: repeat the domain list for each ([/host.com/]1.1.1.1 and [/host.com/]8.8.8.8)"},
		{"[/ho st.com/]1.1.1.1", "not allowed"},
		{"[/*.*.host.com/]1.1.1.1", "not allowed"},
		{"[/host.com/]dns.google", "plain DNS upstreams take an IP address"},
		{"[/host.com/]!", "not allowed"},
		{"#", "no server"},
	} {
		_, _, _, err := ParseUpstreamArg(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseUpstreamArg(%q) = %v, want an error saying %q", tc.in, err, tc.want)
		}
	}
}

// checkSpecRoundTrip holds that a Spec written by String (plus its pins) reads
// back the same.
func checkSpecRoundTrip(t *testing.T, in string, s Spec) {
	t.Helper()
	text := s.String()
	if len(s.Pins) > 0 {
		b64 := make([]string, len(s.Pins))
		for i, p := range s.Pins {
			b64[i] = PinString(p)
		}
		text += "#" + pinPrefix + strings.Join(b64, ",")
	}
	back, err := ParseSpec(text)
	if err != nil {
		t.Fatalf("ParseSpec(%q) = %#v, whose String %q does not parse: %v", in, s, text, err)
	}
	if !reflect.DeepEqual(back, s) {
		t.Fatalf("ParseSpec(%q) = %#v, String %q reads back as %#v", in, s, text, back)
	}
}

// FuzzParseSpec checks that ParseSpec never panics, that what it accepts
// is consistent (a port, a path exactly for DoH, an address when the host
// is one, no name for plain DNS) and survives String.
func FuzzParseSpec(f *testing.F) {
	for _, s := range []string{
		"8.8.8.8:53", "udp://1.1.1.1", "tcp://[2001:db8::1]:53", "tls://dns.example#pin-sha256=" + stPinAB64,
		"https://dns.example:8443/dns-query?x", "h3://dns.google", "quic://[fe80::1%25eth0]:853", "2001:db8::",
		"tls://DNS.Example.:853/", "https://[::1]/", "sdns://x", "[/a/]1.1.1.1", "tls://a:0", "https://a/%zz",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		s, err := ParseSpec(in)
		if err != nil {
			return
		}
		if s.Port == 0 || s.Host == "" || s.Proto > ProtoQUIC {
			t.Fatalf("ParseSpec(%q) = %#v: no port, host or protocol", in, s)
		}
		if (s.Proto == ProtoHTTPS || s.Proto == ProtoH3) != strings.HasPrefix(s.Path, "/") {
			t.Fatalf("ParseSpec(%q) = %#v: path for the wrong protocol", in, s)
		}
		if a, err := netip.ParseAddr(s.Host); (err == nil) != s.Addr.IsValid() || err == nil && a != s.Addr {
			t.Fatalf("ParseSpec(%q) = %#v: Addr does not match Host", in, s)
		}
		if !s.Addr.IsValid() && (s.Proto == ProtoUDP || s.Proto == ProtoTCP) {
			t.Fatalf("ParseSpec(%q) = %#v: a plain upstream by name", in, s)
		}
		if len(s.Pins) > 0 && !s.Proto.Encrypted() {
			t.Fatalf("ParseSpec(%q) = %#v: pins without TLS", in, s)
		}
		checkSpecRoundTrip(t, in, s)
	})
}

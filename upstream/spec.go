// SPDX-License-Identifier: MIT

package upstream

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// pinPrefix starts the URL fragment that carries SPKI pins.
const pinPrefix = "pin-sha256="

// ParseSpec reads one upstream in AdGuard dnsproxy's syntax, so that users'
// upstream lists carry over:
//
//	IP, IP:port, [IPv6]:port, IPv6     plain DNS over UDP, port 53
//	udp://IP[:port]                    the same
//	tcp://IP[:port]                    plain DNS over TCP (RFC 7766), port 53
//	tls://host[:port]                  DNS over TLS (RFC 7858), port 853
//	https://host[:port][/path]         DNS over HTTPS (RFC 8484), port 443,
//	                                   path "/dns-query" when none is given
//	h3://host[:port][/path]            the same over HTTP/3 only
//	quic://host[:port]                 DNS over QUIC (RFC 9250), port 853
//
// host is a name (the TLS server name, resolved through the bootstrap
// resolvers) or an IP address (Spec.Addr is then set). Plain UDP and TCP
// take an address only: dnsproxy also accepts names there, but resolving
// them would need a resolver before the resolver, and an unauthenticated
// one at that.
//
// dnstun's own addition: SHA-256 pins of the server's SubjectPublicKeyInfo,
// in the fragment of an encrypted upstream's URL,
//
//	tls://dns.example#pin-sha256=BASE64[,BASE64...]
//
// each the standard base64 of 32 bytes, as in HPKP (RFC 7469) and curl's
// --pinnedpubkey sha256//BASE64. A pinned server must present, in its
// verified chain, a certificate with one of the keys, in addition to the
// usual verification. The pin of a certificate in cert.pem:
//
//	openssl x509 -in cert.pem -pubkey -noout | openssl pkey -pubin -outform der |
//	  openssl dgst -sha256 -binary | openssl enc -base64
//
// Not supported: DNS stamps (sdns://), credentials in URLs, more than one
// upstream per string.
func ParseSpec(s string) (Spec, error) {
	spec, err := parseSpec(strings.TrimSpace(s))
	if err != nil {
		return Spec{}, fmt.Errorf("upstream %q: %w", s, err)
	}
	return spec, nil
}

func parseSpec(s string) (Spec, error) {
	if s == "" {
		return Spec{}, errors.New("empty: want an address such as 192.0.2.53 or a URL such as tls://dns.example")
	}
	s, frag, hasFrag := strings.Cut(s, "#")
	var spec Spec
	rest := s
	scheme, after, hasScheme := strings.Cut(s, "://")
	if hasScheme {
		var err error
		if spec.Proto, err = parseScheme(scheme); err != nil {
			return Spec{}, err
		}
		rest = after
	}
	authority, target := rest, ""
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		authority, target = rest[:i], rest[i:]
	}
	if err := parseAuthority(&spec, authority); err != nil {
		return Spec{}, err
	}
	if err := parseTarget(&spec, target, hasScheme); err != nil {
		return Spec{}, err
	}
	if !spec.Addr.IsValid() && (spec.Proto == ProtoUDP || spec.Proto == ProtoTCP) {
		return Spec{}, fmt.Errorf("plain DNS upstreams take an IP address, not a host name (%q): dnstun resolves names only for encrypted upstreams (tls://, https://, h3://, quic://, through the bootstrap resolvers); give the server's address, e.g. %s://192.0.2.53", spec.Host, spec.Proto)
	}
	if hasFrag {
		if !spec.Proto.Encrypted() {
			return Spec{}, fmt.Errorf("#%s: pins need an encrypted upstream (tls://, https://, h3://, quic://), not %s", frag, spec.Proto)
		}
		pins, err := parsePins(frag)
		if err != nil {
			return Spec{}, err
		}
		spec.Pins = pins
	}
	return spec, nil
}

func parseScheme(scheme string) (Proto, error) {
	switch strings.ToLower(scheme) {
	case "udp":
		return ProtoUDP, nil
	case "tcp":
		return ProtoTCP, nil
	case "tls":
		return ProtoTLS, nil
	case "https":
		return ProtoHTTPS, nil
	case "h3":
		return ProtoH3, nil
	case "quic":
		return ProtoQUIC, nil
	case "sdns":
		return 0, errors.New("DNS stamps (sdns://) are not supported: write the server as a tls://, https:// or quic:// URL")
	}
	return 0, fmt.Errorf("unknown scheme %q: want udp, tcp, tls, https, h3 or quic", scheme)
}

// defaultPort is each protocol's port when the URL gives none: 53 for
// plain DNS, 853 for DoT (RFC 7858) and DoQ (RFC 9250), 443 for DoH.
func defaultPort(p Proto) uint16 {
	switch p {
	case ProtoTLS, ProtoQUIC:
		return 853
	case ProtoHTTPS, ProtoH3:
		return 443
	}
	return 53
}

// parseAuthority reads host[:port], [IPv6][:port] or a bare IPv6 address
// into spec's Host, Addr and Port.
func parseAuthority(spec *Spec, a string) error {
	if a == "" {
		return errors.New("no server: want an address or a host name")
	}
	if strings.Contains(a, "@") {
		return errors.New("credentials in the URL (user@host) are not supported")
	}
	host, port, hasPort := a, "", false
	switch {
	case a[0] == '[':
		end := strings.IndexByte(a, ']')
		if end < 0 {
			return fmt.Errorf("%q: missing ] after the IPv6 address", a)
		}
		host = a[1:end]
		if tail := a[end+1:]; tail != "" {
			p, ok := strings.CutPrefix(tail, ":")
			if !ok {
				return fmt.Errorf("%q: want [IPv6]:port", a)
			}
			port, hasPort = p, true
		}
		// RFC 6874 writes a zone as %25 inside a URL's brackets.
		addr, err := netip.ParseAddr(strings.Replace(host, "%25", "%", 1))
		if err != nil || !addr.Is6() {
			return fmt.Errorf("%q: not an IPv6 address in brackets", a)
		}
		host = addr.String()
	case strings.Count(a, ":") > 1:
		// A bare IPv6 address: it cannot carry a port.
		if _, err := netip.ParseAddr(a); err != nil {
			return fmt.Errorf("%q: not an IPv6 address (write [IPv6]:port to give a port)", a)
		}
	default:
		host, port, hasPort = strings.Cut(a, ":")
	}
	spec.Port = defaultPort(spec.Proto)
	if hasPort {
		n, err := strconv.ParseUint(port, 10, 16)
		if err != nil || n == 0 {
			return fmt.Errorf("port %q: want a number from 1 to 65535", port)
		}
		spec.Port = uint16(n)
	}
	if addr, err := netip.ParseAddr(host); err == nil {
		if z := addr.Zone(); strings.Trim(z, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != "" {
			return fmt.Errorf("%q: zone %q is not an interface name or number", a, z)
		}
		spec.Addr = addr.Unmap()
		spec.Host = spec.Addr.String()
		return nil
	}
	name, err := hostName(host)
	if err != nil {
		return err
	}
	spec.Host = name
	return nil
}

// parseTarget checks what follows the authority: a DoH request path (and
// query), kept as written, or nothing.
func parseTarget(spec *Spec, target string, hasScheme bool) error {
	if spec.Proto != ProtoHTTPS && spec.Proto != ProtoH3 {
		if target != "" && target != "/" || !hasScheme && target != "" {
			return fmt.Errorf("%q: only https:// and h3:// upstreams take a path", target)
		}
		return nil
	}
	for i := 0; i < len(target); i++ {
		if c := target[i]; c <= ' ' || c >= 0x7f {
			return fmt.Errorf("path %q: byte %#x must be percent-encoded", target, c)
		}
	}
	switch {
	case target == "":
		spec.Path = "/dns-query"
	case target[0] == '?':
		spec.Path = "/" + target
	default:
		spec.Path = target
	}
	return nil
}

// hostName validates a DNS host name (RFC 1123 labels; underscores allowed,
// as some resolvers' names carry them) and returns it lower-cased without a
// trailing dot.
func hostName(h string) (string, error) {
	name, err := domainName(h)
	if err != nil {
		return "", err
	}
	labels := strings.Split(name, ".")
	if last := labels[len(labels)-1]; strings.Trim(last, "0123456789") == "" {
		return "", fmt.Errorf("%q is neither an IP address nor a host name", h)
	}
	return name, nil
}

// domainName validates a domain name in ASCII and returns it lower-cased
// without its trailing dot.
func domainName(d string) (string, error) {
	name := strings.ToLower(strings.TrimSuffix(d, "."))
	if name == "" {
		return "", fmt.Errorf("%q: empty name", d)
	}
	if len(name) > 253 {
		return "", fmt.Errorf("%q: a name is at most 253 characters long", d)
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" || len(label) > 63 {
			return "", fmt.Errorf("%q: each label is 1 to 63 characters long", d)
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return "", fmt.Errorf("%q: a label cannot start or end with '-'", d)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				if c >= 0x80 {
					return "", fmt.Errorf("%q: write an internationalised name in its ASCII form (xn--…)", d)
				}
				return "", fmt.Errorf("%q: %q is not allowed in a name", d, c)
			}
		}
	}
	return name, nil
}

// parsePins reads "pin-sha256=BASE64[,BASE64...]".
func parsePins(frag string) ([][32]byte, error) {
	list, ok := strings.CutPrefix(frag, pinPrefix)
	if !ok || list == "" {
		return nil, fmt.Errorf("fragment #%s: the only fragment dnstun reads is #%sBASE64[,BASE64...]", frag, pinPrefix)
	}
	var pins [][32]byte
	for p := range strings.SplitSeq(list, ",") {
		b, err := base64.StdEncoding.DecodeString(p)
		if err != nil || len(b) != 32 {
			return nil, fmt.Errorf("pin %q: want the standard base64 of a SHA-256 digest (44 characters ending in =)", p)
		}
		pin := [32]byte(b)
		if !slices.Contains(pins, pin) {
			pins = append(pins, pin)
		}
	}
	return pins, nil
}

// PinString is a pin in the form ParseSpec reads after "#pin-sha256=".
func PinString(pin [32]byte) string { return base64.StdEncoding.EncodeToString(pin[:]) }

// ParseUpstreamArg reads an upstream with optional domains, in dnsproxy's
// dnsmasq-like form:
//
//	UPSTREAM                       a default upstream: domains is nil
//	[/corp.example/lab.example/]UPSTREAM
//	                               UPSTREAM serves these domains and their
//	                               subdomains
//	[/*.corp.example/]UPSTREAM     the subdomains only, not corp.example
//	[/www.corp.example/]#          useDefault: the default upstreams serve
//	                               these domains (an exception to a wider
//	                               domain's upstream)
//
// Domains come back lower-cased, without a trailing dot; a "*." prefix is
// kept, and the caller must honour it as dnsproxy does (subdomains only).
// dnsproxy's empty domain ("[//]", unqualified names) and several upstreams
// after one domain list are refused with an error saying what to write.
func ParseUpstreamArg(s string) (domains []string, spec Spec, useDefault bool, err error) {
	arg := strings.TrimSpace(s)
	rest, ok := strings.CutPrefix(arg, "[/")
	if !ok {
		spec, err = ParseSpec(arg)
		return nil, spec, false, err
	}
	list, up, ok := strings.Cut(rest, "/]")
	if !ok {
		return nil, Spec{}, false, fmt.Errorf("upstream %q: the domain list is not closed: write [/domain1/domain2/]UPSTREAM", s)
	}
	for d := range strings.SplitSeq(list, "/") {
		name, err := splitDomain(d)
		if err != nil {
			return nil, Spec{}, false, fmt.Errorf("upstream %q: %w", s, err)
		}
		if !slices.Contains(domains, name) {
			domains = append(domains, name)
		}
	}
	switch f := strings.Fields(up); {
	case len(f) == 0:
		return nil, Spec{}, false, fmt.Errorf("upstream %q: no upstream after the domain list: give one, or # for the default upstreams", s)
	case len(f) > 1:
		return nil, Spec{}, false, fmt.Errorf("upstream %q: one upstream per argument: repeat the domain list for each (%s%s and %s%s)", s, arg[:len(arg)-len(up)], f[0], arg[:len(arg)-len(up)], f[1])
	case f[0] == "#":
		return domains, Spec{}, true, nil
	}
	spec, err = ParseSpec(up)
	if err != nil {
		return nil, Spec{}, false, fmt.Errorf("domains %v: %w", domains, err)
	}
	return domains, spec, false, nil
}

// splitDomain validates one domain of a [/…/] list.
func splitDomain(d string) (string, error) {
	if d == "" {
		return "", errors.New("an empty domain (dnsproxy's \"unqualified names only\") is not supported: name the domains")
	}
	wild, bare := "", d
	if b, ok := strings.CutPrefix(d, "*."); ok {
		wild, bare = "*.", b
	}
	name, err := domainName(bare)
	if err != nil {
		return "", err
	}
	return wild + name, nil
}

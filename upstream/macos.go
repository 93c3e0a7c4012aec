// SPDX-License-Identifier: MIT

package upstream

import (
	"bufio"
	"net/netip"
	"strings"
)

// This file has no _darwin suffix on purpose: these parsers read the output
// of macOS tools and are tested on Linux; only their callers are darwin-only.

// ParseScutilDNS reads the ServerAddresses of `scutil` output for
// "show State:/Network/Global/DNS" (the primary service's resolvers, the
// ones in use before dnstun published its own):
//
//	<dictionary> {
//	  ServerAddresses : <array> {
//	    0 : 192.168.1.1
//	    1 : fe80::1%en0
//	  }
//	}
func ParseScutilDNS(out string) []netip.AddrPort {
	var addrs []netip.AddrPort
	in := false
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "ServerAddresses"):
			in = true
		case in && line == "}":
			in = false
		case in:
			if _, v, ok := strings.Cut(line, " : "); ok {
				if a, err := netip.ParseAddr(strings.TrimSpace(v)); err == nil {
					addrs = append(addrs, netip.AddrPortFrom(a, 53))
				}
			}
		}
	}
	return addrs
}

// ParseRouteInterface reads the "interface:" line of `route -n get
// <destination>` output: the interface that routes there.
func ParseRouteInterface(out string) string {
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":"); ok && k == "interface" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

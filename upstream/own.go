// SPDX-License-Identifier: MIT

package upstream

import (
	"fmt"
	"net/netip"
	"slices"
)

// FilterOwn returns list without dnstun's own addresses (own: its virtual
// resolvers and TUN addresses), compared without port, zone or IPv4-in-IPv6
// mapping. onlyOwn is true when list was not empty and held nothing else:
// the system's resolver is dnstun itself (capture made it the global
// resolver), so forwarding there would loop.
func FilterOwn(list []netip.AddrPort, own []netip.Addr) (usable []netip.AddrPort, onlyOwn bool) {
	for _, a := range list {
		if !isOwn(a.Addr(), own) {
			usable = append(usable, a)
		}
	}
	return usable, len(list) > 0 && len(usable) == 0
}

func isOwn(a netip.Addr, own []netip.Addr) bool {
	a = a.WithZone("").Unmap()
	for _, o := range own {
		if a == o.WithZone("").Unmap() {
			return true
		}
	}
	return false
}

// Refresh is the outcome of re-reading the system's resolvers.
type Refresh struct {
	// Use is what to forward to from now on.
	Use []netip.AddrPort
	// Changed is true when Use differs from the list in use before.
	Changed bool
	// Kept is true when the list read was refused and the last good one
	// kept; Why then says why, for the log.
	Kept bool
	Why  string
}

// RefreshUpstreams decides what a re-read of the system's resolvers
// (read) changes, given the list in use (last) and dnstun's own addresses.
// A list that, without dnstun's own addresses, is empty is refused and the
// last good one kept: on every OS, once capture is on the system may name
// dnstun as its resolver (macOS's global DNS, a resolv.conf rewritten by a
// network manager), and forwarding to it would answer every query with
// SERVFAIL. It is a pure function; the caller logs Why when Kept.
func RefreshUpstreams(last, read []netip.AddrPort, own []netip.Addr) Refresh {
	usable, onlyOwn := FilterOwn(read, own)
	if len(usable) == 0 {
		why := "the system lists no resolver"
		if onlyOwn {
			why = fmt.Sprintf("the system's resolvers %v are only dnstun's own addresses (dnstun is the system resolver now)", read)
		}
		if len(last) > 0 {
			why += fmt.Sprintf("; keeping the last good upstreams %v", last)
		} else {
			why += "; and there is no earlier list to keep: forwarded queries get SERVFAIL until one appears"
		}
		return Refresh{Use: last, Kept: true, Why: why}
	}
	return Refresh{Use: usable, Changed: !slices.Equal(usable, last)}
}

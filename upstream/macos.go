// SPDX-License-Identifier: MIT

package upstream

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/dnstun/dnstun/internal/macos"
)

// This file has no _darwin suffix on purpose: it reads the output of macOS
// tools and decides from it, and is tested on Linux against fixtures of
// real macOS output (internal/macos/testdata); only the functions that run
// the tools are darwin-only (sysresolvers_darwin.go).

func port53(as []netip.Addr) []netip.AddrPort {
	var out []netip.AddrPort
	for _, a := range as {
		out = append(out, netip.AddrPortFrom(a.Unmap(), 53))
	}
	return out
}

// Dynamic-store keys the darwin resolver source reads.
const (
	keyGlobalIPv4 = "State:/Network/Global/IPv4"
	keyGlobalDNS  = "State:/Network/Global/DNS"
)

// ScutilPath is the tool every darwin dynamic-store read goes through.
const ScutilPath = "/usr/sbin/scutil"

// DarwinGlobalScript is the scutil script (fed on stdin) of the first read
// of the system's resolvers: the primary service and interface, and the
// global DNS configuration. Its output is DarwinDNSDumps.Global.
const DarwinGlobalScript = "show " + keyGlobalIPv4 + "\nshow " + keyGlobalDNS + "\n"

// DarwinServiceScript is the scutil script of the second read: the primary
// service's DNS as set by hand (Setup:) and as configured by DHCP/RA or a
// VPN (State:). Its output is DarwinDNSDumps.Service. The service id comes
// from the first read; anything that could end the line or start another
// command is refused.
func DarwinServiceScript(serviceID string) (string, error) {
	if serviceID == "" || strings.ContainsAny(serviceID, " \t\r\n\"\\") {
		return "", fmt.Errorf("primary service id %q: want a dynamic-store service id (a UUID) without spaces or quotes", serviceID)
	}
	return "show Setup:/Network/Service/" + serviceID + "/DNS\nshow State:/Network/Service/" + serviceID + "/DNS\n", nil
}

// DarwinDNSDumps is what the two scutil reads printed.
type DarwinDNSDumps struct {
	// Global is the output of DarwinGlobalScript.
	Global string
	// Service is the output of DarwinServiceScript(PrimaryService), or ""
	// when there is no primary service (no network).
	Service string
}

// DarwinResolvers is where dnstun forwards on macOS, and why.
type DarwinResolvers struct {
	PrimaryService   string // the id of State:/Network/Global/IPv4's PrimaryService, "" when offline
	PrimaryInterface string // its PrimaryInterface (en0, ...)
	// Source is the dynamic-store key Upstreams come from.
	Source    string
	Upstreams []netip.AddrPort
	// Own are dnstun's own addresses found in the keys read, left out.
	Own []netip.AddrPort
}

// ErrNoUsableResolver means the system lists no resolver dnstun may
// forward to: none at all, or only dnstun's own addresses. The caller
// keeps the resolvers it used last.
var ErrNoUsableResolver = errors.New("no usable resolver")

// PrimaryOf reads PrimaryService and PrimaryInterface from the output of
// DarwinGlobalScript; both are "" when there is no primary service
// (offline), which is not an error.
func PrimaryOf(global string) (service, iface string, err error) {
	res, err := macos.ParseShows(global)
	if err != nil {
		return "", "", fmt.Errorf("read %s: %w", keyGlobalIPv4, err)
	}
	if res[0].Value == nil {
		if res[0].Missing() {
			return "", "", nil
		}
		return "", "", fmt.Errorf("read %s: scutil: %s", keyGlobalIPv4, res[0].Message)
	}
	return res[0].Value.String("PrimaryService"), res[0].Value.String("PrimaryInterface"), nil
}

// PickDarwinResolvers decides where dnstun forwards on macOS, from the two
// scutil reads (d) and dnstun's own addresses (own: its virtual resolvers
// and TUN addresses). It is a pure function.
//
// Once capture publishes dnstun's resolver, configd makes it the global
// one: State:/Network/Global/DNS (and /etc/resolv.conf) then list dnstun's
// own addresses, so they cannot be the source. The primary service's own
// DNS keys are: ServerAddresses of Setup:/Network/Service/<id>/DNS (set by
// hand, which configd prefers), else of State:/Network/Service/<id>/DNS
// (DHCP, RA, a VPN). State:/Network/Global/DNS is the last resort, for a
// primary service without DNS keys. dnstun's own addresses are always left
// out; when nothing else is left the error wraps ErrNoUsableResolver and
// names what each key held.
func PickDarwinResolvers(d DarwinDNSDumps, own []netip.Addr) (DarwinResolvers, error) {
	var r DarwinResolvers
	global, err := macos.ParseShows(d.Global)
	if err != nil {
		return r, fmt.Errorf("read %s and %s: %w", keyGlobalIPv4, keyGlobalDNS, err)
	}
	if len(global) != 2 {
		return r, fmt.Errorf("read %s and %s: scutil printed %d answers to 2 commands: %q", keyGlobalIPv4, keyGlobalDNS, len(global), d.Global)
	}
	if v := global[0].Value; v != nil {
		r.PrimaryService, r.PrimaryInterface = v.String("PrimaryService"), v.String("PrimaryInterface")
	}
	type source struct {
		key string
		got macos.Shown
	}
	var sources []source
	if r.PrimaryService != "" {
		svc, err := macos.ParseShows(d.Service)
		if err != nil || len(svc) != 2 {
			return r, fmt.Errorf("read the DNS keys of primary service %s: %d answers to 2 commands, %v: %q", r.PrimaryService, len(svc), err, d.Service)
		}
		sources = append(sources,
			source{"Setup:/Network/Service/" + r.PrimaryService + "/DNS", svc[0]},
			source{"State:/Network/Service/" + r.PrimaryService + "/DNS", svc[1]})
	}
	sources = append(sources, source{keyGlobalDNS, global[1]})
	var seen []string
	for _, s := range sources {
		if s.got.Value == nil {
			seen = append(seen, s.key+": "+strings.ToLower(s.got.Message))
			continue
		}
		listed := port53(s.got.Value.Addrs("ServerAddresses"))
		usable, onlyOwn := FilterOwn(listed, own)
		r.Own = append(r.Own, ownOf(listed, own)...)
		switch {
		case len(usable) > 0:
			r.Source, r.Upstreams = s.key, usable
			return r, nil
		case onlyOwn:
			seen = append(seen, fmt.Sprintf("%s: only dnstun's own addresses %v", s.key, listed))
		default:
			seen = append(seen, s.key+": no ServerAddresses")
		}
	}
	return r, fmt.Errorf("%w on this Mac (%s)", ErrNoUsableResolver, strings.Join(seen, "; "))
}

func ownOf(list []netip.AddrPort, own []netip.Addr) []netip.AddrPort {
	var out []netip.AddrPort
	for _, a := range list {
		if isOwn(a.Addr(), own) {
			out = append(out, a)
		}
	}
	return out
}

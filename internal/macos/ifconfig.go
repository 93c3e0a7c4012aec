// SPDX-License-Identifier: MIT

package macos

import (
	"fmt"
	"math/bits"
	"net/netip"
	"strconv"
	"strings"
)

// Interface is one interface of ifconfig output.
type Interface struct {
	Name  string
	Flags []string // "UP", "POINTOPOINT", "RUNNING", ...
	MTU   int
	Inet  []IfAddr
	Inet6 []IfAddr
}

// IfAddr is one inet or inet6 line.
type IfAddr struct {
	Addr  netip.Addr
	Dest  netip.Addr // the peer of a point-to-point address ("-->"), if any
	Bits  int        // netmask / prefixlen
	Flags []string   // inet6 address flags: "tentative", "duplicated", "detached", ...
}

// HasFlag reports whether the interface's flags list f.
func (i Interface) HasFlag(f string) bool {
	for _, x := range i.Flags {
		if x == f {
			return true
		}
	}
	return false
}

// Addr returns the inet or inet6 line of a.
func (i Interface) Addr(a netip.Addr) (IfAddr, bool) {
	for _, x := range append(append([]IfAddr(nil), i.Inet...), i.Inet6...) {
		if x.Addr == a {
			return x, true
		}
	}
	return IfAddr{}, false
}

// ParseIfconfig reads ifconfig output (one or more interfaces). Format
// (network_cmds' ifconfig.tproj: ifconfig.c status, af_inet.c in_status,
// af_inet6.c in6_status): "name: flags=8051<UP,POINTOPOINT,RUNNING,MULTICAST>
// mtu 1500", then tab-indented lines, among them
// "inet A [--> D ]netmask 0xffffffff [broadcast B]" and
// "inet6 A[%scope] [--> D ]prefixlen N [flags ][scopeid 0xN ]". Other lines
// (options, ether, nd6 options, media, status) are skipped.
func ParseIfconfig(out string) ([]Interface, error) {
	var ifs []Interface
	for n, raw := range splitLines(out) {
		if raw == "" {
			continue
		}
		if raw[0] != '\t' && raw[0] != ' ' {
			name, rest, ok := strings.Cut(raw, ": ")
			if !ok || !strings.HasPrefix(rest, "flags=") {
				return ifs, fmt.Errorf("ifconfig line %d: %q is not an interface header (\"name: flags=…\")", n+1, raw)
			}
			it := Interface{Name: name}
			if i, j := strings.IndexByte(rest, '<'), strings.IndexByte(rest, '>'); i >= 0 && j > i {
				for _, f := range strings.Split(rest[i+1:j], ",") {
					if f != "" {
						it.Flags = append(it.Flags, f)
					}
				}
			}
			f := strings.Fields(rest)
			for k := 0; k+1 < len(f); k++ {
				if f[k] == "mtu" {
					it.MTU, _ = strconv.Atoi(f[k+1])
				}
			}
			ifs = append(ifs, it)
			continue
		}
		if len(ifs) == 0 {
			return nil, fmt.Errorf("ifconfig line %d: %q comes before any interface header", n+1, raw)
		}
		cur := &ifs[len(ifs)-1]
		f := strings.Fields(raw)
		if len(f) < 2 || (f[0] != "inet" && f[0] != "inet6") {
			continue
		}
		a, err := parseIfAddr(f)
		if err != nil {
			return ifs, fmt.Errorf("ifconfig %s line %d: %w", cur.Name, n+1, err)
		}
		if f[0] == "inet" {
			cur.Inet = append(cur.Inet, a)
		} else {
			cur.Inet6 = append(cur.Inet6, a)
		}
	}
	if len(ifs) == 0 {
		return nil, fmt.Errorf("no interface in ifconfig output: %q", clip(out))
	}
	return ifs, nil
}

func parseIfAddr(f []string) (IfAddr, error) {
	var a IfAddr
	var err error
	if a.Addr, err = netip.ParseAddr(f[1]); err != nil {
		return a, fmt.Errorf("%s address %q: %w", f[0], f[1], err)
	}
	for k := 2; k < len(f); k++ {
		switch f[k] {
		case "-->":
			if k+1 < len(f) {
				k++
				a.Dest, _ = netip.ParseAddr(f[k])
			}
		case "netmask":
			if k+1 < len(f) {
				k++
				m, err := strconv.ParseUint(strings.TrimPrefix(f[k], "0x"), 16, 32)
				if err != nil {
					return a, fmt.Errorf("netmask %q: %w", f[k], err)
				}
				a.Bits = bits.OnesCount32(uint32(m))
			}
		case "prefixlen":
			if k+1 < len(f) {
				k++
				if a.Bits, err = strconv.Atoi(f[k]); err != nil {
					return a, fmt.Errorf("prefixlen %q: %w", f[k], err)
				}
			}
		case "broadcast", "scopeid", "pltime", "vltime":
			k++ // the value
		default:
			if f[0] == "inet6" {
				a.Flags = append(a.Flags, f[k])
			}
		}
	}
	return a, nil
}

// SPDX-License-Identifier: MIT

package upstream

import (
	"bufio"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
)

// ResolvConfPath is where the system's resolvers are read from by default.
const ResolvConfPath = "/etc/resolv.conf"

// ReadResolvConf returns the nameserver lines of a resolv.conf(5) file as
// address:53 pairs, in order. IPv6 zones (fe80::1%eth0) are kept.
func ReadResolvConf(path string) ([]netip.AddrPort, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read resolvers: %w", err)
	}
	defer f.Close()
	addrs, err := ParseResolvConf(f)
	if err != nil {
		return nil, fmt.Errorf("read resolvers from %s: %w", path, err)
	}
	return addrs, nil
}

// ParseResolvConf parses the nameserver lines of a resolv.conf(5) file.
// Lines it does not understand are ignored, as the C library does.
func ParseResolvConf(r io.Reader) ([]netip.AddrPort, error) {
	var out []netip.AddrPort
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexAny(line, "#;"); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "nameserver" {
			continue
		}
		a, err := netip.ParseAddr(f[1])
		if err != nil {
			continue
		}
		out = append(out, netip.AddrPortFrom(a.Unmap(), 53))
	}
	return out, sc.Err()
}

// ParseAddrPort parses an upstream given as "IP", "IP:PORT" or "[IPv6]:PORT";
// a missing port means 53.
func ParseAddrPort(s string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
	}
	if a, err := netip.ParseAddr(strings.Trim(s, "[]")); err == nil {
		return netip.AddrPortFrom(a.Unmap(), 53), nil
	}
	return netip.AddrPort{}, fmt.Errorf("upstream %q: want IP, IP:PORT or [IPv6]:PORT (a host name cannot be used: dnstun would have to resolve it through itself)", s)
}

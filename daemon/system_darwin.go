// SPDX-License-Identifier: MIT

package daemon

import (
	"fmt"
	"net/netip"
	"os/exec"
	"strings"

	"github.com/dnstun/dnstun/upstream"
)

// platformUpstreams reads the primary service's resolvers from the dynamic
// store (what the Mac used before dnstun published its own resolver).
// Not yet run on a Mac; the parser is tested on Linux.
func platformUpstreams() ([]netip.AddrPort, bool, error) {
	cmd := exec.Command("/usr/sbin/scutil")
	cmd.Stdin = strings.NewReader("show State:/Network/Global/DNS\n")
	out, err := cmd.Output()
	if err != nil {
		return nil, true, fmt.Errorf("read the system's resolvers: scutil: %w", err)
	}
	return upstream.ParseScutilDNS(string(out)), true, nil
}

// platformInterface is the interface of the default route, which upstream
// sockets are bound to so they never enter the utun.
func platformInterface() string {
	out, err := exec.Command("/sbin/route", "-n", "get", "default").Output()
	if err != nil {
		return ""
	}
	return upstream.ParseRouteInterface(string(out))
}

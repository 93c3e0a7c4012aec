// SPDX-License-Identifier: MIT

//go:build linux || darwin

package upstream

import (
	"errors"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"
)

// poolDestSys is a destination's socket address, made once per Dest so
// that connecting a fresh socket allocates nothing.
type poolDestSys struct {
	family int
	sa     unix.Sockaddr
}

func (ds *poolDestSys) init(addr netip.AddrPort) error {
	a := addr.Addr()
	if a.Is4() {
		ds.family = unix.AF_INET
		ds.sa = &unix.SockaddrInet4{Port: int(addr.Port()), Addr: a.As4()}
		return nil
	}
	sa := &unix.SockaddrInet6{Port: int(addr.Port()), Addr: a.As16()}
	if z := a.Zone(); z != "" {
		idx, err := zoneIndex(z)
		if err != nil {
			return fmt.Errorf("upstream %v: zone %q: %w", addr, z, err)
		}
		sa.ZoneId = idx
	}
	ds.family, ds.sa = unix.AF_INET6, sa
	return nil
}

// fdLimitHint says what to do when a socket could not be opened for want
// of file descriptors.
func fdLimitHint(err error) string {
	if errors.Is(err, unix.EMFILE) || errors.Is(err, unix.ENFILE) {
		return " (out of file descriptors: lower MaxSockets or raise the open-file limit)"
	}
	return ""
}

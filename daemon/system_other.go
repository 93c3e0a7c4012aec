// SPDX-License-Identifier: MIT

//go:build !darwin

package daemon

import "net/netip"

// platformUpstreams: elsewhere the system's resolvers come from resolv.conf.
func platformUpstreams() ([]netip.AddrPort, bool, error) { return nil, false, nil }

// platformInterface: Linux exempts upstream sockets with SO_MARK instead.
func platformInterface() string { return "" }

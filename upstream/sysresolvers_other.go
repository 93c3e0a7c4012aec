// SPDX-License-Identifier: MIT

//go:build !darwin

package upstream

import (
	"errors"
	"net/netip"
)

// DarwinSystemResolvers reads the macOS dynamic store: unsupported here.
func DarwinSystemResolvers(own []netip.Addr) (DarwinResolvers, error) {
	return DarwinResolvers{}, errors.ErrUnsupported
}

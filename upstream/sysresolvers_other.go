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

// DarwinBindChoice runs macOS's route: unsupported here.
func DarwinBindChoice(a netip.Addr, ours []string, primary string) (BindChoice, error) {
	return BindChoice{}, errors.ErrUnsupported
}

// SPDX-License-Identifier: MIT

//go:build !linux

package daemon

import "errors"

// errNoCapabilities: the system has none (macOS): the daemon stays root.
var errNoCapabilities = errors.New("no capabilities on this system")

// dropCapabilities does nothing where there are no capabilities.
func dropCapabilities([]Privilege) (privReport, error) { return privReport{}, errNoCapabilities }

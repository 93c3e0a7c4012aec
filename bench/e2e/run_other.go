// SPDX-License-Identifier: MIT

//go:build !linux

package e2e

import (
	"context"
	"errors"
)

// Run needs Linux network namespaces; see bench/MACOS.md for macOS.
func Run(ctx context.Context, o Options) (*Report, error) {
	return nil, errors.ErrUnsupported
}

// SystemNames lists every system in the order they are measured.
func SystemNames() []string {
	return []string{"direct", "dnstun", "dnstun-flow", "dnsmasq", "unbound", "dnsdist", "ceiling"}
}

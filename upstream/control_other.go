// SPDX-License-Identifier: MIT

//go:build !linux && !darwin

package upstream

// control on systems without SO_MARK: nothing steers traffic into a TUN
// there, so no loop is possible.
func control(network string, fd uintptr, opt Options) error { return nil }

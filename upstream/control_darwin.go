// SPDX-License-Identifier: MIT

package upstream

// control does nothing on macOS: capture steers through the resolver
// configuration, and only dnstun's own addresses (never an upstream: config
// refuses them) are routed into the utun, so an upstream socket cannot
// loop. It is left unbound, and follows the routing table as it changes
// (Wi-Fi to Ethernet, a split-tunnel VPN), where a socket bound to one
// interface (IP_BOUND_IF) would stay on the wrong one.
func control(network string, fd uintptr, opt Options) error { return nil }

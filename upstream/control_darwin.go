// SPDX-License-Identifier: MIT

package upstream

import "golang.org/x/sys/unix"

// control sizes the receive buffer. macOS needs no more: capture steers
// through the resolver configuration, and only dnstun's own addresses
// (never an upstream: config refuses them) are routed into the utun, so an
// upstream socket cannot loop. It is left unbound, and follows the routing
// table as it changes (Wi-Fi to Ethernet, a split-tunnel VPN), where a
// socket bound to one interface (IP_BOUND_IF) would stay on the wrong one.
func control(network string, fd uintptr, opt Options) error {
	if opt.RecvBuffer > 0 {
		_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, opt.RecvBuffer)
	}
	return nil
}

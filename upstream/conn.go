// SPDX-License-Identifier: MIT

package upstream

import (
	"errors"
	"net"
	"syscall"
)

// Mark is the SO_MARK dnstun's upstream sockets carry on Linux. The top
// byte is unused by Tailscale (0xff0000), Kubernetes (0x4000/0x8000),
// wg-quick and sing-box; it stays below 0x80000000.
const Mark = 0x53000000

// IsNoRoute reports whether a socket error means the upstream cannot be
// reached now (no route, no source address, interface down) but may be
// later, as at boot before the network is up: the caller marks it down and
// tries again later, instead of failing.
func IsNoRoute(err error) bool {
	for _, e := range []error{syscall.ENETUNREACH, syscall.EHOSTUNREACH, syscall.EADDRNOTAVAIL, syscall.ENETDOWN} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// Options tune how a socket is made (see control).
type Options struct {
	// Mark is the SO_MARK to set on Linux; 0 leaves sockets unmarked.
	Mark uint32
}

// IsClosed reports whether err means the socket was closed.
func IsClosed(err error) bool { return errors.Is(err, net.ErrClosed) }

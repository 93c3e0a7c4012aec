// SPDX-License-Identifier: MIT

//go:build !linux && !darwin

package control

import (
	"errors"
	"net"
)

// peerCred is not implemented here: every peer is refused.
func peerCred(c *net.UnixConn) (peer, error) {
	return peer{}, errors.New("peer credentials are not implemented on this OS")
}

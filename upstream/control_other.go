// SPDX-License-Identifier: MIT

//go:build !linux

package upstream

import "syscall"

// control on non-Linux systems: there is no SO_MARK. darwin will bind to the
// physical interface (IP_BOUND_IF) once capture exists there; until then
// nothing routes upstream traffic into the utun, so no loop is possible.
func control(fd uintptr, opt Options) error {
	if opt.RecvBuffer > 0 {
		_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, opt.RecvBuffer)
	}
	return nil
}

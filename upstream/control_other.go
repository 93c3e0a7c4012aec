// SPDX-License-Identifier: MIT

//go:build !linux && !darwin

package upstream

import "syscall"

// control on systems without SO_MARK or IP_BOUND_IF: nothing steers
// traffic into a TUN there, so no loop is possible.
func control(network string, fd uintptr, opt Options) error {
	if opt.RecvBuffer > 0 {
		_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, opt.RecvBuffer)
	}
	return nil
}

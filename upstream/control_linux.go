// SPDX-License-Identifier: MIT

package upstream

import (
	"fmt"

	"golang.org/x/sys/unix"
)

func control(network string, fd uintptr, opt Options) error {
	if opt.Mark != 0 {
		if err := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, int(opt.Mark)); err != nil {
			return fmt.Errorf("setsockopt SO_MARK=%#x: %w (needs CAP_NET_ADMIN)", opt.Mark, err)
		}
	}
	if opt.RecvBuffer > 0 {
		// SO_RCVBUFFORCE passes rmem_max when we hold CAP_NET_ADMIN; fall
		// back to the capped option otherwise.
		if err := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, opt.RecvBuffer); err != nil {
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, opt.RecvBuffer)
		}
	}
	return nil
}

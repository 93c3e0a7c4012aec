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
	return nil
}

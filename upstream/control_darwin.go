// SPDX-License-Identifier: MIT

package upstream

import (
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// control binds an upstream socket to opt.Interface with IP_BOUND_IF /
// IPV6_BOUND_IF (by the socket's actual family), so that it cannot be
// routed into the utun; ChooseBind says when that is needed ("" leaves the
// socket unbound). Compiled and vetted on Linux; not yet run on a Mac.
func control(network string, fd uintptr, opt Options) error {
	if opt.RecvBuffer > 0 {
		_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, opt.RecvBuffer)
	}
	if opt.Interface == "" {
		return nil
	}
	ifi, err := net.InterfaceByName(opt.Interface)
	if err != nil {
		return fmt.Errorf("bind upstream socket to %s: %w", opt.Interface, err)
	}
	if network == "udp6" {
		err = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_BOUND_IF, ifi.Index)
	} else {
		err = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_BOUND_IF, ifi.Index)
	}
	if err != nil {
		return fmt.Errorf("bind upstream socket to %s: %w", opt.Interface, err)
	}
	return nil
}

// SPDX-License-Identifier: MIT

package control

import (
	"net"

	"golang.org/x/sys/unix"
)

// peerCred reads LOCAL_PEERCRED (uid and groups at connect time; the
// first group is the effective gid) and LOCAL_PEERPID.
func peerCred(c *net.UnixConn) (peer, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return peer{}, err
	}
	var cred *unix.Xucred
	var cerr error
	pid := 0
	if err := rc.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptXucred(int(fd), unix.SOL_LOCAL, unix.LOCAL_PEERCRED)
		if n, err := unix.GetsockoptInt(int(fd), unix.SOL_LOCAL, unix.LOCAL_PEERPID); err == nil {
			pid = n
		}
	}); err != nil {
		return peer{}, err
	}
	if cerr != nil {
		return peer{}, cerr
	}
	n := int(cred.Ngroups)
	if n > len(cred.Groups) {
		n = len(cred.Groups)
	}
	p := peer{UID: cred.Uid, PID: pid}
	p.GIDs = append(p.GIDs, cred.Groups[:n]...)
	return p, nil
}

// SPDX-License-Identifier: MIT

package control

import (
	"net"

	"golang.org/x/sys/unix"
)

// peerCred reads LOCAL_PEERCRED (uid and groups at connect time; the first
// group is the effective gid) and LOCAL_PEERPID. The kernel's list holds at
// most 16 groups; when it is full, the user's other groups come from the
// directory (completeGroups), so --control-group members whose membership
// is beyond the 16th are not refused.
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
	n := min(int(cred.Ngroups), len(cred.Groups))
	p := peer{UID: cred.Uid, PID: pid}
	// A failed directory lookup keeps the kernel's groups: the peer is then
	// judged on those, as before.
	// cr_groups has NGROUPS (16) entries (XNU sys/ucred.h, struct xucred):
	// a full list may have dropped groups.
	p.GIDs, _ = completeGroups(append([]uint32(nil), cred.Groups[:max(n, 0)]...), len(cred.Groups), cred.Uid, userGroups)
	return p, nil
}

// SPDX-License-Identifier: MIT

package control

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// peerCred reads SO_PEERCRED (uid, gid and pid at connect time) and the
// peer's supplementary groups from /proc/<pid>/status.
func peerCred(c *net.UnixConn) (peer, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return peer{}, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := rc.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return peer{}, err
	}
	if cerr != nil {
		return peer{}, cerr
	}
	p := peer{UID: cred.Uid, PID: int(cred.Pid), GIDs: []uint32{cred.Gid}}
	if cred.Pid > 0 {
		// Best effort: a peer that already exited (or lives in another
		// pid namespace) keeps only its primary group.
		if groups, err := procGroups(fmt.Sprintf("/proc/%d/status", cred.Pid)); err == nil {
			p.GIDs = append(p.GIDs, groups...)
		}
	}
	return p, nil
}

// procGroups parses the Groups: line of a /proc/<pid>/status file.
func procGroups(path string) ([]uint32, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "Groups:")
		if !ok {
			continue
		}
		var out []uint32
		for _, s := range strings.Fields(rest) {
			n, err := strconv.ParseUint(s, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("%s: bad group %q", path, s)
			}
			out = append(out, uint32(n))
		}
		return out, nil
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("%s: no Groups line", path)
}

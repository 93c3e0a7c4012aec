// SPDX-License-Identifier: MIT

package daemon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// errNoCapabilities: the system has none (never on Linux).
var errNoCapabilities = errors.New("no capabilities on this system")

// errCgo explains why a cgo binary cannot drop.
var errCgo = errors.New("this dnstun binary links cgo, and Linux capabilities are per thread: Go changes every thread's only in a binary without cgo; build it with CGO_ENABLED=0 (go build and go install honour it)")

// dropCapabilities reduces every thread of the process to keep (those of
// it the process holds): permitted and effective to keep, inheritable and
// ambient empty, the bounding set to keep (with CAP_SETPCAP), and sets
// no_new_privs. Each change is made on all threads at once
// (syscall.AllThreadsSyscall), then every thread's /proc status is
// checked. With cgo nothing is changed and errCgo returned.
func dropCapabilities(keep []Privilege) (privReport, error) {
	var rep privReport
	held, err := currentPermitted()
	if err != nil {
		return rep, err
	}
	var want uint64
	for _, p := range keep {
		if held&(1<<p.Cap) != 0 {
			want |= 1 << p.Cap
			rep.kept = append(rep.kept, p.Cap)
		} else {
			rep.missing = append(rep.missing, p.Cap)
		}
	}
	// Any of the calls below fails with ENOTSUP in a cgo binary: test
	// that first, with a call that changes nothing.
	if _, _, e := syscall.AllThreadsSyscall(unix.SYS_PRCTL, unix.PR_CAPBSET_READ, uintptr(CapNetAdmin), 0); e == syscall.ENOTSUP {
		return rep, errCgo
	}

	// The bounding set first, while CAP_SETPCAP is still effective.
	rep.bounding = true
	last := lastCap()
	for c := 0; c <= last; c++ {
		if want&(1<<c) != 0 {
			continue
		}
		in, _, e := syscall.RawSyscall(unix.SYS_PRCTL, unix.PR_CAPBSET_READ, uintptr(c), 0)
		if e != 0 || in != 1 {
			continue // unknown to this kernel, or already out
		}
		if _, _, e := syscall.AllThreadsSyscall(unix.SYS_PRCTL, unix.PR_CAPBSET_DROP, uintptr(c), 0); e != 0 {
			if e == syscall.EPERM {
				rep.bounding = false // no CAP_SETPCAP: no_new_privs still bounds what children get
				break
			}
			return rep, fmt.Errorf("prctl(PR_CAPBSET_DROP, %v): %w", Capability(c), e)
		}
	}
	if _, _, e := syscall.AllThreadsSyscall(unix.SYS_PRCTL, unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0); e != 0 && e != syscall.EINVAL {
		return rep, fmt.Errorf("prctl(PR_CAP_AMBIENT_CLEAR_ALL): %w", e)
	}
	if _, _, e := syscall.AllThreadsSyscall(unix.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0); e != 0 {
		return rep, fmt.Errorf("prctl(PR_SET_NO_NEW_PRIVS): %w", e)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3} // Pid 0: the calling thread, each in turn
	var data [2]unix.CapUserData
	data[0].Effective, data[0].Permitted = uint32(want), uint32(want)
	data[1].Effective, data[1].Permitted = uint32(want>>32), uint32(want>>32)
	_, _, e := syscall.AllThreadsSyscall(unix.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0)
	runtime.KeepAlive(&hdr)
	runtime.KeepAlive(&data)
	if e != 0 {
		return rep, fmt.Errorf("capset: %w", e)
	}
	bnd := int64(-1) // not checked when the bounding set could not shrink
	if rep.bounding {
		bnd = int64(want)
	}
	rep.threads, err = checkThreads(want, bnd)
	return rep, err
}

// currentPermitted is the calling thread's permitted set.
func currentPermitted() (uint64, error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return 0, fmt.Errorf("capget: %w", err)
	}
	return uint64(data[0].Permitted) | uint64(data[1].Permitted)<<32, nil
}

// lastCap is the highest capability this kernel knows.
func lastCap() int {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if n, err2 := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && err2 == nil && n > 0 && n < 64 {
		return n
	}
	return unix.CAP_LAST_CAP
}

// threadCaps are a thread's capability sets as /proc/PID/task/TID/status
// shows them.
type threadCaps struct {
	Inh, Prm, Eff, Bnd, Amb uint64
	NoNewPrivs              bool
}

// parseCapStatus reads the capability lines of a /proc status file.
func parseCapStatus(status string) (threadCaps, error) {
	var tc threadCaps
	found := 0
	for _, line := range strings.Split(status, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		var dst *uint64
		switch k {
		case "CapInh":
			dst = &tc.Inh
		case "CapPrm":
			dst = &tc.Prm
		case "CapEff":
			dst = &tc.Eff
		case "CapBnd":
			dst = &tc.Bnd
		case "CapAmb":
			dst = &tc.Amb
		case "NoNewPrivs":
			tc.NoNewPrivs = v == "1"
			found++
			continue
		default:
			continue
		}
		n, err := strconv.ParseUint(v, 16, 64)
		if err != nil {
			return tc, fmt.Errorf("%s: %q: %w", k, v, err)
		}
		*dst = n
		found++
	}
	if found != 6 {
		return tc, fmt.Errorf("status has %d of the 6 capability lines", found)
	}
	return tc, nil
}

// checkThreads verifies that every thread of the process holds exactly
// want (bounding set bnd, unless -1), nothing inheritable or ambient, and
// no_new_privs. It returns how many threads it checked.
func checkThreads(want uint64, bnd int64) (int, error) {
	dirs, err := filepath.Glob("/proc/self/task/*/status")
	if err != nil || len(dirs) == 0 {
		return 0, fmt.Errorf("cannot list /proc/self/task to check the drop: %v", err)
	}
	slices.Sort(dirs)
	n := 0
	for _, p := range dirs {
		b, err := os.ReadFile(p)
		if errors.Is(err, os.ErrNotExist) {
			continue // the thread ended
		}
		if err != nil {
			return n, fmt.Errorf("checking the drop: %w", err)
		}
		tc, err := parseCapStatus(string(b))
		if err != nil {
			return n, fmt.Errorf("checking the drop: %s: %w", p, err)
		}
		if tc.Prm != want || tc.Eff != want || tc.Inh != 0 || tc.Amb != 0 || !tc.NoNewPrivs || bnd >= 0 && tc.Bnd != uint64(bnd) {
			return n, fmt.Errorf("thread %s kept more than wanted after the drop (CapPrm %016x CapEff %016x CapInh %016x CapAmb %016x CapBnd %016x NoNewPrivs %v; want %016x)",
				filepath.Base(filepath.Dir(p)), tc.Prm, tc.Eff, tc.Inh, tc.Amb, tc.Bnd, tc.NoNewPrivs, want)
		}
		n++
	}
	return n, nil
}

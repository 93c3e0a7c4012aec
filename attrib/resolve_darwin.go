// SPDX-License-Identifier: MIT

//go:build darwin

package attrib

import (
	"context"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// System call arguments not in x/sys/unix (xnu bsd/sys/proc_info.h and
// bsd/sys/codesign.h). libproc's proc_pidpath is
// __proc_info(PROC_INFO_CALL_PIDINFO, pid, PROC_PIDPATHINFO, 0, buf, size)
// (Libc darwin/libproc.c); csops is its own system call.
const (
	procInfoCallPIDInfo  = 2    // PROC_INFO_CALL_PIDINFO
	procPIDPathInfo      = 11   // PROC_PIDPATHINFO
	procPIDPathInfoMax   = 4096 // PROC_PIDPATHINFO_MAXSIZE (4*MAXPATHLEN)
	csOpsIdentity        = 11   // CS_OPS_IDENTITY
	csIdentityBufferSize = 1024
)

type sysState struct {
	cfg Config
}

func newSys(cfg Config, _ *scanCounters, _ func(error)) (*sysState, error) {
	return &sysState{cfg: cfg}, nil
}

func (s *sysState) newResolver() (resolver, error) { return &darwinResolver{}, nil }

// darwinResolver reads the protocol's PCB list (one sysctl), picks the
// socket, and asks the kernel about its last process.
type darwinResolver struct {
	pcbs []pcb
	path [procPIDPathInfoMax]byte
	id   [csIdentityBufferSize]byte
}

func (r *darwinResolver) close() {}

func (r *darwinResolver) resolve(ctx context.Context, k Key) (*Owner, error) {
	name := "net.inet.udp.pcblist_n"
	if k.Proto == ProtoTCP {
		name = "net.inet.tcp.pcblist_n"
	}
	b, err := unix.SysctlRaw(name)
	if err != nil {
		return nil, fmt.Errorf("attrib: %v: sysctl %s: %w", k, name, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("attrib: %v: %w", k, err)
	}
	r.pcbs, err = parsePcblist(b, r.pcbs[:0])
	if err != nil {
		return nil, fmt.Errorf("attrib: %v: sysctl %s: %w (has the layout changed in this macOS?)", k, name, err)
	}
	p, ok := matchPcb(r.pcbs, k)
	if !ok {
		return nil, fmt.Errorf("%w: %v: no such socket with a recorded process in %s", ErrNotFound, k, name)
	}
	pid := p.LastPID
	if pid <= 0 {
		pid = p.EffectivePID
	}
	o := &Owner{PID: pid, UID: p.UID}
	if p.EffectivePID > 0 && p.EffectivePID != pid {
		o.EffectivePID = p.EffectivePID
	}
	if kp, err := unix.SysctlKinfoProc("kern.proc.pid", int(pid)); err == nil && kp.Proc.P_pid == pid {
		o.Name = unix.ByteSliceToString(kp.Proc.P_comm[:])
	}
	o.Exe = r.pidPath(pid)
	o.SigningID = r.signingID(pid)
	return o, nil
}

// pidPath is proc_pidpath(pid): the executable's path, "" on failure.
func (r *darwinResolver) pidPath(pid int32) string {
	_, _, errno := unix.Syscall6(unix.SYS_PROC_INFO, procInfoCallPIDInfo, uintptr(pid), procPIDPathInfo, 0,
		uintptr(unsafe.Pointer(&r.path[0])), uintptr(len(r.path)))
	if errno != 0 {
		return ""
	}
	return unix.ByteSliceToString(r.path[:])
}

// signingID is csops(pid, CS_OPS_IDENTITY): the code-signing identifier,
// "" for an unsigned process or on failure.
func (r *darwinResolver) signingID(pid int32) string {
	clear(r.id[:])
	_, _, errno := unix.Syscall6(unix.SYS_CSOPS, uintptr(pid), csOpsIdentity,
		uintptr(unsafe.Pointer(&r.id[0])), uintptr(len(r.id)), 0, 0)
	if errno != 0 {
		return ""
	}
	id, err := parseCSIdentity(r.id[:])
	if err != nil {
		return ""
	}
	return id
}

// SPDX-License-Identifier: MIT

//go:build linux

package attrib

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// maxIndexed bounds the inode index; past it the index starts over.
const maxIndexed = 1 << 16

// maxRecent is how many recent owners a scan tries before the others.
const maxRecent = 16

// sysState is what the Linux resolvers share: the socket-inode index and
// the recent owners.
type sysState struct {
	cfg   Config
	scans *scanCounters
	warn  func(error)

	mu     sync.Mutex
	inodes map[uint64]fdRef // socket inode -> the fd it was last seen at
	recent []int32          // owners found last, most recent first
}

// fdRef is where a socket inode was seen: /proc/PID/fd/FD.
type fdRef struct{ pid, fd int32 }

func newSys(cfg Config, scans *scanCounters, warn func(error)) (*sysState, error) {
	return &sysState{cfg: cfg, scans: scans, warn: warn, inodes: make(map[uint64]fdRef)}, nil
}

func (s *sysState) indexed(inode uint64) (fdRef, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ref, ok := s.inodes[inode]
	return ref, ok
}

func (s *sysState) index(inodes []uint64, refs []fdRef) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.inodes)+len(inodes) > maxIndexed {
		clear(s.inodes)
	}
	for i, ino := range inodes {
		s.inodes[ino] = refs[i]
	}
}

// touch makes pid the most recent owner.
func (s *sysState) touch(pid int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := 0
	for i < len(s.recent) && s.recent[i] != pid {
		i++
	}
	if i == len(s.recent) {
		if len(s.recent) < maxRecent {
			s.recent = append(s.recent, 0)
		} else {
			i--
		}
	}
	copy(s.recent[1:i+1], s.recent[:i])
	s.recent[0] = pid
}

func (s *sysState) recentPIDs(dst []int32) []int32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append(dst[:0], s.recent...)
}

// linuxResolver holds a NETLINK_SOCK_DIAG socket, an fd of /proc and
// buffers; it belongs to one goroutine at a time.
type linuxResolver struct {
	s      *sysState
	nl     int // the netlink socket
	procfd int // /proc
	seq    uint32
	req    []byte
	buf    []byte // netlink replies
	dents  []byte // getdents64
	link   []byte // readlink
	pids   []int32
	others []int32
	recent []int32
	found  []uint64 // socket inodes of the process being read
	refs   []fdRef
}

func (s *sysState) newResolver() (resolver, error) {
	nl, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return nil, fmt.Errorf("attrib: opening a NETLINK_SOCK_DIAG socket: %w (the kernel needs CONFIG_INET_DIAG)", err)
	}
	if err := unix.Bind(nl, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(nl)
		return nil, fmt.Errorf("attrib: binding the NETLINK_SOCK_DIAG socket: %w", err)
	}
	procfd, err := unix.Open("/proc", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Close(nl)
		return nil, fmt.Errorf("attrib: opening /proc: %w (is procfs mounted?)", err)
	}
	return &linuxResolver{
		s:      s,
		nl:     nl,
		procfd: procfd,
		buf:    make([]byte, 64<<10),
		dents:  make([]byte, 16<<10),
		link:   make([]byte, unix.PathMax),
	}, nil
}

func (r *linuxResolver) close() {
	unix.Close(r.nl)
	unix.Close(r.procfd)
}

func (r *linuxResolver) resolve(ctx context.Context, k Key) (*Owner, error) {
	m, err := r.findSocket(ctx, k)
	if err != nil {
		return nil, err
	}
	if m.Inode == 0 {
		return nil, fmt.Errorf("%w: %v: the socket has no inode (it is closing, or in TCP TIME_WAIT)", ErrNotFound, k)
	}
	// A client that closes its socket right after its answer (Go's and
	// glibc's resolvers open one per query) is often gone by the time
	// its lookup runs; once the recent owners do not hold the inode, the
	// socket is asked for again before every process is scanned for it.
	gone := func() bool {
		n, err := r.exact(ctx, k)
		return err == nil && n.Inode != m.Inode
	}
	pid, err := r.findProcess(ctx, m.Inode, m.UID, gone)
	if err != nil {
		return nil, fmt.Errorf("attrib: %v (socket inode %d, uid %d): %w", k, m.Inode, m.UID, err)
	}
	r.s.touch(pid)
	return &Owner{PID: pid, UID: m.UID, Name: r.comm(pid), Exe: r.exe(pid)}, nil
}

// findSocket asks sock_diag for k's socket: the exact socket id first (in
// AF_INET, then as a dual-stack AF_INET6 socket with IPv4-mapped
// addresses), then a dump of the sockets on k's local port.
func (r *linuxResolver) findSocket(ctx context.Context, k Key) (diagMsg, error) {
	m, err := r.exact(ctx, k)
	if err != nil || m.Inode != 0 {
		return m, err
	}
	local := netip.AddrPortFrom(k.Local.Addr().Unmap(), k.Local.Port())
	remote := netip.AddrPortFrom(k.Remote.Addr().Unmap(), k.Remote.Port())
	families := []uint8{afInet6}
	if local.Addr().Is4() {
		families = []uint8{afInet, afInet6}
	}
	best := -1
	for _, fam := range families {
		err := r.query(ctx, fam, k.Proto, local, remote, true, func(d diagMsg) {
			if s := matchScore(d.Local, d.Remote, local, remote); s > best && d.Inode != 0 {
				m, best = d, s
			}
		})
		if err != nil && !errors.Is(err, syscall.ENOENT) {
			return diagMsg{}, err
		}
	}
	if best < 0 {
		return diagMsg{}, fmt.Errorf("%w: sock_diag knows no socket %v in this network namespace (closed already?)", ErrNotFound, k)
	}
	return m, nil
}

// exact asks sock_diag for k's exact socket id, in AF_INET, then as a
// dual-stack AF_INET6 socket with IPv4-mapped addresses; a zero diagMsg
// (no error) when there is none.
func (r *linuxResolver) exact(ctx context.Context, k Key) (diagMsg, error) {
	local := netip.AddrPortFrom(k.Local.Addr().Unmap(), k.Local.Port())
	remote := netip.AddrPortFrom(k.Remote.Addr().Unmap(), k.Remote.Port())
	families := []uint8{afInet6}
	if local.Addr().Is4() {
		families = []uint8{afInet, afInet6}
	}
	var m diagMsg
	found := false
	keep := func(d diagMsg) { m, found = d, true }
	for _, fam := range families {
		l, rem := local, remote
		if fam == afInet6 && local.Addr().Is4() {
			l = netip.AddrPortFrom(netip.AddrFrom16(local.Addr().As16()), local.Port())
			rem = netip.AddrPortFrom(netip.AddrFrom16(remote.Addr().As16()), remote.Port())
		}
		err := r.query(ctx, fam, k.Proto, l, rem, false, keep)
		if found {
			return m, nil
		}
		if err != nil && !errors.Is(err, syscall.ENOENT) {
			return diagMsg{}, err
		}
	}
	return diagMsg{}, nil
}

// query sends one sock_diag request and reads its reply, calling fn for
// each socket. It returns the kernel's error (ENOENT: no such socket).
func (r *linuxResolver) query(ctx context.Context, family, proto uint8, local, remote netip.AddrPort, dump bool, fn func(diagMsg)) error {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(DefaultTimeout)
	}
	wait := time.Until(deadline)
	if wait <= 0 {
		return fmt.Errorf("sock_diag: %w", context.DeadlineExceeded)
	}
	tv := unix.NsecToTimeval(max(int64(wait), int64(time.Millisecond)))
	if err := unix.SetsockoptTimeval(r.nl, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return fmt.Errorf("sock_diag: setting the receive timeout: %w", err)
	}
	r.seq++
	r.req = diagRequest(r.req[:0], r.seq, family, proto, local, remote, dump)
	if err := unix.Sendto(r.nl, r.req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("sock_diag: sending the request for %v: %w", local, err)
	}
	for {
		n, err := unix.Read(r.nl, r.buf)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return fmt.Errorf("sock_diag: no reply: %w", context.DeadlineExceeded)
		case err != nil:
			return fmt.Errorf("sock_diag: receiving: %w", err)
		}
		err = parseDiag(r.buf[:n], r.seq, dump, fn)
		if err == errDiagDone {
			return nil
		}
		if err != nil {
			return err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("sock_diag: %w", ctx.Err())
		}
	}
}

// scan is the state of one search for a socket inode's process.
type scan struct {
	inode  uint64
	budget int // processes left to read
	denied int // fd tables or links we were not allowed to read
	err    error
}

// findProcess finds the process holding socket inode: the fd the index
// remembers, else the fd tables of the recent owners, of the socket
// owner's processes (uid), then of the others, each newest PID first,
// within the context and MaxScan.
func (r *linuxResolver) findProcess(ctx context.Context, inode uint64, uid uint32, gone func() bool) (int32, error) {
	if ref, ok := r.s.indexed(inode); ok && r.fdIs(ref, inode) {
		return ref.pid, nil
	}
	r.s.scans.scans.Add(1)
	sc := scan{inode: inode, budget: r.s.cfg.MaxScan}
	r.recent = r.s.recentPIDs(r.recent)
	for _, pid := range r.recent {
		if r.readFDs(pid, &sc) {
			return pid, nil
		}
	}
	if gone() {
		r.s.scans.gone.Add(1)
		return 0, fmt.Errorf("%w: the socket closed before its process was found", ErrNotFound)
	}
	if err := r.listPIDs(); err != nil {
		return 0, err
	}
	r.others = r.others[:0]
	for pass := 0; pass < 2; pass++ {
		pids := r.pids
		if pass == 1 {
			pids = r.others
		}
		for i := range pids {
			// Newest first: a short-lived client (dig, curl) has a
			// high PID; long-lived ones are recent owners already.
			// (others is in that order already).
			pid := pids[len(pids)-1-i]
			if pass == 1 {
				pid = pids[i]
			}
			if err := ctx.Err(); err != nil {
				return 0, fmt.Errorf("looking for the process: %w after %d processes", err, r.s.cfg.MaxScan-sc.budget)
			}
			if sc.budget <= 0 {
				return 0, fmt.Errorf("no process found among the first %d (Config.MaxScan)", r.s.cfg.MaxScan)
			}
			if pass == 0 {
				if contains(r.recent, pid) {
					continue
				}
				var st unix.Stat_t
				if unix.Fstatat(r.procfd, strconv.Itoa(int(pid)), &st, 0) != nil {
					continue // exited
				}
				if st.Uid != uid {
					r.others = append(r.others, pid)
					continue
				}
			}
			if r.readFDs(pid, &sc) {
				return pid, nil
			}
		}
	}
	if sc.denied > 0 {
		err := fmt.Errorf("%w: %d fd tables or links of other processes were not readable (%w): "+
			"attributing them needs CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH (or root)", ErrNotFound, sc.denied, errPermission)
		r.s.warn(sc.err)
		return 0, err
	}
	return 0, fmt.Errorf("%w: no process holds the socket (it exited, or lives in another PID namespace)", ErrNotFound)
}

func contains(s []int32, v int32) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// listPIDs reads the numeric entries of /proc into r.pids.
func (r *linuxResolver) listPIDs() error {
	if _, err := unix.Seek(r.procfd, 0, 0); err != nil {
		return fmt.Errorf("rewinding /proc: %w", err)
	}
	r.pids = r.pids[:0]
	for {
		n, err := unix.Getdents(r.procfd, r.dents)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("listing /proc: %w", err)
		}
		if n <= 0 {
			return nil
		}
		err = parseDirents(r.dents[:n], func(name []byte) {
			if pid, ok := parseUint(name); ok && pid > 0 && pid <= 1<<31-1 {
				r.pids = append(r.pids, int32(pid))
			}
		})
		if err != nil {
			return fmt.Errorf("listing /proc: %w", err)
		}
	}
}

// readFDs reads /proc/PID/fd, indexes every socket found and reports
// whether one is sc.inode.
func (r *linuxResolver) readFDs(pid int32, sc *scan) bool {
	sc.budget--
	dfd, err := unix.Openat(r.procfd, strconv.Itoa(int(pid))+"/fd", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		if err == unix.EACCES || err == unix.EPERM {
			sc.denied++
			sc.err = fmt.Errorf("opening /proc/%d/fd: %w", pid, err)
		}
		return false
	}
	defer unix.Close(dfd)
	r.s.scans.procs.Add(1)
	r.found, r.refs = r.found[:0], r.refs[:0]
	hit := false
	for {
		n, err := unix.Getdents(dfd, r.dents)
		if err == unix.EINTR {
			continue
		}
		if err != nil || n <= 0 {
			break
		}
		_ = parseDirents(r.dents[:n], func(name []byte) {
			fd, ok := parseUint(name)
			if !ok {
				return // "." and ".."
			}
			ln, err := unix.Readlinkat(dfd, string(name), r.link)
			if err != nil {
				if err == unix.EACCES || err == unix.EPERM {
					sc.denied++
					sc.err = fmt.Errorf("reading /proc/%d/fd/%s: %w", pid, name, err)
				}
				return
			}
			if ino, ok := parseSocketLink(r.link[:ln]); ok {
				r.found = append(r.found, ino)
				r.refs = append(r.refs, fdRef{pid: pid, fd: int32(fd)})
				hit = hit || ino == sc.inode
			}
		})
	}
	r.s.index(r.found, r.refs)
	return hit
}

// fdIs reports whether /proc/PID/fd/FD still is socket inode.
func (r *linuxResolver) fdIs(ref fdRef, inode uint64) bool {
	n, err := unix.Readlinkat(r.procfd, strconv.Itoa(int(ref.pid))+"/fd/"+strconv.Itoa(int(ref.fd)), r.link)
	if err != nil {
		return false
	}
	ino, ok := parseSocketLink(r.link[:n])
	return ok && ino == inode
}

func (r *linuxResolver) comm(pid int32) string {
	fd, err := unix.Openat(r.procfd, strconv.Itoa(int(pid))+"/comm", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return ""
	}
	defer unix.Close(fd)
	n, err := unix.Read(fd, r.link[:64])
	if err != nil || n <= 0 {
		return ""
	}
	return trimComm(r.link[:n])
}

func (r *linuxResolver) exe(pid int32) string {
	n, err := unix.Readlinkat(r.procfd, strconv.Itoa(int(pid))+"/exe", r.link)
	if err != nil || n <= 0 {
		return ""
	}
	return string(r.link[:n])
}

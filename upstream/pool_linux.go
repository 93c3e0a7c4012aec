// SPDX-License-Identifier: MIT

package upstream

import (
	"fmt"
	"net"
	"os"
	"syscall"
	"time"
	"unsafe"

	"github.com/dnstun/dnstun/internal/fdref"
	"golang.org/x/sys/unix"
)

const (
	poolEvents = 128 // readiness events taken per wait
	poolBatch  = 64  // datagrams per recvmmsg
)

// poolSys is the Linux poller: an epoll instance whose own descriptor waits
// in Go's netpoller (an epoll fd is itself pollable), so the receiving
// goroutine parks like any reader of a net.Conn and pins no OS thread, and
// Close wakes it by closing the file. Inner sockets are level-triggered:
// what one Recv leaves unread is reported again to the next.
type poolSys struct {
	ep   *os.File
	raw  syscall.RawConn
	epfd int
	// ref keeps epfd open while Send registers a socket on it: without it
	// Close could close the number and a new file take it.
	ref fdref.Ref

	// Recv's scratch, owned by the one goroutine in Recv.
	wait   func(fd uintptr) bool // p.sys.poll bound once, so Recv does not allocate a closure
	events []unix.EpollEvent
	nev    int
	everr  syscall.Errno
	hdrs   []unix.Mmsghdr
	iovs   []unix.Iovec
}

func (ps *poolSys) init() error {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return fmt.Errorf("upstream pool: epoll_create1: %w", err)
	}
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		return fmt.Errorf("upstream pool: make the epoll descriptor non-blocking: %w", err)
	}
	// os.NewFile registers a non-blocking descriptor with the netpoller.
	ps.ep = os.NewFile(uintptr(epfd), "upstream-pool-epoll")
	if err := ps.ep.SetReadDeadline(time.Time{}); err != nil {
		ps.ep.Close()
		return fmt.Errorf("upstream pool: the Go netpoller refused the epoll descriptor: %w", err)
	}
	ps.raw, err = ps.ep.SyscallConn()
	if err != nil {
		ps.ep.Close()
		return fmt.Errorf("upstream pool: epoll descriptor: %w", err)
	}
	ps.epfd = epfd
	ps.wait = ps.poll
	ps.events = make([]unix.EpollEvent, poolEvents)
	ps.hdrs = make([]unix.Mmsghdr, poolBatch)
	ps.iovs = make([]unix.Iovec, poolBatch)
	return nil
}

// open makes a non-blocking UDP socket connected to d. connect binds it to
// a random ephemeral port (udp_lib_get_port picks one at random), so no
// explicit bind is needed, and makes the kernel drop datagrams from any
// other source.
//
// A socket serves a bounded number of queries, so a busy pool opens
// thousands a second: socket, connect, epoll_ctl and close are raw calls
// too (none of them can block on a UDP socket), for the same reason as the
// sends (see below). Through the scheduler, each of them woke the
// runtime's sysmon thread whenever dnstun had been idle for a moment, at
// every socket rotation.
func (ps *poolSys) open(d *Dest, mark uint32) (int, error) {
	r, _, e := unix.RawSyscall(unix.SYS_SOCKET, uintptr(d.sys.family), unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if e != 0 {
		return -1, fmt.Errorf("upstream %v: open UDP socket: %w%s", d.addr, e, fdLimitHint(e))
	}
	fd := int(r)
	if mark != 0 {
		v := int32(mark)
		_, _, e := unix.RawSyscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_MARK, uintptr(unsafe.Pointer(&v)), 4, 0)
		if e != 0 {
			ps.closeFD(fd)
			return -1, fmt.Errorf("upstream %v: setsockopt SO_MARK=%#x: %w (needs CAP_NET_ADMIN)", d.addr, mark, e)
		}
	}
	if e := connectRaw(fd, &d.sys); e != 0 {
		ps.closeFD(fd)
		return -1, fmt.Errorf("upstream %v: connect UDP socket: %w", d.addr, e)
	}
	return fd, nil
}

// connectRaw connects fd to the destination ds with a raw call, building
// the kernel's sockaddr on the stack.
func connectRaw(fd int, ds *poolDestSys) unix.Errno {
	var e unix.Errno
	switch sa := ds.sa.(type) {
	case *unix.SockaddrInet4:
		raw := unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: sa.Addr}
		raw.Port = htons(sa.Port)
		_, _, e = unix.RawSyscall(unix.SYS_CONNECT, uintptr(fd), uintptr(unsafe.Pointer(&raw)), unix.SizeofSockaddrInet4)
	case *unix.SockaddrInet6:
		raw := unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: sa.Addr, Scope_id: sa.ZoneId}
		raw.Port = htons(sa.Port)
		_, _, e = unix.RawSyscall(unix.SYS_CONNECT, uintptr(fd), uintptr(unsafe.Pointer(&raw)), unix.SizeofSockaddrInet6)
	default:
		return unix.EAFNOSUPPORT
	}
	return e
}

// htons is port in network byte order, as sockaddr_in's sin_port holds it
// in memory.
func htons(port int) uint16 {
	var b [2]byte
	b[0], b[1] = byte(port>>8), byte(port)
	return *(*uint16)(unsafe.Pointer(&b[0]))
}

// watch registers fd with the poller; the event carries the socket's id.
func (ps *poolSys) watch(fd int, _ *poolSlot, id uint32) error {
	if !ps.ref.Pin() {
		return net.ErrClosed
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(id)}
	_, _, e := unix.RawSyscall6(unix.SYS_EPOLL_CTL, uintptr(ps.epfd), unix.EPOLL_CTL_ADD, uintptr(fd), uintptr(unsafe.Pointer(&ev)), 0, 0)
	if ps.ref.Unpin() {
		ps.ep.Close()
	}
	if e != 0 {
		return fmt.Errorf("upstream pool: epoll_ctl add: %w", e)
	}
	return nil
}

// closeFD closes a pool socket (a raw call: closing a UDP socket does not
// block).
func (ps *poolSys) closeFD(fd int) { unix.RawSyscall(unix.SYS_CLOSE, uintptr(fd), 0, 0) }

// shut closes the poller, which wakes a Recv parked on it. A Send still
// registering a socket closes it instead when it is done.
func (ps *poolSys) shut() error {
	if _, now := ps.ref.Shut(); now {
		return ps.ep.Close()
	}
	return nil
}

// The pool's system calls on the data path (the send, recvmmsg and the
// ready-list check) are raw (syscall.RawSyscall): none can block, as every
// socket is non-blocking, recvmmsg has MSG_DONTWAIT and the epoll check a
// zero timeout, so the scheduler need not hear of them. Through
// syscall.Syscall each would cost the scheduler's entersyscall and
// exitsyscall, and the first after the process had gone idle would wake
// the runtime's sysmon thread from its deep sleep, to poll every 20 µs
// until the process is idle again: a futex call, nanosleeps and context
// switches per query at low rates, and timer sleeps that are VM exits on a
// VM (bench/NOTES.md, where the TUN's own reads and writes are raw too).

// write sends msg on the non-blocking socket fd, with a raw call.
func (ps *poolSys) write(fd int, msg []byte) error {
	var p unsafe.Pointer
	if len(msg) > 0 {
		p = unsafe.Pointer(&msg[0])
	}
	_, _, e := unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(p), uintptr(len(msg)))
	if e != 0 {
		return e
	}
	return nil
}

// isPoolAsyncError reports errors the kernel may have queued on a
// connected UDP socket from an ICMP message about an earlier datagram
// (udp_err: the "fatal" unreachables), which it hands to the next send.
func isPoolAsyncError(err error) bool {
	switch err {
	case unix.ECONNREFUSED, unix.EHOSTUNREACH, unix.ENETUNREACH, unix.EHOSTDOWN, unix.ENOPROTOOPT:
		return true
	}
	return false
}

// poll runs inside the netpoller's RawConn.Read: it reports true when
// there is something for Recv to do, false to park until the epoll
// descriptor becomes readable. It parks only after finding the ready list
// empty, so a readiness edge after that check is never missed.
func (ps *poolSys) poll(fd uintptr) bool {
	// A raw call: with a zero timeout it cannot block.
	r, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, fd, uintptr(unsafe.Pointer(&ps.events[0])), uintptr(len(ps.events)), 0, 0, 0)
	ps.nev, ps.everr = int(r), e
	if e != 0 {
		ps.nev = 0
		return true
	}
	return r > 0
}

// Recv blocks until at least one message or per-socket error has arrived
// on any socket and fills up to len(ms) entries, returning how many. It
// reads into ms[i].Buf[ms[i].Off:], which must not be empty. After Close
// it returns net.ErrClosed.
//
// One goroutine may be in Recv at a time (a second gets an error); it
// parks in Go's netpoller, like a reader of a net.Conn, and holds no OS
// thread while it waits. An answer larger than its buffer is dropped and
// counted (PoolStats.Truncated); to drop it Recv may swap whole entries of
// ms among themselves, so read each message through its own entry. Recv
// does not allocate.
func (p *Pool) Recv(ms []Msg) (int, error) {
	if err := checkMsgs(ms); err != nil {
		return 0, err
	}
	if !p.inRecv.CompareAndSwap(false, true) {
		return 0, errRecvTwice
	}
	defer p.inRecv.Store(false)
	ps := &p.sys
	for {
		if p.closed.Load() {
			return 0, net.ErrClosed
		}
		if err := ps.raw.Read(ps.wait); err != nil {
			if p.closed.Load() {
				return 0, net.ErrClosed
			}
			return 0, fmt.Errorf("upstream pool: wait for answers: %w", err)
		}
		if ps.everr != 0 && ps.everr != unix.EINTR {
			return 0, fmt.Errorf("upstream pool: epoll_wait: %w", ps.everr)
		}
		got := 0
		for i := 0; i < ps.nev && got < len(ms); i++ {
			got += p.recvOn(uint32(ps.events[i].Fd), ms[got:])
		}
		if got > 0 {
			return got, nil
		}
	}
}

// read drains socket s (id) into ms with recvmmsg until the socket is empty
// or ms is full. s is pinned.
func (ps *poolSys) read(p *Pool, s *poolSlot, id uint32, ms []Msg) int {
	got := 0
	// Each round fills an entry, stops, or drops oversized datagrams from
	// the socket's queue: len(ms) and the queue bound it.
	for got < len(ms) {
		k := min(len(ms)-got, len(ps.hdrs))
		for j := range k {
			m := &ms[got+j]
			b := m.Buf[m.Off:]
			ps.iovs[j].Base = &b[0]
			ps.iovs[j].SetLen(len(b))
			h := &ps.hdrs[j]
			h.Hdr.Iov = &ps.iovs[j]
			h.Hdr.SetIovlen(1)
			h.Hdr.Flags = 0
			h.Len = 0
		}
		// hdrs and iovs live in the heap and are referenced by p, and the
		// buffers by ms, so everything the kernel writes through stays put
		// and alive for the call.
		// MSG_DONTWAIT: it cannot block, so a raw call.
		r, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, uintptr(s.fd), uintptr(unsafe.Pointer(&ps.hdrs[0])), uintptr(k), unix.MSG_DONTWAIT, 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e == unix.EAGAIN {
			break
		}
		if e != 0 {
			m := &ms[got]
			m.N, m.Sock, m.Dest, m.Err = 0, id, s.dest, e
			got++
			continue
		}
		w := got
		for j := range int(r) {
			h := &ps.hdrs[j]
			if h.Hdr.Flags&unix.MSG_TRUNC != 0 {
				p.st.truncated.Add(1)
				continue
			}
			if got+j != w {
				// Move the message down over the dropped one; the dropped
				// entry (with its buffer) goes where the message was.
				ms[w], ms[got+j] = ms[got+j], ms[w]
			}
			m := &ms[w]
			m.N, m.Sock, m.Dest, m.Err = int(h.Len), id, s.dest, nil
			w++
		}
		got = w
		if int(r) < k {
			break // the socket is empty (or has an error for the next call)
		}
	}
	for j := range ps.iovs {
		ps.iovs[j].Base = nil // keep no caller buffer alive
	}
	return got
}

// poolFileLimit returns the soft open-file limit (which the Go runtime
// raised to the hard one at start), if there is one.
func poolFileLimit() (uint64, bool) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil || lim.Cur == unix.RLIM_INFINITY {
		return 0, false
	}
	return lim.Cur, true
}

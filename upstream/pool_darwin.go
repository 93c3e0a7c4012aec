// SPDX-License-Identifier: MIT

package upstream

import (
	"fmt"
	"net"
	"syscall"
	"unsafe"

	"github.com/dnstun/dnstun/internal/fdref"
	"golang.org/x/sys/unix"
)

const poolEvents = 128 // readiness events taken per wait

// poolWakeIdent names the EVFILT_USER event Close triggers to wake Recv.
const poolWakeIdent = 0

// poolSys is the darwin poller: a kqueue that Recv blocks in (kevent with
// no timeout, holding an OS thread while it waits, as any blocking syscall
// does); Close wakes it with a user event. Sockets are level-triggered:
// what one Recv leaves unread is reported again to the next. Each read
// event carries a pointer to its socket's slot (Udata), a real Go pointer
// into the pool's table, which the pool keeps alive.
type poolSys struct {
	kq int
	// ref keeps kq open while Send registers a socket or Recv waits on it:
	// the last of them closes it once Close has run.
	ref fdref.Ref

	// Recv's scratch, owned by the one goroutine in Recv.
	events []unix.Kevent_t
	rv     [2][]byte
	spare  [1]byte // a datagram that reaches it did not fit its buffer
}

func (ps *poolSys) init() error {
	kq, err := unix.Kqueue()
	if err != nil {
		return fmt.Errorf("upstream pool: kqueue: %w", err)
	}
	unix.CloseOnExec(kq)
	var ch [1]unix.Kevent_t
	ch[0] = unix.Kevent_t{Ident: poolWakeIdent, Filter: unix.EVFILT_USER, Flags: unix.EV_ADD | unix.EV_CLEAR}
	if _, err := unix.Kevent(kq, ch[:], nil, nil); err != nil {
		unix.Close(kq)
		return fmt.Errorf("upstream pool: kevent add EVFILT_USER: %w", err)
	}
	ps.kq = kq
	ps.events = make([]unix.Kevent_t, poolEvents)
	return nil
}

// open makes a non-blocking UDP socket connected to d. connect binds it to
// a random ephemeral port (net.inet.ip.portrange.randomized), so no
// explicit bind is needed, and makes the kernel drop datagrams from any
// other source. The socket is left unbound to an interface and unmarked:
// see control_darwin.go.
func (ps *poolSys) open(d *Dest, _ uint32) (int, error) {
	// darwin has no SOCK_CLOEXEC: hold ForkLock so that no fork in
	// between inherits the descriptor, as package net does.
	syscall.ForkLock.RLock()
	fd, err := unix.Socket(d.sys.family, unix.SOCK_DGRAM, unix.IPPROTO_UDP)
	if err == nil {
		unix.CloseOnExec(fd)
	}
	syscall.ForkLock.RUnlock()
	if err != nil {
		return -1, fmt.Errorf("upstream %v: open UDP socket: %w%s", d.addr, err, fdLimitHint(err))
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("upstream %v: make UDP socket non-blocking: %w", d.addr, err)
	}
	if err := unix.Connect(fd, d.sys.sa); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("upstream %v: connect UDP socket: %w", d.addr, err)
	}
	return fd, nil
}

// watch registers fd with the kqueue; the event carries its slot.
func (ps *poolSys) watch(fd int, s *poolSlot, _ uint32) error {
	if !ps.ref.Pin() {
		return net.ErrClosed
	}
	var ch [1]unix.Kevent_t
	unix.SetKevent(&ch[0], fd, unix.EVFILT_READ, unix.EV_ADD)
	ch[0].Udata = (*byte)(unsafe.Pointer(s))
	_, err := unix.Kevent(ps.kq, ch[:], nil, nil)
	if ps.ref.Unpin() {
		unix.Close(ps.kq)
	}
	if err != nil {
		return fmt.Errorf("upstream pool: kevent add EVFILT_READ: %w", err)
	}
	return nil
}

func (ps *poolSys) closeFD(fd int) { unix.Close(fd) }

// shut wakes a Recv blocked in kevent and closes the kqueue, or leaves the
// close to the last Send or Recv still using it.
func (ps *poolSys) shut() error {
	var err error
	if ps.ref.Pin() {
		var ch [1]unix.Kevent_t
		ch[0] = unix.Kevent_t{Ident: poolWakeIdent, Filter: unix.EVFILT_USER, Fflags: unix.NOTE_TRIGGER}
		if _, e := unix.Kevent(ps.kq, ch[:], nil, nil); e != nil {
			err = fmt.Errorf("upstream pool: wake the receiver (kevent NOTE_TRIGGER): %w", e)
		}
		if ps.ref.Unpin() {
			unix.Close(ps.kq)
		}
	}
	if _, now := ps.ref.Shut(); now {
		unix.Close(ps.kq)
	}
	return err
}

// isPoolAsyncError reports errors the kernel may have queued on a
// connected UDP socket from an ICMP message about an earlier datagram,
// which it hands to the next send.
func isPoolAsyncError(err error) bool {
	switch err {
	case unix.ECONNREFUSED, unix.EHOSTUNREACH, unix.ENETUNREACH, unix.EHOSTDOWN:
		return true
	}
	return false
}

// Recv blocks until at least one message or per-socket error has arrived
// on any socket and fills up to len(ms) entries, returning how many. It
// reads into ms[i].Buf[ms[i].Off:], which must not be empty. After Close
// it returns net.ErrClosed.
//
// One goroutine may be in Recv at a time (a second gets an error); it
// waits in kevent and holds an OS thread while it waits. An answer larger
// than its buffer is dropped and counted (PoolStats.Truncated). Recv does
// not allocate.
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
		if p.closed.Load() || !ps.ref.Pin() {
			return 0, net.ErrClosed
		}
		n, err := unix.Kevent(ps.kq, nil, ps.events, nil)
		if ps.ref.Unpin() {
			unix.Close(ps.kq)
		}
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			if p.closed.Load() {
				return 0, net.ErrClosed
			}
			return 0, fmt.Errorf("upstream pool: kevent wait: %w", err)
		}
		got := 0
		for i := 0; i < n && got < len(ms); i++ {
			ev := &ps.events[i]
			if ev.Filter != unix.EVFILT_READ || ev.Udata == nil {
				continue // the wake-up: closed is checked above
			}
			got += p.recvSlot((*poolSlot)(unsafe.Pointer(ev.Udata)), int(ev.Ident), ms[got:])
		}
		if got > 0 {
			return got, nil
		}
	}
}

// recvSlot reads what is waiting on slot s into ms, if s still holds the
// socket fd the event was for. A stale event whose number was reused by
// the slot's next socket only costs a read that finds nothing: whatever is
// read from a pinned slot belongs to its current socket.
func (p *Pool) recvSlot(s *poolSlot, fd int, ms []Msg) int {
	if !s.ref.Pin() {
		return 0
	}
	n := 0
	if id := s.id.Load(); id != 0 && s.fd == fd {
		n = p.sys.read(p, s, id, ms)
	}
	if s.ref.Unpin() {
		p.finish(s)
	}
	return n
}

// read drains socket s (id) into ms until it is empty or ms is full. A
// datagram is read into its buffer plus one spare byte: if the spare byte
// is reached, it did not fit. s is pinned.
func (ps *poolSys) read(p *Pool, s *poolSlot, id uint32, ms []Msg) int {
	got := 0
	// Each round fills an entry, stops, or drops an oversized datagram
	// from the socket's queue: len(ms) and the queue bound it.
	for got < len(ms) {
		m := &ms[got]
		b := m.Buf[m.Off:]
		ps.rv[0], ps.rv[1] = b, ps.spare[:]
		n, err := unix.Readv(s.fd, ps.rv[:])
		ps.rv[0] = nil // keep no caller buffer alive
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			break
		}
		if err != nil {
			m.N, m.Sock, m.Dest, m.Err = 0, id, s.dest, err
			got++
			continue
		}
		if n > len(b) {
			p.st.truncated.Add(1)
			continue
		}
		m.N, m.Sock, m.Dest, m.Err = n, id, s.dest, nil
		got++
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

func (ps *poolSys) write(fd int, msg []byte) error {
	_, err := unix.Write(fd, msg)
	return err
}

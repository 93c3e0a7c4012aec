// SPDX-License-Identifier: MIT

// Command ceiling is the benchmark's upper bound for answering DNS on a
// TUN: a minimal program of its own, sharing no code with dnstun (the
// standard library and x/sys only). It opens a TUN (IFF_TUN | IFF_NO_PI, no
// offloads), gives it its address and a route to one virtual resolver
// address with ip(8), and turns every IPv4 UDP query to port 53 it reads
// into an NXDOMAIN answer in place, written straight back. No filter, no
// forwarding, no counters: whatever dnstun costs above this program is the
// price of its decisions.
//
// Its reads and writes are raw system calls (syscall.RawSyscall) on the
// non-blocking fd; a read that finds nothing waits in Go's netpoller: the
// way dnstun moves its packets (tun/thin_linux.go), written separately, so
// that the ceiling's I/O costs what dnstun's does and the difference is
// dnstun's work per query.
//
//	ceiling [-tun ceil0] [-resolver 198.19.53.53] [-tun-addr 198.19.53.1]
//
// It needs root (or CAP_NET_ADMIN) and exits on SIGINT or SIGTERM.
package main

import (
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

func main() {
	name := flag.String("tun", "ceil0", "TUN device name")
	resolver := flag.String("resolver", "198.19.53.53", "virtual resolver address (IPv4) routed into the TUN")
	tunAddr := flag.String("tun-addr", "198.19.53.1", "the TUN's own address (IPv4)")
	flag.Parse()
	res, err1 := netip.ParseAddr(*resolver)
	own, err2 := netip.ParseAddr(*tunAddr)
	if err1 != nil || err2 != nil || !res.Is4() || !own.Is4() {
		fmt.Fprintln(os.Stderr, "ceiling: -resolver and -tun-addr take IPv4 addresses")
		os.Exit(2)
	}
	t, err := open(*name, own, res)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ceiling:", err)
		os.Exit(1)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		t.f.Close() // wakes the read; the kernel deletes the TUN with its last fd
	}()
	total, err := t.loop()
	fmt.Fprintf(os.Stderr, "ceiling: answered %d queries\n", total)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ceiling:", err)
		os.Exit(1)
	}
}

// tunDev is the TUN: its file (for the netpoller's waits) and fd (for the
// raw reads and writes), and the read's scratch.
type tunDev struct {
	f      *os.File
	rc     syscall.RawConn
	fd     uintptr
	buf    []byte
	n      int
	err    syscall.Errno
	readFn func(fd uintptr) bool
}

// open creates the TUN name and configures it with ip(8): own as its
// address, a route to res through it, up.
func open(name string, own, res netip.Addr) (*tunDev, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err == nil {
		ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
		err = unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr)
	}
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("TUNSETIFF %s: %w", name, err)
	}
	name = ifr.Name()
	for _, args := range [][]string{
		{"addr", "add", netip.PrefixFrom(own, 32).String(), "dev", name},
		{"link", "set", "dev", name, "mtu", "1500", "up"},
		{"route", "add", netip.PrefixFrom(res, 32).String(), "dev", name},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("ip %v: %w: %s", args, err, out)
		}
	}
	t := &tunDev{f: os.NewFile(uintptr(fd), "/dev/net/tun"), fd: uintptr(fd), buf: make([]byte, 65535)}
	if t.rc, err = t.f.SyscallConn(); err != nil {
		return nil, err
	}
	t.readFn = t.readOnce
	return t, nil
}

// readOnce is the netpoller's read attempt: false when the TUN has nothing.
func (t *tunDev) readOnce(fd uintptr) bool {
	for {
		n, _, e := unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&t.buf[0])), uintptr(len(t.buf)))
		if e == unix.EINTR {
			continue
		}
		if e == unix.EAGAIN {
			return false
		}
		t.n, t.err = int(n), e
		return true
	}
}

// loop answers packets until the file is closed, or a read fails (the
// TUN is gone: EBADFD), and returns how many. It allocates nothing.
func (t *tunDev) loop() (int64, error) {
	var total int64
	for {
		if t.rc.Read(t.readFn) != nil {
			return total, nil // closed
		}
		if t.err != 0 {
			return total, fmt.Errorf("read %s: %w", t.f.Name(), t.err)
		}
		if m := answer(t.buf[:t.n]); m > 0 {
			// After Close this fails with EBADF; nothing else opens files,
			// so the number is not reused before the process exits.
			unix.RawSyscall(unix.SYS_WRITE, t.fd, uintptr(unsafe.Pointer(&t.buf[0])), uintptr(m))
			total++
		}
	}
}

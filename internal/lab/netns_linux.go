// SPDX-License-Identifier: MIT

package lab

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// NS is a named network namespace (ip netns add).
type NS struct{ Name string }

// Suffix returns a short random string for unique names.
func Suffix() string {
	b := make([]byte, 3)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// newNS creates the namespace name with its loopback up.
func newNS(name string) (*NS, error) {
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ip netns add %s: %w: %s", name, err, strings.TrimSpace(string(out)))
	}
	n := &NS{Name: name}
	if err := n.IP("link", "set", "lo", "up"); err != nil {
		n.delete()
		return nil, err
	}
	return n, nil
}

// delete removes the namespace (interfaces inside it go with it) and the
// /etc/netns/NAME folder a test may have written for `ip netns exec`.
// Processes still running inside are not killed: stop them first.
func (n *NS) delete() error {
	out, err := exec.Command("ip", "netns", "del", n.Name).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip netns del %s: %w: %s", n.Name, err, strings.TrimSpace(string(out)))
	}
	os.RemoveAll("/etc/netns/" + n.Name)
	return nil
}

// IP runs `ip -n NAME args...`.
func (n *NS) IP(args ...string) error {
	full := append([]string{"-n", n.Name}, args...)
	if out, err := exec.Command("ip", full...).CombinedOutput(); err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(full, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Command returns a command that runs inside the namespace (`ip netns exec
// NAME name args...`, which also mounts /etc/netns/NAME/resolv.conf over
// /etc/resolv.conf for it). For a long-running process use Lab.Start.
func (n *NS) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// veth connects a and b with a veth pair named aIf (in a) and bIf (in b),
// both up. The ends are created directly inside the namespaces, so the
// names never clash with the machine's own interfaces.
func veth(a *NS, aIf string, b *NS, bIf string) error {
	out, err := exec.Command("ip", "link", "add", aIf, "netns", a.Name, "type", "veth", "peer", "name", bIf, "netns", b.Name).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip link add %s (veth to %s): %w: %s", aIf, bIf, err, strings.TrimSpace(string(out)))
	}
	if err := a.IP("link", "set", aIf, "up"); err != nil {
		return err
	}
	return b.IP("link", "set", bIf, "up")
}

// Do runs fn on an OS thread switched into the namespace, then switches
// back. Sockets opened by fn stay in the namespace for their whole life and
// may be used from any goroutine afterwards.
func (n *NS) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open own netns: %w", err)
			return
		}
		defer orig.Close()
		target, err := os.Open("/run/netns/" + n.Name)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open netns %s: %w", n.Name, err)
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("setns %s: %w", n.Name, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			// Leave the thread locked: it dies with this goroutine
			// instead of serving others from the wrong namespace.
			errc <- fmt.Errorf("setns back from %s: %w", n.Name, err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// Dial opens a connection inside the namespace, as net.Dial does; the
// signature fits bench/loadgen's Config.Dial and net.Resolver's Dial.
func (n *NS) Dial(network, address string) (net.Conn, error) {
	var c net.Conn
	err := n.Do(func() (err error) {
		c, err = net.Dial(network, address)
		return err
	})
	return c, err
}

// Listen opens a listening socket inside the namespace ("tcp", "tcp4",
// "tcp6", "unix"), as net.Listen does.
func (n *NS) Listen(network, address string) (net.Listener, error) {
	var l net.Listener
	err := n.Do(func() (err error) {
		l, err = net.Listen(network, address)
		return err
	})
	return l, err
}

// ListenPacket opens a packet socket inside the namespace ("udp", "udp4",
// "udp6"), as net.ListenPacket does.
func (n *NS) ListenPacket(network, address string) (net.PacketConn, error) {
	var pc net.PacketConn
	err := n.Do(func() (err error) {
		pc, err = net.ListenPacket(network, address)
		return err
	})
	return pc, err
}

// waitNoTentative waits up to 5 s until the namespace has no tentative
// IPv6 address (duplicate address detection finished, RFC 4862 §5.4).
func (n *NS) waitNoTentative() error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		out, err := exec.Command("ip", "-n", n.Name, "-6", "addr", "show", "tentative").CombinedOutput()
		if err != nil {
			return fmt.Errorf("ip -6 addr show tentative in %s: %w: %s", n.Name, err, out)
		}
		if len(bytes.TrimSpace(out)) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("IPv6 addresses in %s still tentative after 5 s: %s", n.Name, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// SPDX-License-Identifier: MIT

//go:build linux

package attrib

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dnstun/dnstun/internal/privtest"
	"golang.org/x/sys/unix"
)

// envChild makes the test binary a helper process (see TestMain): "udp"
// opens a UDP socket and prints its port; "resolve HOST:PORT" resolves a
// UDP socket and prints the owner or the error.
const envChild = "ATTRIB_TEST_CHILD"

func TestMain(m *testing.M) {
	switch mode := os.Getenv(envChild); {
	case mode == "udp":
		childUDP()
	case strings.HasPrefix(mode, "resolve "):
		childResolve(strings.TrimPrefix(mode, "resolve "))
	default:
		os.Exit(m.Run())
	}
}

func childUDP() {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println(c.LocalAddr().(*net.UDPAddr).Port)
	io.Copy(io.Discard, os.Stdin) // until the parent closes stdin
	os.Exit(0)
}

func childResolve(addr string) {
	tab, err := New(Config{Timeout: 2 * time.Second})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(0)
	}
	k := Key{Proto: ProtoUDP, Local: netip.MustParseAddrPort(addr), Remote: netip.MustParseAddrPort("127.0.0.1:53")}
	o, err := tab.Resolve(context.Background(), k)
	switch {
	case err != nil && errors.Is(err, fs.ErrPermission):
		fmt.Println("denied", err)
	case err != nil:
		fmt.Println("error", err)
	default:
		fmt.Println("pid", o.PID, o.Name)
	}
	os.Exit(0)
}

func newTestTable(t testing.TB, cfg Config) *Table {
	t.Helper()
	tab, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tab.Close() })
	return tab
}

func udpKey(t testing.TB, c *net.UDPConn, remote netip.AddrPort) Key {
	t.Helper()
	return Key{Proto: ProtoUDP, Local: c.LocalAddr().(*net.UDPAddr).AddrPort(), Remote: remote}
}

func checkSelf(t *testing.T, o *Owner, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	exe, _ := os.Executable()
	comm, _ := os.ReadFile("/proc/self/comm")
	if o.PID != int32(os.Getpid()) || o.UID != uint32(os.Getuid()) || o.Name != strings.TrimSpace(string(comm)) || o.Exe != exe {
		t.Errorf("owner %+v, want pid %d uid %d name %q exe %q", o, os.Getpid(), os.Getuid(), strings.TrimSpace(string(comm)), exe)
	}
}

// TestResolveOwnSockets looks up sockets of this process: UDP connected
// and not, TCP client, IPv4 and IPv6, and an IPv4 query from a
// dual-stack IPv6 socket.
func TestResolveOwnSockets(t *testing.T) {
	tab := newTestTable(t, Config{Timeout: 2 * time.Second})
	ctx := context.Background()
	dns4 := netip.MustParseAddrPort("127.0.0.1:53")
	dns6 := netip.MustParseAddrPort("[::1]:53")

	t.Run("udp4-unconnected", func(t *testing.T) {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		o, err := tab.Resolve(ctx, udpKey(t, c, dns4))
		checkSelf(t, o, err)
	})
	t.Run("udp4-connected", func(t *testing.T) {
		c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(dns4))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		o, err := tab.Resolve(ctx, udpKey(t, c, dns4))
		checkSelf(t, o, err)
	})
	t.Run("udp4-wildcard-bound", func(t *testing.T) {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		port := uint16(c.LocalAddr().(*net.UDPAddr).Port)
		k := Key{Proto: ProtoUDP, Local: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port), Remote: dns4}
		o, err := tab.Resolve(ctx, k)
		checkSelf(t, o, err)
	})
	t.Run("udp6", func(t *testing.T) {
		c, err := net.DialUDP("udp6", nil, net.UDPAddrFromAddrPort(dns6))
		if err != nil {
			t.Skip("no IPv6 loopback:", err)
		}
		defer c.Close()
		o, err := tab.Resolve(ctx, udpKey(t, c, dns6))
		checkSelf(t, o, err)
	})
	t.Run("udp-dual-stack-v4", func(t *testing.T) {
		fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Skip("no IPv6:", err)
		}
		defer unix.Close(fd)
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0); err != nil {
			t.Fatal(err)
		}
		if err := unix.Connect(fd, &unix.SockaddrInet6{Port: 53, Addr: netip.MustParseAddr("::ffff:127.0.0.1").As16()}); err != nil {
			t.Fatal(err)
		}
		sa, err := unix.Getsockname(fd)
		if err != nil {
			t.Fatal(err)
		}
		port := uint16(sa.(*unix.SockaddrInet6).Port)
		// The packet the engine sees is IPv4.
		k := Key{Proto: ProtoUDP, Local: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port), Remote: dns4}
		o, err := tab.Resolve(ctx, k)
		checkSelf(t, o, err)
	})
	for _, network := range []string{"tcp4", "tcp6"} {
		t.Run(network, func(t *testing.T) {
			host := "127.0.0.1:0"
			if network == "tcp6" {
				host = "[::1]:0"
			}
			ln, err := net.Listen(network, host)
			if err != nil {
				t.Skip(err)
			}
			defer ln.Close()
			c, err := net.Dial(network, ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			k := Key{Proto: ProtoTCP, Local: c.LocalAddr().(*net.TCPAddr).AddrPort(), Remote: c.RemoteAddr().(*net.TCPAddr).AddrPort()}
			o, err := tab.Resolve(ctx, k)
			checkSelf(t, o, err)
		})
	}
	if s := tab.Stats(); s.Found == 0 || s.Failures != 0 {
		t.Errorf("stats %+v", s)
	}
}

// TestResolveNotFound: a port no socket holds is ErrNotFound, quickly.
func TestResolveNotFound(t *testing.T) {
	tab := newTestTable(t, Config{Timeout: time.Second})
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	k := udpKey(t, c, netip.MustParseAddrPort("127.0.0.1:53"))
	c.Close()
	start := time.Now()
	o, err := tab.Resolve(context.Background(), k)
	if !errors.Is(err, ErrNotFound) || o != nil {
		t.Fatalf("closed socket: %v, %v; want ErrNotFound", o, err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("took %v", d)
	}
	t.Log(err)
	// Cached as negative: a second Resolve does not look up again.
	if _, err := tab.Resolve(context.Background(), k); !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
	if s := tab.Stats(); s.Lookups != 1 || s.NotFound != 1 {
		t.Errorf("stats %+v, want one lookup, not found", s)
	}
}

// TestPortReuse documents what a cached owner does when its socket closes
// and another socket takes the port: Lookup keeps answering the old owner
// until the refresh (a hit after TTL/2) or the expiry (TTL); Run's refresh
// finds the new owner.
func TestPortReuse(t *testing.T) {
	const ttl = 2 * time.Second
	tab := newTestTable(t, Config{TTL: ttl, Timeout: time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go tab.Run(ctx)

	// The child holds a port; we learn it is the owner.
	child, port := startChild(t, "attrib-child")
	k := Key{Proto: ProtoUDP, Local: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port), Remote: netip.MustParseAddrPort("127.0.0.1:53")}
	o, err := tab.Resolve(ctx, k)
	if err != nil || o.PID != int32(child.Process.Pid) {
		t.Fatalf("child's socket: %v, %v", o, err)
	}
	// It exits; we bind its port.
	stopChild(t, child)
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(k.Local))
	if err != nil {
		t.Skip("cannot rebind the child's port:", err)
	}
	defer c.Close()
	if o := tab.Lookup(k); o == nil || o.PID != int32(child.Process.Pid) {
		t.Fatalf("within TTL/2 the cache still answers the old owner, got %v", o)
	}
	time.Sleep(ttl/2 + 20*time.Millisecond)
	tab.Lookup(k) // past TTL/2: queues a refresh
	// The refresh's lookup may take a while on a loaded machine (a /proc
	// scan under the race detector); if the entry expires first, the next
	// query's miss asks again, as the engine's does.
	deadline := time.Now().Add(5 * ttl)
	for time.Now().Before(deadline) {
		o := tab.Lookup(k)
		if o != nil && o.PID == int32(os.Getpid()) {
			return
		}
		if o == nil {
			tab.Request(k)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("the reused port was not attributed to its new owner within %v: %v", 5*ttl, tab.Lookup(k))
}

// startChild runs a renamed copy of the test binary that holds a UDP
// socket and returns it with the socket's port.
func startChild(t testing.TB, name string) (*exec.Cmd, uint16) {
	t.Helper()
	exe := copyTestBinary(t, name)
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), envChild+"=udp")
	return runChild(t, cmd)
}

func runChild(t testing.TB, cmd *exec.Cmd) (*exec.Cmd, uint16) {
	t.Helper()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("child: %v", err)
	}
	port, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("child said %q", line)
	}
	cmd.Stdin = nil
	childStdin[cmd] = stdin
	return cmd, uint16(port)
}

var childStdin = map[*exec.Cmd]io.Closer{}

func stopChild(t testing.TB, cmd *exec.Cmd) {
	t.Helper()
	childStdin[cmd].Close()
	cmd.Wait()
}

func copyTestBinary(t testing.TB, name string) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	exe := filepath.Join(dir, name)
	if err := os.WriteFile(exe, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return exe
}

// TestResolveChild finds another process by its socket, with its name and
// executable.
func TestResolveChild(t *testing.T) {
	tab := newTestTable(t, Config{Timeout: 2 * time.Second})
	child, port := startChild(t, "attrib-child-1")
	k := Key{Proto: ProtoUDP, Local: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port), Remote: netip.MustParseAddrPort("127.0.0.1:53")}
	o, err := tab.Resolve(context.Background(), k)
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(filepath.Dir(child.Path), "attrib-child-1")
	if o.PID != int32(child.Process.Pid) || o.Name != "attrib-child-1" || o.Exe != want {
		t.Errorf("owner %+v, want pid %d name attrib-child-1 exe %s", o, child.Process.Pid, want)
	}
}

// requireRoot skips t unless it runs as root, or fails it when
// DNSTUN_REQUIRE_PRIV=1.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv(privtest.EnvRequire) == "1" {
		t.Fatalf("test needs root and %s=1 forbids skipping", privtest.EnvRequire)
	}
	t.Skip("skipping: needs root (to run processes as another user with chosen capabilities); run as root, e.g. sudo -E go test ./attrib")
}

// TestCapabilities runs the lookup as an unprivileged user (nobody) with
// chosen capabilities against a socket of a root process (this one), and
// checks what doc.go states: it needs CAP_SYS_PTRACE and
// CAP_DAC_READ_SEARCH, and one alone is not enough.
func TestCapabilities(t *testing.T) {
	requireRoot(t)
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	exe := copyTestBinary(t, "attrib-caps")
	for d := filepath.Dir(exe); d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		os.Chmod(d, 0o755) // let nobody execute the copy
	}
	const (
		capDACReadSearch = 2  // CAP_DAC_READ_SEARCH
		capSysPtrace     = 19 // CAP_SYS_PTRACE
	)
	for _, tc := range []struct {
		name string
		caps []uintptr
		want string
	}{
		{"none", nil, "denied"},
		{"ptrace", []uintptr{capSysPtrace}, "denied"},
		{"dac_read_search", []uintptr{capDACReadSearch}, "denied"},
		{"both", []uintptr{capSysPtrace, capDACReadSearch}, fmt.Sprintf("pid %d", os.Getpid())},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(exe)
			cmd.Env = append(os.Environ(), envChild+"=resolve "+c.LocalAddr().String())
			cmd.SysProcAttr = &syscall.SysProcAttr{
				Credential:  &syscall.Credential{Uid: 65534, Gid: 65534},
				AmbientCaps: tc.caps,
			}
			out, err := cmd.Output()
			if err != nil {
				if os.Getenv(privtest.EnvRequire) == "1" {
					t.Fatalf("cannot run as nobody with capabilities %v: %v", tc.caps, err)
				}
				t.Skipf("cannot run as nobody with capabilities %v: %v", tc.caps, err)
			}
			t.Logf("%s: %s", tc.name, out)
			if got := string(out); !strings.HasPrefix(got, tc.want) {
				t.Errorf("with capabilities %v: %q, want %q…", tc.caps, got, tc.want)
			}
		})
	}
}

// TestResolveOtherUser finds a process of another user (root can).
func TestResolveOtherUser(t *testing.T) {
	requireRoot(t)
	exe := copyTestBinary(t, "attrib-nobody")
	for d := filepath.Dir(exe); d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), envChild+"=udp")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	child, port := runChild(t, cmd)
	tab := newTestTable(t, Config{Timeout: 2 * time.Second})
	k := Key{Proto: ProtoUDP, Local: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port), Remote: netip.MustParseAddrPort("127.0.0.1:53")}
	o, err := tab.Resolve(context.Background(), k)
	if err != nil {
		t.Fatal(err)
	}
	if o.PID != int32(child.Process.Pid) || o.UID != 65534 || o.Name != "attrib-nobody" || o.Exe != exe {
		t.Errorf("owner %+v, want pid %d uid 65534 name attrib-nobody exe %s", o, child.Process.Pid, exe)
	}
}

// TestRunLinux: Request, then Lookup finds the owner; OnResolved fires.
func TestRunLinux(t *testing.T) {
	got := make(chan *Owner, 4)
	tab := newTestTable(t, Config{Timeout: 2 * time.Second, OnResolved: func(k Key, o *Owner) { got <- o }})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go tab.Run(ctx)
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	k := udpKey(t, c, netip.MustParseAddrPort("127.0.0.1:53"))
	if tab.Lookup(k) != nil {
		t.Fatal("hit before any lookup")
	}
	if !tab.Request(k) {
		t.Fatal("request dropped")
	}
	select {
	case o := <-got:
		if o == nil || o.PID != int32(os.Getpid()) {
			t.Fatalf("OnResolved got %v", o)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("OnResolved not called")
	}
	if o := tab.Lookup(k); o == nil || o.PID != int32(os.Getpid()) {
		t.Fatalf("Lookup after the lookup: %v", o)
	}
	if o := tab.Wait(k, time.Second); o == nil {
		t.Fatal("Wait on a cached key")
	}
}

// TestDiagExact checks the socket-id orientation of exact requests: each
// socket is found without the dump fallback.
func TestDiagExact(t *testing.T) {
	s, _ := newSys(Config{MaxScan: DefaultMaxScan}, &scanCounters{}, func(error) {})
	res, err := s.newResolver()
	if err != nil {
		t.Fatal(err)
	}
	r := res.(*linuxResolver)
	defer r.close()
	dns := netip.MustParseAddrPort("127.0.0.1:53")
	uc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	cc, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(dns))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	tc, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	for _, k := range []Key{
		udpKey(t, uc, dns),
		udpKey(t, cc, dns),
		{Proto: ProtoTCP, Local: tc.LocalAddr().(*net.TCPAddr).AddrPort(), Remote: tc.RemoteAddr().(*net.TCPAddr).AddrPort()},
	} {
		var got []diagMsg
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := r.query(ctx, afInet, k.Proto, k.Local, k.Remote, false, func(m diagMsg) { got = append(got, m) })
		cancel()
		if err != nil || len(got) != 1 || got[0].Local != k.Local || got[0].Inode == 0 {
			t.Errorf("%v: exact request: %v, %+v", k, err, got)
		}
		got = got[:0]
		ctx, cancel = context.WithTimeout(context.Background(), time.Second)
		err = r.query(ctx, afInet, k.Proto, k.Local, k.Remote, true, func(m diagMsg) { got = append(got, m) })
		cancel()
		if err != nil || len(got) == 0 {
			t.Errorf("%v: dump request: %v, %+v", k, err, got)
		}
		for _, m := range got {
			if m.Local.Port() != k.Local.Port() {
				t.Errorf("%v: the dump filter let through %+v", k, m)
			}
		}
	}
}

// BenchmarkResolveMiss is the cost of a cache miss on a fresh socket of
// this process: sock_diag, then the fd table of a recent owner.
func BenchmarkResolveMiss(b *testing.B) {
	tab := newTestTable(b, Config{Timeout: 2 * time.Second})
	dns := netip.MustParseAddrPort("127.0.0.1:53")
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(dns))
		if err != nil {
			b.Fatal(err)
		}
		k := udpKey(b, c, dns)
		b.StartTimer()
		if _, err := tab.Resolve(ctx, k); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		c.Close()
		b.StartTimer()
	}
}

// BenchmarkResolveScan is the worst case: the owner is another process,
// not a recent owner, and the index is empty, so the lookup reads the fd
// tables of the processes of the socket's uid (then all) until it finds it.
func BenchmarkResolveScan(b *testing.B) {
	s, _ := newSys(Config{MaxScan: DefaultMaxScan}, &scanCounters{}, func(error) {})
	res, err := s.newResolver()
	if err != nil {
		b.Fatal(err)
	}
	defer res.close()
	_, port := startChild(b, "attrib-bench")
	k := Key{Proto: ProtoUDP, Local: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port), Remote: netip.MustParseAddrPort("127.0.0.1:53")}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		s.mu.Lock()
		clear(s.inodes)
		s.recent = s.recent[:0]
		s.mu.Unlock()
		if _, err := res.resolve(ctx, k); err != nil {
			b.Fatal(err)
		}
	}
	procs, _ := os.ReadDir("/proc")
	n := 0
	for _, p := range procs {
		if _, err := strconv.Atoi(p.Name()); err == nil {
			n++
		}
	}
	b.ReportMetric(float64(s.scans.procs.Load())/float64(b.N), "fdtables/op")
	b.ReportMetric(float64(n), "procs")
}

// TestScanCutWhenGone: when the recent owners do not hold the inode and the
// socket has closed meanwhile (a resolver's one-query socket), the lookup
// stops there instead of reading every process's fd table; while the socket
// is still there, the scan goes on and finds its owner.
func TestScanCutWhenGone(t *testing.T) {
	child, port := startChild(t, "attrib-child-cut")
	k := Key{Proto: ProtoUDP, Local: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port), Remote: netip.MustParseAddrPort("127.0.0.1:53")}
	counters := &scanCounters{}
	s, _ := newSys(Config{MaxScan: DefaultMaxScan}, counters, func(error) {})
	res, err := s.newResolver()
	if err != nil {
		t.Fatal(err)
	}
	r := res.(*linuxResolver)
	defer r.close()
	m, err := r.exact(context.Background(), k)
	if err != nil || m.Inode == 0 {
		t.Fatalf("the child's socket: %+v, %v", m, err)
	}
	pid, err := r.findProcess(context.Background(), m.Inode, m.UID, func() bool { return true })
	if !errors.Is(err, ErrNotFound) || pid != 0 {
		t.Fatalf("gone: pid %d, %v; want ErrNotFound", pid, err)
	}
	if counters.gone.Load() != 1 || counters.procs.Load() != 0 {
		t.Errorf("gone: %d cut, %d fd tables read; want 1 and none (no recent owners yet)", counters.gone.Load(), counters.procs.Load())
	}
	pid, err = r.findProcess(context.Background(), m.Inode, m.UID, func() bool { return false })
	if err != nil || pid != int32(child.Process.Pid) {
		t.Fatalf("still there: pid %d, %v; want %d", pid, err, child.Process.Pid)
	}
	// The real check: the socket's exact id, asked again.
	resolve := func() (*Owner, error) { return r.resolve(context.Background(), k) }
	if o, err := resolve(); err != nil || o.PID != int32(child.Process.Pid) {
		t.Errorf("resolve: %+v, %v", o, err)
	}
}

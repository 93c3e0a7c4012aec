// SPDX-License-Identifier: MIT

package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dnstun/dnstun/internal/demo"
	"github.com/dnstun/dnstun/internal/lab"
	"github.com/dnstun/dnstun/internal/privtest"
	"github.com/miekg/dns"
	"golang.org/x/sys/unix"
)

// The capability bits of daemon.Privileges.
const (
	capDacOverride    = 1 << 1
	capDacReadSearch  = 1 << 2
	capNetBindService = 1 << 10
	capNetAdmin       = 1 << 12
	capSysPtrace      = 1 << 19
	capAttribution    = capSysPtrace | capDacReadSearch
)

const dropLog = "capabilities dropped to what the options need"

// testBinaryUsesCgo reports whether this test binary links cgo (as -race
// builds do): then Go cannot change every thread's capabilities.
func testBinaryUsesCgo() bool {
	_, _, e := syscall.AllThreadsSyscall(unix.SYS_PRCTL, unix.PR_CAPBSET_READ, 0, 0)
	return e == syscall.ENOTSUP
}

// nocgoDnstun returns the command that runs a dnstun without cgo: this
// test binary when it is one, else `go build` of this package with
// CGO_ENABLED=0 into dir.
func nocgoDnstun(t *testing.T, dir string) (exe, env []string) {
	t.Helper()
	if !testBinaryUsesCgo() {
		self, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		return []string{self}, []string{"DNSTUN_TEST_MAIN=1"}
	}
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goTool); err != nil {
		if goTool, err = exec.LookPath("go"); err != nil {
			t.Fatalf("this test binary links cgo and no go tool is found to build dnstun without it: %v", err)
		}
	}
	bin := filepath.Join(dir, "dnstun")
	start := time.Now()
	cmd := exec.Command(goTool, "build", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("CGO_ENABLED=0 go build: %v\n%s", err, out)
	}
	t.Logf("built dnstun without cgo in %v", time.Since(start).Round(time.Millisecond))
	return []string{bin}, nil
}

// procCaps reads the capability lines of a /proc status file.
type procCaps struct {
	Inh, Prm, Eff, Bnd, Amb uint64
	NoNewPrivs              string
}

func readCaps(t *testing.T, path string) procCaps {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var c procCaps
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, ":")
		v = strings.TrimSpace(v)
		n, _ := strconv.ParseUint(v, 16, 64)
		switch k {
		case "CapInh":
			c.Inh = n
		case "CapPrm":
			c.Prm = n
		case "CapEff":
			c.Eff = n
		case "CapBnd":
			c.Bnd = n
		case "CapAmb":
			c.Amb = n
		case "NoNewPrivs":
			c.NoNewPrivs = v
		}
	}
	return c
}

// wantCaps checks that every thread of pid holds exactly want in its
// permitted, effective and bounding sets, nothing inheritable or ambient,
// and no_new_privs.
func wantCaps(t *testing.T, pid int, want uint64) {
	t.Helper()
	exact := procCaps{Prm: want, Eff: want, Bnd: want, NoNewPrivs: "1"}
	if got := readCaps(t, fmt.Sprintf("/proc/%d/status", pid)); got != exact {
		t.Fatalf("/proc/%d/status: %+v, want %+v", pid, got, exact)
	}
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	for _, p := range tasks {
		if got := readCaps(t, p); got != exact {
			t.Errorf("%s: %+v, want %+v", p, got, exact)
		}
	}
	t.Logf("pid %d, %d threads: CapPrm=CapEff=CapBnd=%016x CapInh=CapAmb=0 NoNewPrivs=1", pid, len(tasks), want)
}

// childrenCaps checks that the programs dnstun runs (nft) hold no more
// than want, with no_new_privs.
func childrenCaps(t *testing.T, pid int, want uint64) int {
	t.Helper()
	// Each thread lists the children it forked.
	files, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var kids []string
	for _, p := range files {
		b, _ := os.ReadFile(p)
		kids = append(kids, strings.Fields(string(b))...)
	}
	n := 0
	for _, f := range kids {
		c := readCaps(t, "/proc/"+f+"/status")
		if c.Eff&^want != 0 || c.Prm&^want != 0 || c.NoNewPrivs != "1" {
			t.Errorf("child %s of dnstun: %+v, want at most %016x and no_new_privs", f, c, want)
		}
		n++
	}
	return n
}

// startPriv starts dnstun in l with args (and the lab's upstreams, unless
// capturing) and waits until it dropped its capabilities.
func startPriv(t *testing.T, l *demo.Lab, exe, env []string, args ...string) {
	t.Helper()
	full := append([]string{"--log-level", "info"}, args...)
	if !slices.Contains(args, "--capture") {
		full = append(full, demo.UpstreamArgs...)
	}
	if err := l.StartDnstun(context.Background(), exe, env, map[string]string{"list.txt": demo.Blocklist}, full...); err != nil {
		t.Fatal(err)
	}
	waitLog(t, l, dropLog)
}

// blockedAndForwarded asks a blocked and a forwarded name through server.
func blockedAndForwarded(t *testing.T, l *demo.Lab, server netip.AddrPort, when string) {
	t.Helper()
	networks := []string{"udp", "tcp"}
	if server == flowAddr {
		networks = networks[:1] // flow mode serves UDP only
	}
	for _, n := range networks {
		if got := demo.AnswerText(ask(t, l, n, server, "ads.doubleclick.net", dns.TypeA)); got != "NXDOMAIN" {
			t.Errorf("%s: blocked name via %s %v: %s", when, n, server, got)
		}
		if got := demo.AnswerText(ask(t, l, n, server, "www.example.com", dns.TypeA)); got != "192.0.2.80" {
			t.Errorf("%s: forwarded name via %s %v: %s", when, n, server, got)
		}
	}
}

// flowAddr is where flow mode serves in the tests.
var flowAddr = netip.MustParseAddrPort("127.0.0.1:53")

// disableEnable turns filtering off and on through the control socket.
func disableEnable(t *testing.T, l *demo.Lab) {
	t.Helper()
	for _, verb := range []string{"disable", "enable", "reload"} {
		if out, err := ctl(t, l, verb); err != nil {
			t.Fatalf("dnstun %s: %v\n%s\n%s", verb, err, out, l.Log())
		}
	}
}

// TestPrivilegesDropped: after set-up the daemon holds exactly the
// capabilities daemon.Privileges lists, on every thread, and still does
// all it did before: answer, disable and enable (a new TUN, its routes,
// rules, nftables; port 53 again in flow mode), reload, put a deleted rule
// back, attribute a query of another user, give the machine back.
func TestPrivilegesDropped(t *testing.T) {
	privtest.RequirePriv(t)
	exe, env := nocgoDnstun(t, t.TempDir())

	t.Run("tun+capture", func(t *testing.T) {
		l := captureLab(t)
		before := snapshot(t, l)
		startPriv(t, l, exe, env, "--capture", "--state-dir", stateDir(l), "--resolv-conf", filepath.Join(l.Dir, "resolv.conf"))
		waitLog(t, l, "capture on")
		pid := l.Dnstun.Pid()
		want := uint64(capNetAdmin | capAttribution)
		wantCaps(t, pid, want)
		blockedAndForwarded(t, l, demo.OffLink4, "captured")
		blockedAndForwarded(t, l, demo.Resolver4, "virtual resolver")

		// The rule monitor puts a deleted rule back.
		if err := l.Host.IP("-4", "rule", "del", "pref", "5101"); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			out, _ := l.Host.Command(context.Background(), "ip", "-4", "rule", "show", "pref", "5101").Output()
			if strings.Contains(string(out), "lookup 53053") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the deleted rule was not put back:\n%s", l.Log())
			}
		}

		// Disable gives the machine back; enable steers again, with the
		// nft child started after the drop.
		if out, err := ctl(t, l, "disable"); err != nil {
			t.Fatalf("disable: %v\n%s", err, out)
		}
		if tunExists(l) {
			t.Error("TUN left after disable")
		}
		sameSnapshot(t, "disabled", before, snapshot(t, l))
		disableEnable(t, l)
		for deadline := time.Now().Add(5 * time.Second); strings.Count(l.Log(), "capture on") < 2; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("capture did not come on again:\n%s", l.Log())
			}
		}
		if !strings.Contains(l.Log(), "reloaded") {
			t.Errorf("no reload in the log:\n%s", l.Log())
		}
		blockedAndForwarded(t, l, demo.OffLink4, "captured after enable and reload")
		if _, err := exec.LookPath("nft"); err == nil {
			if n := childrenCaps(t, pid, want); n == 0 {
				t.Error("no nft child after enable")
			}
		}
		wantCaps(t, pid, want)
		if l.Dnstun.Pid() != pid {
			t.Fatal("another process")
		}
		if err := l.StopDnstun(); err != nil {
			t.Fatalf("SIGTERM: %v\n%s", err, l.Log())
		}
		sameSnapshot(t, "after SIGTERM", before, snapshot(t, l))
	})

	t.Run("tun", func(t *testing.T) {
		l := captureLab(t)
		startPriv(t, l, exe, env)
		wantCaps(t, l.Dnstun.Pid(), capNetAdmin|capAttribution)
		blockedAndForwarded(t, l, demo.Resolver4, "started")
		disableEnable(t, l)
		if !tunExists(l) {
			t.Fatal("no TUN after enable")
		}
		blockedAndForwarded(t, l, demo.Resolver4, "after disable, enable and reload")

		// Attribution of another user's query needs CAP_SYS_PTRACE and
		// CAP_DAC_READ_SEARCH: run a client as nobody.
		dir, err := os.MkdirTemp("", "dnstun-priv-client")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)
		os.Chmod(dir, 0o755)
		self, _ := os.Executable()
		clientPath := filepath.Join(dir, "nobody-client")
		if out, err := exec.Command("cp", self, clientPath).CombinedOutput(); err != nil {
			t.Fatalf("cp: %v %s", err, out)
		}
		cmd := l.Host.Command(t.Context(), "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", clientPath, demo.Resolver4.String(), "mail.example.com", "300ms")
		cmd.Env = append(os.Environ(), "DNSTUN_TEST_CLIENT=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("client as nobody: %v\n%s", err, out)
		}
		var pid int
		fmt.Sscanf(strings.TrimSpace(string(out)), "pid=%d", &pid)
		recent, err := client(t, l).QueryLog(t.Context(), 50)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, e := range recent {
			if e.Name == "mail.example.com" {
				found = true
				if e.Process != "nobody-client" || int(e.PID) != pid {
					t.Errorf("query of uid 65534 attributed to %q pid %d, want nobody-client pid %d", e.Process, e.PID, pid)
				}
			}
		}
		if !found {
			t.Errorf("no query log entry for mail.example.com: %+v", recent)
		}
	})

	t.Run("flow", func(t *testing.T) {
		l := captureLab(t)
		if err := os.WriteFile(filepath.Join(l.Dir, "list.txt"), []byte(demo.Blocklist), 0o644); err != nil {
			t.Fatal(err)
		}
		args := append(append([]string{}, exe...), "run", "--mode", "flow", "--listen", "127.0.0.1:53", "--blocklist", filepath.Join(l.Dir, "list.txt"),
			"--control", l.ControlPath(), "--state-file", filepath.Join(l.Dir, "state.json"), "--log-level", "info")
		args = append(args, demo.UpstreamArgs...)
		p, err := l.Start(l.Host, lab.Cmd{Args: args, Env: env})
		if err != nil {
			t.Fatal(err)
		}
		l.Dnstun = p
		waitLog(t, l, dropLog)
		wantCaps(t, p.Pid(), capNetBindService|capAttribution)
		blockedAndForwarded(t, l, flowAddr, "flow")
		disableEnable(t, l)
		blockedAndForwarded(t, l, flowAddr, "flow after disable, enable (port 53 bound again) and reload")
	})

	t.Run("attribution-off", func(t *testing.T) {
		l := captureLab(t)
		startPriv(t, l, exe, env, "--attribution=false")
		wantCaps(t, l.Dnstun.Pid(), capNetAdmin)
		blockedAndForwarded(t, l, demo.Resolver4, "started")
		disableEnable(t, l)
		blockedAndForwarded(t, l, demo.Resolver4, "after disable, enable and reload")
	})

	t.Run("dnstap-unix", func(t *testing.T) {
		l := captureLab(t)
		sock := filepath.Join(l.Dir, "tap.sock")
		ln, err := l.Host.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					b := make([]byte, 4096)
					for _, err := c.Read(b); err == nil; _, err = c.Read(b) {
					}
				}()
			}
		}()
		// A collector of another user, its socket not writable by others:
		// only CAP_DAC_OVERRIDE lets dnstun reconnect.
		if err := os.Chown(sock, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		os.Chmod(sock, 0o755)
		startPriv(t, l, exe, env, "--attribution=false", "--dnstap", "unix:"+sock)
		wantCaps(t, l.Dnstun.Pid(), capNetAdmin|capDacOverride)
		time.Sleep(2 * time.Second) // reconnects after the drop (this collector never accepts the handshake)
		if strings.Contains(l.Log(), "permission denied") {
			t.Errorf("dnstap reconnect denied after the drop:\n%s", l.Log())
		}
	})
}

// TestPrivilegesCgoBinaryFailsLoudly: a dnstun that links cgo cannot drop
// on every thread; it says so in its log and keeps what it had, never a
// drop on some threads only.
func TestPrivilegesCgoBinaryFailsLoudly(t *testing.T) {
	if !testBinaryUsesCgo() {
		t.Skip("this test binary has no cgo (CGO_ENABLED=0): TestPrivilegesDropped ran it")
	}
	l := startLab(t)
	waitLog(t, l, "capabilities NOT dropped")
	if !strings.Contains(l.Log(), "CGO_ENABLED=0") {
		t.Errorf("the error does not say how to fix it:\n%s", l.Log())
	}
	self := readCaps(t, "/proc/self/status")
	got := readCaps(t, fmt.Sprintf("/proc/%d/status", l.Dnstun.Pid()))
	if got.Eff != self.Eff || got.NoNewPrivs != "0" {
		t.Errorf("cgo dnstun changed something: %+v, the test (its parent) has %+v", got, self)
	}
}

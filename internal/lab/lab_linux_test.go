// SPDX-License-Identifier: MIT

package lab

import (
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dnstun/dnstun/internal/dnstest"
	"github.com/dnstun/dnstun/internal/privtest"
	"golang.org/x/sys/unix"
)

// namespaces returns the names in /run/netns that start with prefix.
func namespaces(prefix string) []string {
	ents, _ := os.ReadDir("/run/netns")
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) {
			out = append(out, e.Name())
		}
	}
	return out
}

// inNetns reports whether process pid lives in namespace ns.
func inNetns(t *testing.T, pid int, ns *NS) bool {
	t.Helper()
	var a, b syscall.Stat_t
	if err := syscall.Stat("/proc/"+strconv.Itoa(pid)+"/ns/net", &a); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Stat("/run/netns/"+ns.Name, &b); err != nil {
		t.Fatal(err)
	}
	return a.Dev == b.Dev && a.Ino == b.Ino
}

// TestLab builds a lab with everything on, serves a zone in-process,
// queries it from the host namespace directly and through the gateway,
// runs a process in each namespace, and checks that Close leaves nothing.
func TestLab(t *testing.T) {
	privtest.RequirePriv(t)
	l, err := New(Config{Prefix: "dnstun-labtest", IPv6: true, DefaultRoute: true,
		UpLoopback: []netip.Addr{Loopback4.Addr(), Loopback6.Addr()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	names := []string{l.Host.Name, l.Up.Name}
	if !strings.HasSuffix(l.Host.Name, "-host") || !strings.HasSuffix(l.Up.Name, "-up") || len(namespaces(strings.TrimSuffix(l.Host.Name, "host"))) != 2 {
		t.Fatalf("namespaces %v, in /run/netns %v", names, namespaces("dnstun-labtest"))
	}
	zone, err := dnstest.ParseZone("www.example.com. 0 IN A 192.0.2.80")
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	for _, a := range []netip.AddrPort{Upstream4, Upstream6, Loopback4, Loopback6} {
		s, err := l.Serve(l.Up, "udp", a, zone)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Host.FirstAnswer(ctx, Probe{Target: a, Name: "www.example.com", Limit: 5 * time.Second}); err != nil {
			t.Errorf("%v: %v", a, err)
		}
		if _, err := l.Host.FirstAnswer(ctx, Probe{Target: a, Name: "nx.example.com", Type: 28, Rcode: RcodeNXDomain, Limit: 5 * time.Second}); err != nil {
			t.Errorf("%v NXDOMAIN: %v", a, err)
		}
		if s.QueriesFor("www.example.com") < 1 || s.QueriesFor("nx.example.com") < 1 {
			t.Errorf("%v: the server saw %d and %d queries", a, s.QueriesFor("www.example.com"), s.QueriesFor("nx.example.com"))
		}
	}
	if _, err := l.Serve(l.Up, "tcp", Loopback4, zone); err != nil {
		t.Fatal(err)
	}
	if c, err := l.Host.Dial("tcp", Loopback4.String()); err != nil {
		t.Errorf("tcp via the gateway: %v", err)
	} else {
		c.Close()
	}
	// The gateway forwards nothing: an address nobody in the lab holds
	// does not answer.
	if _, err := l.Host.FirstAnswer(ctx, Probe{Target: netip.MustParseAddrPort("203.0.113.9:53"), Name: "x", Rcode: RcodeAny, Limit: 200 * time.Millisecond}); err == nil {
		t.Error("an address nobody in the lab holds answered")
	}

	// A process in each namespace, output captured, pinned when asked.
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		t.Fatal(err)
	}
	cpu := 0
	for !set.IsSet(cpu) {
		cpu++
	}
	p, err := l.Start(l.Up, Cmd{Args: []string{"sh", "-c", "echo out; echo err >&2; exec sleep 60"}, CPUs: strconv.Itoa(cpu)})
	if err != nil {
		t.Fatal(err)
	}
	q, err := l.Start(l.Host, Cmd{Args: []string{"sh", "-c", `trap "" TERM; echo $FOO; exec sleep 60`}, Env: []string{"FOO=bar"}, StopWait: 200 * time.Millisecond, LogLimit: 2})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(p.Log(), "out\n") || !strings.Contains(p.Log(), "err\n") || q.Log() != "ba" {
		if time.Now().After(deadline) {
			t.Fatalf("logs %q and %q", p.Log(), q.Log())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !inNetns(t, p.Pid(), l.Up) || !inNetns(t, q.Pid(), l.Host) {
		t.Error("processes not in their namespaces")
	}
	if b, _ := os.ReadFile("/proc/" + strconv.Itoa(p.Pid()) + "/status"); !strings.Contains(string(b), "Cpus_allowed_list:\t"+strconv.Itoa(cpu)+"\n") {
		t.Errorf("not pinned to cpu %d:\n%s", cpu, b)
	}
	if p.Exited() || q.Exited() {
		t.Fatal("exited early")
	}
	// q ignores SIGTERM: Stop kills it after StopWait.
	if err := q.Stop(); err == nil || !strings.Contains(err.Error(), "killed") || !q.Exited() {
		t.Errorf("Stop of a process that ignores SIGTERM: %v", err)
	}
	// FirstAnswer gives up when the process it waits for exits.
	r, err := l.Start(l.Host, Cmd{Args: []string{"true"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Host.FirstAnswer(ctx, Probe{Target: Resolver4, Name: "x", Limit: 5 * time.Second, Proc: r}); err == nil || !strings.Contains(err.Error(), "exited") {
		t.Errorf("FirstAnswer with an exited process: %v", err)
	}

	dir := l.Dir
	l.Close()
	l.Close() // idempotent
	if !p.Exited() {
		t.Error("Close left a process running")
	}
	if got := namespaces("dnstun-labtest"); len(got) != 0 {
		t.Errorf("namespaces left: %v", got)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("folder left: %v", err)
	}
}

// TestLabNewRemovesWhatItBuiltOnError fails New at its last address step
// and after validation, and checks that nothing is left.
func TestLabNewRemovesWhatItBuiltOnError(t *testing.T) {
	privtest.RequirePriv(t)
	before := namespaces("dnstun-laberr")
	dirs := func() int {
		m, _ := filepath.Glob(filepath.Join(os.TempDir(), "dnstun-laberr-lab-*"))
		return len(m)
	}
	dirsBefore := dirs()
	for _, c := range []Config{
		{Prefix: "dnstun-laberr", HostLoopback: []netip.Addr{Loopback4.Addr(), Loopback4.Addr()}}, // the second add fails
		{Prefix: "dnstun-laberr", UpLoopback: []netip.Addr{netip.MustParseAddr("1.1.1.1")}},       // not a documentation address
		{},
	} {
		l, err := New(c)
		if err == nil || l != nil {
			t.Errorf("New(%+v) = %v, %v; want an error", c, l, err)
			continue
		}
		if got := namespaces("dnstun-laberr"); len(got) != len(before) {
			t.Errorf("New(%+v) failed (%v) but left %v", c, err, got)
		}
		if dirs() != dirsBefore {
			t.Errorf("New(%+v) failed (%v) but left its folder", c, err)
		}
	}
}

func TestBuildQuery(t *testing.T) {
	got := buildQuery("a.bc.", 28)
	want := []byte{0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 'a', 2, 'b', 'c', 0, 0, 28, 0, 1}
	if string(got) != string(want) {
		t.Errorf("buildQuery = %v, want %v", got, want)
	}
}

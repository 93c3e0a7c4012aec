// SPDX-License-Identifier: MIT

package main

// The control plane's rows of issue 15's fault matrix: reload storms under
// load, and SIGKILL at any moment of start-up, enable, disable and
// shutdown.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dnstun/dnstun/control"
	"github.com/dnstun/dnstun/internal/demo"
	"github.com/dnstun/dnstun/internal/lab"
	"github.com/miekg/dns"
)

// TestFaultReloadStorm: 100 reloads under the load of four clients, half
// through `dnstun reload` and half through SIGHUP, and half of each with a
// broken configuration (an unknown key, a list that is not a list, a list
// that does not exist, a file that is not YAML). The good ones swap two
// lists that decide two names the opposite way. No query is lost, none
// decided by neither list, a broken reload never changes a decision (it is
// refused, and says so), and a query sent and answered while one list was
// live is decided by that list.
func TestFaultReloadStorm(t *testing.T) {
	l := newFaultLab(t)
	cfg := filepath.Join(l.Dir, "dnstun.yaml")
	listA := filepath.Join(l.Dir, "a.txt")
	listB := filepath.Join(l.Dir, "b.txt")
	listBad := filepath.Join(l.Dir, "bad.txt")
	for p, body := range map[string]string{
		listA:   "doubleclick.net\nmail.example.com\n",
		listB:   "doubleclick.net\nwww.example.com\n",
		listBad: "<html><body>502 Bad Gateway</body></html>\n",
	} {
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write := func(body string) {
		if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	good := func(list string) string { return "blocklists: [" + list + "]\nlist_watch: 0s\n" }
	broken := []struct{ what, body string }{
		{"unknown key", "blocklist: [" + listA + "]\nlist_watch: 0s\n"},
		{"not a list", good(listBad)},
		{"missing list", good(filepath.Join(l.Dir, "missing.txt"))},
		{"not YAML", "blocklists: [\n"},
	}
	write(good(listA))
	exe, _ := os.Executable()
	if err := l.StartDnstun(context.Background(), []string{exe}, []string{"DNSTUN_TEST_MAIN=1"}, nil,
		append(append([]string{"--config", cfg}, faultArgs...), demo.UpstreamArgs...)...); err != nil {
		t.Fatal(err)
	}

	forwarded := map[string]string{"www.example.com": "192.0.2.80", "mail.example.com": "192.0.2.25", "ready.example.com": "192.0.2.1"}
	decides := map[string]map[string]string{
		listA: {"www.example.com": "forwarded", "mail.example.com": "blocked", "ads.doubleclick.net": "blocked", "ready.example.com": "forwarded"},
		listB: {"www.example.com": "blocked", "mail.example.com": "forwarded", "ads.doubleclick.net": "blocked", "ready.example.com": "forwarded"},
	}
	names := []string{"www.example.com", "mail.example.com", "ads.doubleclick.net", "ready.example.com"}
	ld := startLoad(l.Lab, demo.Resolver4, 4, 100000, names, 3*time.Second, classifyBlockedOrForwarded(forwarded))
	// windows[i]: a time in which only one list was live, from the end of
	// the good reload that made it live to the start of the next good
	// one; broken reloads happen inside windows.
	windows := []reloadWindow{{from: time.Now(), list: listA}}
	ld.waitDone(100, 5*time.Second) // the first window, too, gets answers
	live := listA
	logCount := func(s string) int { return strings.Count(l.Log(), s) }
	var failures []string
	var viaCtl, viaHup, refused int
	storm := time.Now()
	for i := range 100 {
		isBroken := i%2 == 1
		hup := (i/2)%2 == 1
		var body, what string
		next := live
		if isBroken {
			b := broken[(i/4)%len(broken)]
			body, what = b.body, b.what
		} else {
			if live == listA {
				next = listB
			} else {
				next = listA
			}
			body, what = good(next), "good, "+filepath.Base(next)
			windows[len(windows)-1].to = time.Now()
		}
		write(body)
		if hup {
			viaHup++
			okBefore, failBefore := logCount("msg=reloaded"), logCount(`msg="reload failed`)
			if err := l.Dnstun.Signal(syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(5 * time.Second)
			for {
				ok, fail := logCount("msg=reloaded") > okBefore, logCount(`msg="reload failed`) > failBefore
				if ok || fail {
					if ok == isBroken {
						failures = append(failures, fmt.Sprintf("reload %d (SIGHUP, %s): reloaded=%v", i, what, ok))
					}
					break
				}
				if time.Now().After(deadline) {
					ld.Stop()
					t.Fatalf("reload %d (SIGHUP, %s): nothing logged within 5 s\n%s", i, what, l.Log())
				}
				time.Sleep(2 * time.Millisecond)
			}
		} else {
			viaCtl++
			out, err := ctl(t, l.Lab, "reload")
			if (err != nil) != isBroken || isBroken && !strings.Contains(out, "reload refused") {
				failures = append(failures, fmt.Sprintf("reload %d (dnstun reload, %s): %v %q", i, what, err, out))
			}
		}
		if isBroken {
			refused++
		} else {
			live = next
			windows = append(windows, reloadWindow{from: time.Now(), list: live})
		}
		time.Sleep(30 * time.Millisecond)
	}
	windows[len(windows)-1].to = time.Now()
	took := time.Since(storm)
	res := ld.Stop()
	for _, f := range failures {
		t.Error(f)
	}
	if l.Dnstun.Exited() {
		t.Fatalf("dnstun exited during the storm:\n%s", l.Log())
	}
	bad, inWindow, strict := checkReloadWindows(res, windows, decides, listA, listB)
	for what, n := range bad {
		t.Errorf("during the storm, %d times %s", n, what)
	}
	for i, n := range inWindow {
		if n == 0 {
			t.Errorf("no query answered within window %d (%s live for %v): the load did not cover it", i, filepath.Base(windows[i].list), windows[i].to.Sub(windows[i].from))
		}
	}
	t.Logf("100 reloads (%d dnstun reload, %d SIGHUP; %d broken, all refused) in %v under load: %d queries, %d checked against the single live list, %d lost or wrong",
		viaCtl, viaHup, refused, took.Round(time.Millisecond), len(res), strict, len(bad))
}

// TestFaultKill9 kills dnstun (capturing) with SIGKILL at random moments of
// its start-up, of enable, of disable and of its shutdown: 10 times, 50
// with DNSTUN_LONG=1. Every time, DNS works directly (the system's
// resolver answers, over IPv4 and IPv6, not dnstun) within a second of the
// process's death, and `dnstun cleanup` brings the namespace's routing and
// filtering state back to exactly what it was before the first start.
func TestFaultKill9(t *testing.T) {
	kills := 10
	if os.Getenv("DNSTUN_LONG") == "1" {
		kills = 50
	}
	l := captureLab(t)
	list := filepath.Join(l.Dir, "list.txt")
	if err := os.WriteFile(list, []byte(demo.Blocklist), 0o644); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(l.Dir, "state.json")
	exe, _ := os.Executable()
	args := []string{exe, "run", "--capture", "--state-dir", stateDir(l), "--resolv-conf", filepath.Join(l.Dir, "resolv.conf"),
		"--control", l.ControlPath(), "--state-file", state, "--blocklist", list, "--log-level", "info"}
	before := snapshot(t, l)

	start := func() *lab.Proc {
		t.Helper()
		os.Remove(state) // every run starts enabled
		p, err := l.Start(l.Host, lab.Cmd{Args: args, Env: []string{"DNSTUN_TEST_MAIN=1"}, StopWait: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	// capturing waits until p has said "capture on" n times.
	capturing := func(p *lab.Proc, n int) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); strings.Count(p.Log(), "capture on") < n; time.Sleep(5 * time.Millisecond) {
			if p.Exited() || time.Now().After(deadline) {
				t.Fatalf("capture did not come on (exited %v: %v):\n%s", p.Exited(), p.Err(), p.Log())
			}
		}
	}
	verb := func(v string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := control.Dial(l.ControlPath())
		if err != nil {
			return err
		}
		defer c.Close()
		if v == "enable" {
			return c.Enable(ctx)
		}
		return c.Disable(ctx)
	}
	// direct waits until the system's resolvers answer for themselves
	// (a blocked name gets its real record) and returns how long it took.
	direct := func() (time.Duration, error) {
		t0 := time.Now()
		for {
			r4, err4 := faultAsk(l, demo.OffLink4, "ads.doubleclick.net", dns.TypeA, 0, 100*time.Millisecond, 0)
			r6, err6 := faultAsk(l, demo.Secondary, "ads.doubleclick.net", dns.TypeA, 0, 100*time.Millisecond, 0)
			if err4 == nil && err6 == nil && demo.AnswerText(r4.m) == "192.0.2.66" && demo.AnswerText(r6.m) == "192.0.2.66" {
				return time.Since(t0), nil
			}
			if time.Since(t0) > time.Second {
				return time.Since(t0), fmt.Errorf("IPv4: %v %v; IPv6: %v %v", err4, r4.m, err6, r6.m)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	// cleanup runs at once after the kill, as a service manager's
	// ExecStopPost or the next start does.
	cleanup := func(when string) string {
		t.Helper()
		nft := nftHolders(t, l.Host)
		cmd := l.Host.Command(context.Background(), exe, "cleanup", "--state-dir", stateDir(l))
		cmd.Env = append(os.Environ(), "DNSTUN_TEST_MAIN=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: dnstun cleanup: %v\n%s\n(dnstun's `nft -i` child still alive in the namespace as cleanup started: %v; now: %v; the lock file open in: %v)",
				when, err, out, nft, nftHolders(t, l.Host), openers(filepath.Join(stateDir(l), "lock")))
		}
		sameSnapshot(t, when+", after dnstun cleanup", before, snapshot(t, l))
		return string(out)
	}

	// Calibration, without kills: how long each phase takes here.
	t0 := time.Now()
	p := start()
	capturing(p, 1)
	startDur := time.Since(t0)
	t0 = time.Now()
	if err := verb("disable"); err != nil {
		t.Fatal(err)
	}
	disableDur := time.Since(t0)
	t0 = time.Now()
	if err := verb("enable"); err != nil {
		t.Fatal(err)
	}
	enableDur := time.Since(t0)
	capturing(p, 2)
	t0 = time.Now()
	if err := p.Stop(); err != nil {
		t.Fatalf("SIGTERM: %v\n%s", err, p.Log())
	}
	stopDur := time.Since(t0)
	sameSnapshot(t, "after a clean stop", before, snapshot(t, l))
	t.Logf("phases here: start-up to capture %v, disable %v, enable %v, shutdown %v",
		startDur.Round(time.Millisecond), disableDur.Round(time.Millisecond), enableDur.Round(time.Millisecond), stopDur.Round(time.Millisecond))

	// One calibration run is noisy on a shared machine: each phase's
	// range is at least a floor.
	phases := []struct {
		name string
		dur  time.Duration
	}{{"start-up", max(startDur, 400*time.Millisecond)}, {"enable", max(enableDur, 150*time.Millisecond)},
		{"disable", max(disableDur, 150*time.Millisecond)}, {"shutdown", max(stopDur, 150*time.Millisecond)}}
	var worst time.Duration
	var cleaned, alive int
	began := time.Now()
	for i := range kills {
		ph := phases[i%len(phases)]
		// A moment within the phase, or a little past its usual end.
		at := time.Duration(rand.Int64N(int64(ph.dur)*5/4 + 1))
		p := start()
		verbDone := make(chan error, 1)
		switch ph.name {
		case "start-up":
			time.Sleep(at)
		case "enable":
			capturing(p, 1)
			if err := verb("disable"); err != nil {
				t.Fatal(err)
			}
			go func() { verbDone <- verb("enable") }()
			time.Sleep(at)
		case "disable":
			capturing(p, 1)
			go func() { verbDone <- verb("disable") }()
			time.Sleep(at)
		case "shutdown":
			capturing(p, 1)
			p.Signal(syscall.SIGTERM)
			time.Sleep(at)
		}
		if !p.Exited() {
			alive++
		}
		p.Kill()
		d, err := direct()
		if err != nil {
			t.Fatalf("kill %d (%s, %v in): DNS does not work directly %v after the kill: %v\n%s", i+1, ph.name, at, d, err, p.Log())
		}
		worst = max(worst, d)
		if ph.name == "enable" || ph.name == "disable" {
			select {
			case <-verbDone:
			case <-time.After(10 * time.Second):
				t.Fatalf("kill %d: the control call did not end after the kill", i+1)
			}
		}
		if out := cleanup(fmt.Sprintf("kill %d (%s, %v in)", i+1, ph.name, at)); !strings.Contains(out, "nothing to clean up") {
			cleaned++
		}
	}
	t.Logf("%d kills -9 (%d of them before the process had exited by itself) in %v: all survived; DNS direct within %v at worst; cleanup removed something %d times, and restored the exact state every time",
		kills, alive, time.Since(began).Round(time.Millisecond), worst.Round(time.Millisecond), cleaned)
	if worst > time.Second {
		t.Errorf("DNS worked directly only %v after a kill, want within 1 s", worst)
	}
	// And it starts again, capturing.
	p = start()
	capturing(p, 1)
	if got := demo.AnswerText(ask(t, l, "udp", demo.OffLink4, "ads.doubleclick.net", dns.TypeA)); got != "NXDOMAIN" {
		t.Errorf("after the kills, a fresh dnstun does not capture: %s", got)
	}
	if err := p.Stop(); err != nil {
		t.Errorf("final stop: %v", err)
	}
	sameSnapshot(t, "after the final stop", before, snapshot(t, l))
}

// nftHolders returns the PIDs of `nft -i` processes in ns: the child that
// holds capture's nftables owner table.
func nftHolders(t *testing.T, ns *lab.NS) []int {
	t.Helper()
	var want syscall.Stat_t
	if err := syscall.Stat("/run/netns/"+ns.Name, &want); err != nil {
		t.Fatal(err)
	}
	netns := fmt.Sprintf("net:[%d]", want.Ino)
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	var pids []int
	for _, d := range dirs {
		cmd, err := os.ReadFile(d + "/cmdline")
		if err != nil || !strings.HasPrefix(string(cmd), "nft\x00-i\x00") {
			continue
		}
		if link, err := os.Readlink(d + "/ns/net"); err == nil && link == netns {
			var pid int
			fmt.Sscan(filepath.Base(d), &pid)
			pids = append(pids, pid)
		}
	}
	return pids
}

// openers names the processes that have path open ("PID STATE CMDLINE").
func openers(path string) []string {
	fds, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	var out []string
	for _, fd := range fds {
		if link, err := os.Readlink(fd); err == nil && link == path {
			dir := filepath.Dir(filepath.Dir(fd))
			cmd, _ := os.ReadFile(dir + "/cmdline")
			stat, _ := os.ReadFile(dir + "/stat")
			out = append(out, fmt.Sprintf("%s %q %q", filepath.Base(dir), strings.ReplaceAll(string(cmd), "\x00", " "), stat))
		}
	}
	return out
}

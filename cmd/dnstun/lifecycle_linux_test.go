// SPDX-License-Identifier: MIT

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dnstun/dnstun/control"
	"github.com/dnstun/dnstun/internal/demo"
	"github.com/dnstun/dnstun/service"
	"github.com/miekg/dns"
)

// ctl runs a control verb of the test binary (as `dnstun VERB`) against the
// lab's daemon and returns its output.
func ctl(t *testing.T, l *demo.Lab, verb string, args ...string) (string, error) {
	t.Helper()
	exe, _ := os.Executable()
	cmd := exec.Command(exe, append([]string{verb, "--control", l.ControlPath()}, args...)...)
	cmd.Env = append(os.Environ(), "DNSTUN_TEST_MAIN=1")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func client(t *testing.T, l *demo.Lab) *control.Client {
	t.Helper()
	c, err := control.Dial(l.ControlPath())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func tunExists(l *demo.Lab) bool {
	return l.Host.Command(context.Background(), "ip", "link", "show", "dnstun0").Run() == nil
}

// TestLifecycleEnableDisableEnable toggles filtering through the control
// socket while a client keeps querying: disabled means no TUN and no rules
// (queries go straight to the resolver), enabled means filtered, and the
// process stays the same.
func TestLifecycleEnableDisableEnable(t *testing.T) {
	l := captureLab(t)
	startCapture(t, l)
	pid := l.Dnstun.Pid()
	var answered, failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // a client querying all along
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			if r, _, err := l.Query(demo.Primary, "www.example.com", dns.TypeA, 2*time.Second); err == nil && r.Rcode == dns.RcodeSuccess {
				answered.Add(1)
			} else {
				failed.Add(1)
			}
		}
	}()
	blocked := func() string {
		return demo.AnswerText(ask(t, l, "udp", demo.Primary, "ads.doubleclick.net", dns.TypeA))
	}
	if got := blocked(); got != "NXDOMAIN" {
		t.Fatalf("enabled: %s", got)
	}
	for round := range 2 {
		if out, err := ctl(t, l, "disable"); err != nil {
			t.Fatalf("disable: %v %s", err, out)
		}
		out, err := ctl(t, l, "status")
		if err != nil || !strings.HasPrefix(out, "disabled\n") {
			t.Fatalf("status after disable: %v %q", err, out)
		}
		if tunExists(l) {
			t.Error("disabled, but dnstun0 exists")
		}
		if rules, _ := l.Host.Command(context.Background(), "ip", "rule").Output(); strings.Contains(string(rules), "53053") {
			t.Errorf("disabled, but rules remain:\n%s", rules)
		}
		if got := blocked(); got != "192.0.2.66" {
			t.Errorf("round %d disabled: %s, want the resolver's own answer", round, got)
		}
		if out, err := ctl(t, l, "enable"); err != nil {
			t.Fatalf("enable: %v %s", err, out)
		}
		deadline := time.Now().Add(3 * time.Second)
		for blocked() != "NXDOMAIN" {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: not filtering after enable", round)
			}
			time.Sleep(20 * time.Millisecond)
		}
		st, err := client(t, l).Status(context.Background())
		if err != nil || !st.Enabled || st.Steering != "capture" || st.PID != pid {
			t.Errorf("status after enable: %+v %v (pid want %d)", st, err, pid)
		}
	}
	close(stop)
	wg.Wait()
	if failed.Load() != 0 || answered.Load() == 0 {
		t.Errorf("the client's queries during the toggles: %d answered, %d failed", answered.Load(), failed.Load())
	}
	if l.Dnstun.Pid() != pid {
		t.Error("the process changed")
	}
}

// TestLifecyclePersistedState restarts dnstun: a disabled dnstun starts
// disabled, an enabled one enabled; with --exit-when-disabled a disabled
// dnstun does not stay.
func TestLifecyclePersistedState(t *testing.T) {
	l := captureLab(t)
	startCapture(t, l)
	if out, err := ctl(t, l, "disable"); err != nil {
		t.Fatalf("disable: %v %s", err, out)
	}
	if err := l.StopDnstun(); err != nil {
		t.Fatal(err)
	}
	// Started again, it stays disabled: it comes up with the control
	// socket and no TUN.
	exe, _ := os.Executable()
	args := []string{"--capture", "--state-dir", stateDir(l), "--resolv-conf", filepath.Join(l.Dir, "resolv.conf")}
	cmd := l.Host.Command(context.Background(), exe, append([]string{"run", "--control", l.ControlPath(), "--state-file", filepath.Join(l.Dir, "state.json")}, args...)...)
	cmd.Env = append(os.Environ(), "DNSTUN_TEST_MAIN=1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	var st control.Status
	deadline := time.Now().Add(5 * time.Second)
	for {
		if c, err := control.Dial(l.ControlPath()); err == nil {
			st, err = c.Status(context.Background())
			c.Close()
			if err == nil {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no control socket after restart")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st.Enabled || tunExists(l) {
		t.Errorf("restarted after disable: enabled=%v tun=%v, want disabled", st.Enabled, tunExists(l))
	}
	if out, err := ctl(t, l, "enable"); err != nil {
		t.Fatalf("enable: %v %s", err, out)
	}
	if out, err := ctl(t, l, "stop"); err != nil {
		t.Fatalf("stop: %v %s", err, out)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("after stop: %v", err)
	}
	// Enabled is persisted too.
	startCapture(t, l)
	if got := demo.AnswerText(ask(t, l, "udp", demo.Primary, "ads.doubleclick.net", dns.TypeA)); got != "NXDOMAIN" {
		t.Errorf("restarted after enable: %s", got)
	}
	if out, err := ctl(t, l, "disable"); err != nil {
		t.Fatalf("disable: %v %s", err, out)
	}
	l.StopDnstun()
	// --exit-when-disabled: a disabled dnstun exits with the status the
	// service manager is told not to restart on.
	cmd = l.Host.Command(context.Background(), exe, append([]string{"run", "--exit-when-disabled", "--control", l.ControlPath(), "--state-file", filepath.Join(l.Dir, "state.json")}, args...)...)
	cmd.Env = append(os.Environ(), "DNSTUN_TEST_MAIN=1")
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != service.ExitDisabled {
		t.Errorf("--exit-when-disabled while disabled: %v, want exit status %d", err, service.ExitDisabled)
	}
}

// TestListWatch: a list file changed on disk is reloaded without a signal,
// whether rewritten in place or replaced by a rename; a file that is not
// a list leaves the old set serving.
func TestListWatch(t *testing.T) {
	l := captureLab(t)
	cfg := filepath.Join(l.Dir, "dnstun.yaml")
	list := filepath.Join(l.Dir, "watched.txt")
	if err := os.WriteFile(list, []byte("doubleclick.net\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(cfg, []byte("blocklists: ["+list+"]\nlist_watch: 100ms\n"), 0o644)
	startCapture(t, l, "--config", cfg)
	// blocked: answered NXDOMAIN without reaching the upstream.
	blocked := func(name string) bool {
		before := l.PrimaryServer.QueriesFor(name)
		return demo.AnswerText(ask(t, l, "udp", demo.Primary, name, dns.TypeA)) == "NXDOMAIN" && l.PrimaryServer.QueriesFor(name) == before
	}
	waitBlocked := func(name string) time.Duration {
		t0 := time.Now()
		for time.Since(t0) < 10*time.Second {
			if blocked(name) {
				return time.Since(t0)
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("%s not blocked 10 s after its list changed on disk\n%s", name, l.Log())
		return 0
	}
	if blocked("inplace.example") || !blocked("ads.doubleclick.net") {
		t.Fatal("before the change: inplace.example should be forwarded, ads.doubleclick.net blocked")
	}
	// Rewritten in place (same inode).
	if err := os.WriteFile(list, []byte("doubleclick.net\ninplace.example\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("rewritten in place: blocked after %v", waitBlocked("inplace.example").Round(time.Millisecond))
	// Replaced by a rename (a new inode), as editors and downloaders do.
	tmp := list + ".new"
	os.WriteFile(tmp, []byte("doubleclick.net\ninplace.example\nrenamed.example\n"), 0o644)
	if err := os.Rename(tmp, list); err != nil {
		t.Fatal(err)
	}
	t.Logf("renamed over: blocked after %v", waitBlocked("renamed.example").Round(time.Millisecond))
	// Not a list: refused, the old set keeps serving.
	os.WriteFile(list, []byte("<html><body>502 Bad Gateway</body></html>\n"), 0o644)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(l.Log(), "lists not reloaded") {
		if time.Now().After(deadline) {
			t.Fatalf("a broken list file was not reported\n%s", l.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !blocked("renamed.example") || !blocked("ads.doubleclick.net") {
		t.Errorf("after a broken list file the previous set should serve")
	}
}

// classifyBlockedOrForwarded names an answer to name: "blocked" (NXDOMAIN
// without records), "forwarded" (the upstream's own record for it, from
// forwarded), or "wrong answer ...".
func classifyBlockedOrForwarded(forwarded map[string]string) func(name string, m *dns.Msg) string {
	return func(name string, m *dns.Msg) string {
		switch {
		case m.Rcode == dns.RcodeNameError && len(m.Answer) == 0:
			return "blocked"
		case m.Rcode == dns.RcodeSuccess && forwarded[name] != "" && demo.AnswerText(m) == forwarded[name]:
			return "forwarded"
		}
		return "wrong answer " + demo.AnswerText(m)
	}
}

// reloadWindow is a time in which only one list was live: from the return
// of the reload that made it live to the start of the next.
type reloadWindow struct {
	from, to time.Time
	list     string
}

// checkReloadWindows checks answers given while lists were swapped: each
// must be what one of the two lists decides, and one asked and answered
// within a window what that window's list decides. It returns the wrong
// answers by what was wrong, the answers checked per window, and how many
// were checked against a single list.
func checkReloadWindows(res []loadResult, windows []reloadWindow, decides map[string]map[string]string, listA, listB string) (bad map[string]int, inWindow []int, strict int) {
	bad = map[string]int{}
	inWindow = make([]int, len(windows))
	for _, r := range res {
		if strings.HasPrefix(r.got, "error") || strings.HasPrefix(r.got, "wrong") {
			bad[r.name+": "+r.got]++
			continue
		}
		if r.got != decides[listA][r.name] && r.got != decides[listB][r.name] {
			bad[r.name+": "+r.got+" (neither list decides so)"]++
			continue
		}
		for i, w := range windows {
			if r.sent.After(w.from) && r.recv.Before(w.to) {
				strict++
				inWindow[i]++
				if want := decides[w.list][r.name]; r.got != want {
					bad[fmt.Sprintf("%s: %s while only %s was live (window %d), want %s", r.name, r.got, filepath.Base(w.list), i, want)]++
				}
			}
		}
	}
	return bad, inWindow, strict
}

// TestLifecycleReload reloads a configuration file: a broken one is
// refused and the old one keeps answering; good ones take effect, and 20
// reloads under load, swapping lists that decide two names the opposite
// way, lose no query and never give a wrong answer.
func TestLifecycleReload(t *testing.T) {
	l := captureLab(t)
	cfg := filepath.Join(l.Dir, "dnstun.yaml")
	listA := filepath.Join(l.Dir, "a.txt")
	listB := filepath.Join(l.Dir, "b.txt")
	// A blocks mail.example.com, B blocks www.example.com (and
	// newblock.example); both block doubleclick.net.
	os.WriteFile(listA, []byte("doubleclick.net\nmail.example.com\n"), 0o644)
	os.WriteFile(listB, []byte("doubleclick.net\nnewblock.example\nwww.example.com\n"), 0o644)
	write := func(body string) {
		if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("blocklists: [" + listA + "]\n")
	// The clients below ask as fast as they are answered, from one
	// address: no --client-rate bound, which this test is not about.
	startCapture(t, l, "--config", cfg, "--client-rate", "0")
	if got := demo.AnswerText(ask(t, l, "udp", demo.Primary, "newblock.example", dns.TypeA)); got != "NXDOMAIN" || l.PrimaryServer.QueriesFor("newblock.example") != 1 {
		t.Fatalf("before reload, newblock.example should be forwarded (upstream NXDOMAIN): %s", got)
	}
	write("blocklist: [" + listB + "]\n") // a typo: unknown key
	out, err := ctl(t, l, "reload")
	if err == nil || !strings.Contains(out, "dnstun.yaml:1") || !strings.Contains(out, "blocklists") {
		t.Errorf("broken config: %v %q, want a refusal naming the line and the right key", err, out)
	}
	if got := demo.AnswerText(ask(t, l, "udp", demo.Primary, "ads.doubleclick.net", dns.TypeA)); got != "NXDOMAIN" {
		t.Errorf("after a refused reload the old config should serve: %s", got)
	}

	// What each list version answers for each name under load: forwarded
	// is the upstream's own record, blocked is NXDOMAIN without records.
	forwarded := map[string]string{"www.example.com": "192.0.2.80", "mail.example.com": "192.0.2.25"}
	decides := map[string]map[string]string{
		listA: {"www.example.com": "forwarded", "mail.example.com": "blocked", "ads.doubleclick.net": "blocked"},
		listB: {"www.example.com": "blocked", "mail.example.com": "forwarded", "ads.doubleclick.net": "blocked"},
	}
	names := []string{"www.example.com", "mail.example.com", "ads.doubleclick.net"}
	classify := classifyBlockedOrForwarded(forwarded)

	// 20 reloads, alternating lists, under a closed-loop load of 8
	// clients that runs until the last reload has settled. windows[i] is
	// a time in which only one list was live: from the return of its
	// reload to the start of the next.
	windows := []reloadWindow{{from: time.Now(), list: listA}}
	stop := make(chan struct{})
	results := make([][]loadResult, 8)
	var answered atomic.Int64
	var wg sync.WaitGroup
	for w := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := l.Host.Dial("udp", demo.Primary.String())
			if err != nil {
				results[w] = append(results[w], loadResult{got: "error " + err.Error()})
				return
			}
			defer c.Close()
			cl := &dns.Client{Timeout: time.Second}
			for i := w; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				name := names[i%len(names)]
				m := new(dns.Msg)
				m.SetQuestion(dns.Fqdn(name), dns.TypeA)
				r := loadResult{name: name, sent: time.Now()}
				resp, _, err := cl.ExchangeWithConn(m, &dns.Conn{Conn: c})
				r.recv = time.Now()
				if err != nil {
					r.got = "error " + err.Error()
				} else {
					r.got = classify(name, resp)
				}
				results[w] = append(results[w], r)
				answered.Add(1)
			}
		}()
	}
	// The first window, too, gets answers before the first reload.
	for deadline := time.Now().Add(5 * time.Second); answered.Load() < 100 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	for i := range 20 {
		list := listA
		if i%2 == 0 {
			list = listB
		}
		windows[len(windows)-1].to = time.Now()
		write("blocklists: [" + list + "]\n")
		if out, err := ctl(t, l, "reload"); err != nil {
			close(stop)
			wg.Wait()
			t.Fatalf("reload %d: %v %s", i, err, out)
		}
		windows = append(windows, reloadWindow{from: time.Now(), list: list})
		time.Sleep(100 * time.Millisecond)
	}
	windows[len(windows)-1].to = time.Now()
	close(stop)
	wg.Wait()

	var all []loadResult
	for _, rs := range results {
		all = append(all, rs...)
	}
	total := len(all)
	bad, inWindow, strict := checkReloadWindows(all, windows, decides, listA, listB)
	for what, n := range bad {
		t.Errorf("during 20 reloads, %d times %s", n, what)
	}
	for i, n := range inWindow {
		if n == 0 {
			t.Errorf("no query answered within window %d (%s live from %v for %v): the load did not cover it",
				i, filepath.Base(windows[i].list), windows[i].from.Format("15:04:05.000"), windows[i].to.Sub(windows[i].from))
		}
	}
	t.Logf("during 20 reloads: %d queries, %d of them checked against the single live list", total, strict)

	// The last reload (i=19) used list A; one more with B: the new rules
	// answer at once.
	write("blocklists: [" + listB + "]\n")
	if out, err := ctl(t, l, "reload"); err != nil {
		t.Fatalf("reload: %v %s", err, out)
	}
	for _, name := range names {
		want := decides[listB][name]
		if got := classify(name, ask(t, l, "udp", demo.Primary, name, dns.TypeA)); got != want {
			t.Errorf("right after the last reload, %s: %s, want %s", name, got, want)
		}
	}
	if got := demo.AnswerText(ask(t, l, "udp", demo.Primary, "newblock.example", dns.TypeA)); got != "NXDOMAIN" || l.PrimaryServer.QueriesFor("newblock.example") != 1 {
		t.Errorf("after reload, newblock.example should be blocked: %s (upstream saw %d)", got, l.PrimaryServer.QueriesFor("newblock.example"))
	}
	// stats and status --json through the real socket.
	if out, err := ctl(t, l, "stats"); err != nil || !strings.Contains(out, "blocked: ") || !strings.Contains(out, "forwarded: ") {
		t.Errorf("stats: %v\n%s", err, out)
	}
	if out, err := ctl(t, l, "status", "--json"); err != nil || !strings.Contains(out, `"enabled":true`) || !strings.Contains(out, `"steering":"capture"`) {
		t.Errorf("status --json: %v\n%s", err, out)
	}
	if out, err := ctl(t, l, "querylog", "-n", "3"); err != nil || !strings.Contains(out, "newblock.example") || !strings.Contains(out, "DECISION") {
		t.Errorf("querylog: %v\n%s", err, out)
	}
	// The query log saw it.
	entries, err := client(t, l).QueryLog(context.Background(), 5)
	if err != nil || len(entries) == 0 || entries[len(entries)-1].Name != "newblock.example" || entries[len(entries)-1].Decision != "block" {
		t.Errorf("query log: %+v %v", entries, err)
	}
}

// TestInstallIntoRoot installs into a temporary root (DESTDIR-style) and
// uninstalls again.
func TestInstallIntoRoot(t *testing.T) {
	root := t.TempDir()
	exe, _ := os.Executable()
	run := func(args ...string) string {
		cmd := exec.Command(exe, args...)
		cmd.Env = append(os.Environ(), "DNSTUN_TEST_MAIN=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	out := run("install", "--root", root)
	for _, p := range []string{"usr/local/bin/dnstun", "etc/dnstun/dnstun.yaml", "etc/systemd/system/dnstun.service"} {
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			t.Errorf("install: %s missing: %v\n%s", p, err, out)
		}
	}
	if !strings.Contains(out, "systemctl enable dnstun.service") {
		t.Errorf("install does not enable the unit:\n%s", out)
	}
	os.WriteFile(filepath.Join(root, "etc/dnstun/dnstun.yaml"), []byte("log_level: debug\n"), 0o644)
	run("install", "--root", root) // a reinstall keeps the user's config
	if b, _ := os.ReadFile(filepath.Join(root, "etc/dnstun/dnstun.yaml")); string(b) != "log_level: debug\n" {
		t.Errorf("reinstall overwrote the config: %q", b)
	}
	run("uninstall", "--root", root)
	if _, err := os.Stat(filepath.Join(root, "usr/local/bin/dnstun")); err == nil {
		t.Error("uninstall left the binary")
	}
	if _, err := os.Stat(filepath.Join(root, "etc/dnstun/dnstun.yaml")); err != nil {
		t.Error("uninstall removed the config without --purge")
	}
	run("uninstall", "--root", root, "--purge")
	if _, err := os.Stat(filepath.Join(root, "etc/dnstun/dnstun.yaml")); err == nil {
		t.Error("uninstall --purge kept the config")
	}
}

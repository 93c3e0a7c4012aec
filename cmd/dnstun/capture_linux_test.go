// SPDX-License-Identifier: MIT

package main

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dnstun/dnstun/control"
	"github.com/dnstun/dnstun/internal/demo"
	"github.com/dnstun/dnstun/internal/dnstest"
	"github.com/dnstun/dnstun/internal/lab"
	"github.com/dnstun/dnstun/internal/privtest"
	"github.com/miekg/dns"
	"golang.org/x/sys/unix"
)

type syscallRawConn = syscall.RawConn

// captureLab builds the lab without starting dnstun; the state directory
// and the resolv.conf dnstun reads live in the lab's folder.
func captureLab(t *testing.T) *demo.Lab {
	t.Helper()
	privtest.RequirePriv(t)
	l, err := demo.NewLab("dnstun-cap")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	if err := os.WriteFile(filepath.Join(l.Dir, "resolv.conf"), []byte("nameserver "+demo.OffLink4.Addr().String()+"\nnameserver 127.0.0.53\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return l
}

func stateDir(l *demo.Lab) string { return filepath.Join(l.Dir, "state") }

// startCapture runs `dnstun run --capture` in the lab and waits until the
// steering is in place.
func startCapture(t *testing.T, l *demo.Lab, args ...string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	full := append([]string{"--capture", "--state-dir", stateDir(l), "--resolv-conf", filepath.Join(l.Dir, "resolv.conf"), "--log-level", "info"}, args...)
	lists := map[string]string{"list.txt": demo.Blocklist}
	if slices.Contains(args, "--config") {
		lists = nil // the file names its lists; a --blocklist flag would override them
	}
	if err := l.StartDnstun(context.Background(), []string{exe}, []string{"DNSTUN_TEST_MAIN=1"}, lists, full...); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(l.Log(), "capture on") {
		if time.Now().After(deadline) {
			t.Fatalf("capture did not come on:\n%s", l.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// snapshot is the host namespace's routing and filtering state: rules,
// routes of every table, the nftables ruleset and the per-device and
// global sysctls of net.ipv4/ipv6.conf.
func snapshot(t *testing.T, l *demo.Lab) string {
	t.Helper()
	var b strings.Builder
	for _, c := range [][]string{
		{"ip", "-j", "-4", "rule"},
		{"ip", "-j", "-6", "rule"},
		{"ip", "-j", "-4", "route", "show", "table", "all"},
		{"ip", "-j", "-6", "route", "show", "table", "all"},
		{"sysctl", "-a", "--pattern", `^net\.ipv[46]\.conf\.`},
		{"nft", "-j", "list", "ruleset"},
	} {
		if c[0] == "nft" {
			if _, err := exec.LookPath("nft"); err != nil {
				continue
			}
		}
		out, err := l.Host.Command(context.Background(), c[0], c[1:]...).Output()
		if err != nil {
			t.Fatalf("%v: %v", c, err)
		}
		b.WriteString(strings.Join(c, " ") + "\n" + string(out) + "\n")
	}
	return b.String()
}

func sameSnapshot(t *testing.T, when, before, after string) {
	t.Helper()
	if before == after {
		return
	}
	bl, al := strings.Split(before, "\n"), strings.Split(after, "\n")
	for i := range min(len(bl), len(al)) {
		if bl[i] != al[i] {
			t.Fatalf("%s: state differs from before start, first at line %d:\nbefore: %s\nafter:  %s", when, i, bl[i], al[i])
		}
	}
	t.Fatalf("%s: state differs from before start (length %d vs %d lines)", when, len(bl), len(al))
}

// ask queries server from the host namespace, over udp or tcp.
func ask(t *testing.T, l *demo.Lab, network string, server netip.AddrPort, name string, qtype uint16) *dns.Msg {
	t.Helper()
	c, err := l.Host.Dial(network, server.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	r, _, err := (&dns.Client{Net: network, Timeout: 3 * time.Second}).ExchangeWithConn(m, &dns.Conn{Conn: c})
	if err != nil {
		t.Fatalf("%s query %s via %v: %v", network, name, server, err)
	}
	return r
}

func TestCapturePassThroughNoLoop(t *testing.T) {
	l := captureLab(t)
	startCapture(t, l)
	for _, s := range []struct {
		addr  netip.AddrPort
		srv   *dnstest.Server
		qtype uint16
		want  string
	}{
		{demo.Primary, l.PrimaryServer, dns.TypeA, "192.0.2.80"},          // on-link gateway, IPv4
		{demo.OffLink4, l.OffLink4Server, dns.TypeA, "192.0.2.80"},        // off-link, IPv4
		{demo.Secondary, l.SecondaryServer, dns.TypeAAAA, "2001:db8::80"}, // on-link, IPv6
		{demo.OffLink6, l.OffLink6Server, dns.TypeAAAA, "2001:db8::80"},   // off-link, IPv6
	} {
		before := s.srv.QueriesFor("www.example.com")
		if got := demo.AnswerText(ask(t, l, "udp", s.addr, "www.example.com", s.qtype)); got != s.want {
			t.Errorf("via %v: %s, want %s", s.addr, got, s.want)
		}
		// Pass-through and no loop: the resolver asked sees the query
		// exactly once.
		if n := s.srv.QueriesFor("www.example.com") - before; n != 1 {
			t.Errorf("via %v: the upstream saw %d queries, want exactly 1", s.addr, n)
		}
		// Captured and decided: the blocked name never reaches it.
		if got := demo.AnswerText(ask(t, l, "udp", s.addr, "ads.doubleclick.net", s.qtype)); got != "NXDOMAIN" {
			t.Errorf("blocked via %v: %s, want NXDOMAIN", s.addr, got)
		}
		if n := s.srv.QueriesFor("ads.doubleclick.net"); n != 0 {
			t.Errorf("blocked via %v: the upstream saw it %d times", s.addr, n)
		}
	}
	// TCP/53 is captured too: decided by dnstun, and passed through over
	// TCP to the resolver the client chose, exactly once.
	for _, s := range []struct {
		addr  netip.AddrPort
		srv   *dnstest.Server
		qtype uint16
		want  string
	}{
		{demo.OffLink4, l.TCPServer, dns.TypeA, "192.0.2.80"},
		{demo.Secondary, l.SecondaryTCP, dns.TypeAAAA, "2001:db8::80"},
	} {
		before := s.srv.QueriesFor("www.example.com")
		if got := demo.AnswerText(ask(t, l, "tcp", s.addr, "www.example.com", s.qtype)); got != s.want {
			t.Errorf("TCP via %v: %s, want %s", s.addr, got, s.want)
		}
		if n := s.srv.QueriesFor("www.example.com") - before; n != 1 {
			t.Errorf("TCP via %v: the upstream saw %d queries over TCP, want exactly 1", s.addr, n)
		}
		if got := demo.AnswerText(ask(t, l, "tcp", s.addr, "ads.doubleclick.net", s.qtype)); got != "NXDOMAIN" {
			t.Errorf("blocked over TCP via %v: %s, want NXDOMAIN", s.addr, got)
		}
		if n := s.srv.QueriesFor("ads.doubleclick.net"); n != 0 {
			t.Errorf("blocked over TCP via %v: the upstream saw it %d times", s.addr, n)
		}
	}
}

func TestCaptureOverride(t *testing.T) {
	l := captureLab(t)
	startCapture(t, l, "--upstream", demo.OffLink4.String())
	if got := demo.AnswerText(ask(t, l, "udp", demo.Primary, "mail.example.com", dns.TypeA)); got != "192.0.2.25" {
		t.Fatalf("answer %s", got)
	}
	if p, o := l.PrimaryServer.QueriesFor("mail.example.com"), l.OffLink4Server.QueriesFor("mail.example.com"); p != 0 || o != 1 {
		t.Errorf("override: the resolver asked saw %d, --upstream saw %d; want 0 and 1", p, o)
	}
}

func TestCaptureRestoresOnStopKillAndCleanup(t *testing.T) {
	l := captureLab(t)
	before := snapshot(t, l)
	startCapture(t, l)
	if snapshot(t, l) == before {
		t.Fatal("capture changed nothing")
	}
	if err := l.StopDnstun(); err != nil {
		t.Fatalf("SIGTERM: %v\n%s", err, l.Log())
	}
	sameSnapshot(t, "after SIGTERM", before, snapshot(t, l))

	// kill -9: DNS works again at once, answered by the upstream itself.
	startCapture(t, l)
	if got := demo.AnswerText(ask(t, l, "udp", demo.OffLink4, "ads.doubleclick.net", dns.TypeA)); got != "NXDOMAIN" {
		t.Fatalf("not captured before the kill: %s", got)
	}
	if got := demo.AnswerText(ask(t, l, "tcp", demo.OffLink4, "ads.doubleclick.net", dns.TypeA)); got != "NXDOMAIN" {
		t.Fatalf("TCP not captured before the kill: %s", got)
	}
	l.Dnstun.Kill()
	start := time.Now()
	if got := demo.AnswerText(ask(t, l, "udp", demo.OffLink4, "ads.doubleclick.net", dns.TypeA)); got != "192.0.2.66" {
		t.Errorf("right after kill -9: %s, want the upstream's own answer", got)
	}
	if got := demo.AnswerText(ask(t, l, "tcp", demo.OffLink4, "ads.doubleclick.net", dns.TypeA)); got != "192.0.2.66" {
		t.Errorf("TCP right after kill -9: %s, want the upstream's own answer", got)
	}
	if got := demo.AnswerText(ask(t, l, "udp", demo.Secondary, "www.example.com", dns.TypeAAAA)); got != "2001:db8::80" {
		t.Errorf("IPv6 right after kill -9: %s", got)
	}
	t.Logf("DNS answered directly %v after kill -9, before any cleanup", time.Since(start))
	exe, _ := os.Executable()
	cmd := l.Host.Command(context.Background(), exe, "cleanup", "--state-dir", stateDir(l))
	cmd.Env = append(os.Environ(), "DNSTUN_TEST_MAIN=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("dnstun cleanup: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "removed rule") {
		t.Errorf("cleanup removed no stale rule:\n%s", out)
	}
	sameSnapshot(t, "after kill -9 and cleanup", before, snapshot(t, l))

	// And it starts again.
	startCapture(t, l)
	if got := demo.AnswerText(ask(t, l, "udp", demo.OffLink4, "ads.doubleclick.net", dns.TypeA)); got != "NXDOMAIN" {
		t.Errorf("after restart: %s", got)
	}
	// A running instance holds the lock: cleanup refuses.
	cmd = l.Host.Command(context.Background(), exe, "cleanup", "--state-dir", stateDir(l))
	cmd.Env = append(os.Environ(), "DNSTUN_TEST_MAIN=1")
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "another dnstun instance") {
		t.Errorf("cleanup next to a live instance: %v\n%s", err, out)
	}
}

func TestCaptureRuleDeletedFromOutsideIsRestored(t *testing.T) {
	l := captureLab(t)
	startCapture(t, l)
	if err := l.Host.IP("-4", "rule", "del", "pref", "5101"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Second)
	for {
		out, _ := l.Host.Command(context.Background(), "ip", "-4", "rule", "show", "pref", "5101").Output()
		if strings.Contains(string(out), "lookup 53053") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the deleted rule was not back within 1 s:\n%s", l.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := demo.AnswerText(ask(t, l, "udp", demo.Primary, "ads.doubleclick.net", dns.TypeA)); got != "NXDOMAIN" {
		t.Errorf("after the rule came back: %s", got)
	}
}

func TestCaptureWithStrictReversePathFilter(t *testing.T) {
	l := captureLab(t)
	for _, k := range []string{"net.ipv4.conf.all.rp_filter=1", "net.ipv4.conf.default.rp_filter=1", "net.ipv4.conf." + lab.HostIf + ".rp_filter=1"} {
		if out, err := l.Host.Command(context.Background(), "sysctl", "-w", k).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v %s", k, err, out)
		}
	}
	startCapture(t, l)
	if got := demo.AnswerText(ask(t, l, "udp", demo.Primary, "www.example.com", dns.TypeA)); got != "192.0.2.80" {
		t.Errorf("forwarded under strict rp_filter: %s", got)
	}
	if got := demo.AnswerText(ask(t, l, "udp", demo.OffLink4, "pixel.tracker.example", dns.TypeA)); got != "NXDOMAIN" {
		t.Errorf("blocked under strict rp_filter: %s", got)
	}
}

// askUnicastIf sends a query from a socket pinned to lab.HostIf with
// IP_UNICAST_IF, as systemd-resolved's per-link sockets are: policy rules
// cannot see such sockets; only the nftables table catches them.
func askUnicastIf(t *testing.T, l *demo.Lab, name string) string {
	t.Helper()
	var c net.Conn
	err := l.Host.Do(func() error {
		ifi, err := net.InterfaceByName(lab.HostIf)
		if err != nil {
			return err
		}
		d := net.Dialer{Control: func(network, address string, rc syscallRawConn) error {
			var serr error
			rc.Control(func(fd uintptr) {
				// The IPv4 option takes the index in network byte order.
				var be [4]byte
				binary.BigEndian.PutUint32(be[:], uint32(ifi.Index))
				idx := int(binary.NativeEndian.Uint32(be[:]))
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_UNICAST_IF, idx)
			})
			return serr
		}}
		c, err = d.Dial("udp", demo.Primary.String())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeA)
	r, _, err := (&dns.Client{Timeout: 3 * time.Second}).ExchangeWithConn(m, &dns.Conn{Conn: c})
	if err != nil {
		t.Fatal(err)
	}
	return demo.AnswerText(r)
}

func TestCaptureNFTCatchesPinnedSockets(t *testing.T) {
	privtest.RequirePriv(t)
	if _, err := exec.LookPath("nft"); err != nil {
		if os.Getenv(privtest.EnvRequire) == "1" {
			t.Fatal("nft (Debian package nftables) is needed for this test and DNSTUN_REQUIRE_PRIV=1 forbids skipping")
		}
		t.Skip("nft not installed (Debian package nftables)")
	}
	t.Run("with nftables", func(t *testing.T) {
		l := captureLab(t)
		startCapture(t, l)
		if got := askUnicastIf(t, l, "ads.doubleclick.net"); got != "NXDOMAIN" {
			t.Errorf("IP_UNICAST_IF socket with nftables: %s, want NXDOMAIN (captured)", got)
		}
	})
	t.Run("rules only", func(t *testing.T) {
		l := captureLab(t)
		startCapture(t, l, "--nft=false")
		if got := askUnicastIf(t, l, "ads.doubleclick.net"); got != "192.0.2.66" {
			t.Errorf("IP_UNICAST_IF socket without nftables: %s, want the upstream's answer (not captured)", got)
		}
	})
}

// TestCaptureFollowsResolverAndRouteChanges changes the system's resolvers
// and the default route while dnstun runs: no restart is needed.
func TestCaptureFollowsResolverAndRouteChanges(t *testing.T) {
	l := captureLab(t)
	startCapture(t, l)
	// Queries to dnstun's own address go to the system's resolver.
	if got := demo.AnswerText(ask(t, l, "udp", demo.Resolver4, "mail.example.com", dns.TypeA)); got != "192.0.2.25" || l.OffLink4Server.QueriesFor("mail.example.com") != 1 {
		t.Fatalf("before: %s, off-link server saw %d", got, l.OffLink4Server.QueriesFor("mail.example.com"))
	}
	if err := os.WriteFile(filepath.Join(l.Dir, "resolv.conf"), []byte("nameserver "+demo.Primary.Addr().String()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(l.Log(), "resolvers changed") {
		if time.Now().After(deadline) {
			t.Fatalf("the resolv.conf change was not followed:\n%s", l.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := demo.AnswerText(ask(t, l, "udp", demo.Resolver4, "mail.example.com", dns.TypeA)); got != "192.0.2.25" || l.PrimaryServer.QueriesFor("mail.example.com") != 1 {
		t.Errorf("after: %s, the new resolver saw %d", got, l.PrimaryServer.QueriesFor("mail.example.com"))
	}
	// A new default route: steering does not depend on it.
	if err := l.Host.IP("route", "replace", "default", "via", demo.Primary.Addr().String(), "dev", lab.HostIf, "metric", "7"); err != nil {
		t.Fatal(err)
	}
	l.Host.IP("route", "del", "default", "via", demo.Primary.Addr().String(), "dev", lab.HostIf, "metric", "0")
	if got := demo.AnswerText(ask(t, l, "udp", demo.OffLink4, "www.example.com", dns.TypeA)); got != "192.0.2.80" {
		t.Errorf("after the default route changed: %s", got)
	}
	if got := demo.AnswerText(ask(t, l, "udp", demo.OffLink4, "ads.doubleclick.net", dns.TypeA)); got != "NXDOMAIN" {
		t.Errorf("blocked after the default route changed: %s", got)
	}
}

// TestCaptureKeepsLastGoodResolvers (issue 18, defect 3): with capture
// running, the namespace's resolv.conf is rewritten to list only dnstun's
// own resolver addresses (as macOS's global DNS does once capture
// publishes dnstun): forwarded names keep being answered by the last good
// upstream, and the log says why.
func TestCaptureKeepsLastGoodResolvers(t *testing.T) {
	l := captureLab(t)
	startCapture(t, l)
	if err := os.WriteFile(filepath.Join(l.Dir, "resolv.conf"), []byte("nameserver "+demo.Resolver4.Addr().String()+"\nnameserver "+demo.Resolver6.Addr().String()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitLog(t, l, "are only dnstun's own addresses (dnstun is the system resolver now); keeping the last good upstreams [198.51.100.53:53]")
	before := l.OffLink4Server.QueriesFor("mail.example.com")
	if got := demo.AnswerText(ask(t, l, "udp", demo.Resolver4, "mail.example.com", dns.TypeA)); got != "192.0.2.25" {
		t.Errorf("forwarded name after the rewrite: %s", got)
	}
	if n := l.OffLink4Server.QueriesFor("mail.example.com") - before; n != 1 {
		t.Errorf("the last good upstream saw %d queries, want 1", n)
	}
	if strings.Contains(l.Log(), "resolvers changed; following") {
		t.Errorf("followed a list of only dnstun's own addresses:\n%s", l.Log())
	}
}

// TestCaptureWatchdogWithdrawsWhileUpstreamsAreLost (issue 18): an
// upstream set that goes dead is caught by the watchdog's forwarded probe:
// the status says so, steering is withdrawn (the machine's DNS goes to its
// resolvers directly), and comes back once an upstream answers again.
func TestCaptureWatchdogWithdrawsWhileUpstreamsAreLost(t *testing.T) {
	l := captureLab(t)
	startCapture(t, l, "--watchdog", "100ms", "--timeout", "1s", "--upstream-timeout", "500ms")
	c := client(t, l)
	waitStatus := func(steering, health string) control.Status {
		t.Helper()
		var st control.Status
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			var err error
			if st, err = c.Status(context.Background()); err == nil && st.Steering == steering && st.Health == health {
				return st
			}
			if time.Now().After(deadline) {
				t.Fatalf("status %+v (%v), want steering %q, health %q\n%s", st, err, steering, health, l.Log())
			}
		}
	}
	steered := func() bool {
		out, err := l.Host.Command(context.Background(), "ip", "rule").Output()
		if err != nil {
			t.Fatal(err)
		}
		return strings.Contains(string(out), "lookup 53053")
	}
	waitStatus("capture", "ok")
	l.OffLink4Server.SetSilent(true)
	st := waitStatus("capture-withdrawn", "upstreams-lost")
	if !strings.Contains(st.Problem, "SERVFAIL") {
		t.Errorf("problem %q does not say why", st.Problem)
	}
	if steered() {
		t.Error("steering rules still in place while the upstreams are lost")
	}
	waitLog(t, l, "steering withdrawn until an upstream answers")
	l.OffLink4Server.SetSilent(false)
	waitStatus("capture", "ok")
	if !steered() {
		t.Error("steering rules not back after the upstream answered")
	}
	if got := demo.AnswerText(ask(t, l, "udp", demo.OffLink4, "ads.doubleclick.net", dns.TypeA)); got != "NXDOMAIN" {
		t.Errorf("a blocked name sent to the real resolver after steering came back: %s", got)
	}
}

// waitLog waits up to 10 s for dnstun's log to hold s.
func waitLog(t *testing.T, l *demo.Lab, s string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(l.Log(), s); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the log never said %q:\n%s", s, l.Log())
		}
	}
}

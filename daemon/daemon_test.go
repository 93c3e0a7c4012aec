// SPDX-License-Identifier: MIT

package daemon

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/dnstun/dnstun/control"
	"github.com/dnstun/dnstun/engine"

	"github.com/dnstun/dnstun/config"
	"github.com/dnstun/dnstun/internal/dnstest"
	"github.com/dnstun/dnstun/service"
	"github.com/miekg/dns"
)

// The daemon is tested in-process in flow mode: the same engine, lists,
// sessions and verbs as on a TUN, behind a UDP socket on loopback, so no
// privilege is needed. The TUN and capture paths are tested end to end in
// namespaces by cmd/dnstun.

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func upstreamServer(t *testing.T) *dnstest.Server {
	t.Helper()
	zone, err := dnstest.ParseZone("www.example.com. 300 IN A 192.0.2.80", "ads.example. 300 IN A 192.0.2.66")
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := dnstest.Serve(pc, zone)
	t.Cleanup(s.Close)
	return s
}

func freePort(t *testing.T) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	return netip.MustParseAddrPort(pc.LocalAddr().String())
}

// flowOptions are options for a flow-mode daemon on a free loopback port,
// with its files in dir.
func flowOptions(t *testing.T, dir string, up netip.AddrPort, rules ...string) *config.Options {
	t.Helper()
	f := config.Default()
	f.Mode = "flow"
	f.Listen = freePort(t).String()
	f.Upstreams = []string{up.String()}
	f.Rules = rules
	f.StateFile = filepath.Join(dir, "state.json")
	f.Control.Socket = ""
	f.ListWatch = 0
	o, err := f.Options()
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func ask(addr netip.AddrPort, name string) (*dns.Msg, error) {
	c := &dns.Client{Timeout: 500 * time.Millisecond}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeA)
	r, _, err := c.Exchange(m, addr.String())
	return r, err
}

// waitAnswer asks until an answer comes, for at most 5 s.
func waitAnswer(t *testing.T, addr netip.AddrPort, name string) *dns.Msg {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		r, err := ask(addr, name)
		if err == nil {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no answer from %v: %v", name, addr, err)
		}
	}
}

func startDaemon(t *testing.T, c Config) (*Daemon, chan error) {
	t.Helper()
	c.Logger = quiet
	d, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after its context ended")
		}
	})
	return d, done
}

func TestDaemonEnableDisableReloadStop(t *testing.T) {
	up := upstreamServer(t)
	dir := t.TempDir()
	o := flowOptions(t, dir, up.Addr(), "||ads.example^")
	next := o // what the reload reads
	d, done := startDaemon(t, Config{Options: o, Reload: func() (*config.Options, error) { return next, nil }})

	if r := waitAnswer(t, o.Listen, "www.example.com"); r.Rcode != dns.RcodeSuccess || strings.Join(dnstest.Addrs(r), ",") != "192.0.2.80" {
		t.Fatalf("forwarded name: %v", r)
	}
	if r := waitAnswer(t, o.Listen, "ads.example"); r.Rcode != dns.RcodeNameError {
		t.Fatalf("blocked name: rcode %d", r.Rcode)
	}
	if n := up.QueriesFor("ads.example."); n != 0 {
		t.Errorf("blocked name reached the upstream %d times", n)
	}
	st, _ := d.Status()
	if !st.Enabled || st.Steering != "flow" || st.Health != "ok" || len(st.Upstreams) != 1 || st.Counters["blocked"] != 1 {
		t.Errorf("status %+v", st)
	}

	// Disabled: no front-end, the choice persisted, the process alive.
	if err := d.Disable(); err != nil {
		t.Fatal(err)
	}
	if st, _ := d.Status(); st.Enabled {
		t.Error("still enabled after Disable")
	}
	if _, err := ask(o.Listen, "www.example.com"); err == nil {
		t.Error("answered while disabled")
	}
	if p, err := loadState(o.StateFile); err != nil || p.Enabled {
		t.Errorf("persisted %+v %v, want disabled", p, err)
	}
	if err := d.Enable(); err != nil {
		t.Fatal(err)
	}
	if r := waitAnswer(t, o.Listen, "www.example.com"); r.Rcode != dns.RcodeSuccess {
		t.Errorf("after enable: rcode %d", r.Rcode)
	}

	// A reload that fails keeps the running configuration.
	d.reload = func() (*config.Options, error) { return nil, errors.New("broken file") }
	if err := d.Reload(); err == nil || !strings.Contains(err.Error(), "broken file") {
		t.Errorf("reload of a broken configuration: %v", err)
	}
	if r := waitAnswer(t, o.Listen, "www.example.com"); r.Rcode != dns.RcodeSuccess {
		t.Errorf("after a refused reload: rcode %d", r.Rcode)
	}
	// A good one takes effect at once: www is now blocked, ads allowed.
	next = flowOptions(t, dir, up.Addr(), "||www.example.com^")
	next.Listen = o.Listen
	d.reload = func() (*config.Options, error) { return next, nil }
	if err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	if r := waitAnswer(t, o.Listen, "www.example.com"); r.Rcode != dns.RcodeNameError {
		t.Errorf("after reload, www: rcode %d, want NXDOMAIN", r.Rcode)
	}
	if r := waitAnswer(t, o.Listen, "ads.example"); r.Rcode != dns.RcodeSuccess {
		t.Errorf("after reload, ads: rcode %d, want the upstream's answer", r.Rcode)
	}
	if log, _ := d.QueryLog(control.QueryLogArgs{N: 100}); len(log.Entries) < 6 || log.Last != log.Entries[len(log.Entries)-1].Seq {
		t.Errorf("query log holds %d entries (last %d), want at least 6, the last numbered last", len(log.Entries), log.Last)
	}

	d.Stop()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run after Stop: %v", err)
		}
		done <- err // for the cleanup
	case <-time.After(10 * time.Second):
		t.Fatal("Stop did not end Run")
	}
}

func TestDaemonStartsInPersistedState(t *testing.T) {
	up := upstreamServer(t)
	dir := t.TempDir()
	o := flowOptions(t, dir, up.Addr())
	if err := saveState(o.StateFile, false); err != nil {
		t.Fatal(err)
	}
	d, _ := startDaemon(t, Config{Options: o})
	time.Sleep(100 * time.Millisecond)
	if st, _ := d.Status(); st.Enabled {
		t.Error("started enabled though disabled was persisted")
	}
	if _, err := ask(o.Listen, "www.example.com"); err == nil {
		t.Error("answered while disabled")
	}

	// With ExitWhenDisabled, Run ends at once with the service manager's
	// "do not restart" status.
	f := config.Default()
	f.Mode, f.Listen, f.Upstreams, f.StateFile, f.Control.Socket, f.ExitWhenDisabled = "flow", freePort(t).String(), []string{up.Addr().String()}, o.StateFile, "", true
	o2, err := f.Options()
	if err != nil {
		t.Fatal(err)
	}
	d2, err := New(Config{Options: o2, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	var ee ExitError
	if err := d2.Run(context.Background()); !errors.As(err, &ee) || ee.Code != service.ExitDisabledStatus(runtime.GOOS) {
		t.Errorf("Run: %v, want exit status %d", err, service.ExitDisabledStatus(runtime.GOOS))
	}
}

func TestNewRefusesUnusableSystemResolvers(t *testing.T) {
	dir := t.TempDir()
	f := config.Default()
	f.Mode, f.Listen, f.Control.Socket = "flow", freePort(t).String(), ""
	for _, tc := range []struct{ resolvConf, want string }{
		{"", "no upstream given"}, // missing file
		{"# nothing\n", "lists no usable nameserver"},
		{"nameserver 198.19.53.53\nnameserver fd64:6e73:7475::53\n", "only dnstun's own addresses"},
	} {
		f.ResolvConf = filepath.Join(dir, "resolv.conf")
		os.Remove(f.ResolvConf)
		if tc.resolvConf != "" {
			os.WriteFile(f.ResolvConf, []byte(tc.resolvConf), 0o644)
		}
		o, err := f.Options()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := New(Config{Options: o, Logger: quiet}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("resolv.conf %q: %v, want %q", tc.resolvConf, err, tc.want)
		}
	}
}

// TestFollowKeepsLastGoodResolvers: resolv.conf rewritten to list only
// dnstun's own address (as when dnstun becomes the system's resolver)
// keeps the last good upstreams; a real change is followed.
func TestFollowKeepsLastGoodResolvers(t *testing.T) {
	dir := t.TempDir()
	f := config.Default()
	f.Mode, f.Listen, f.Control.Socket, f.StateFile = "flow", freePort(t).String(), "", filepath.Join(dir, "state.json")
	f.ResolvConf = filepath.Join(dir, "resolv.conf")
	os.WriteFile(f.ResolvConf, []byte("nameserver 192.0.2.1\n"), 0o644)
	o, err := f.Options()
	if err != nil {
		t.Fatal(err)
	}
	var logBuf lockedBuffer
	d, err := New(Config{Options: o, Logger: slog.New(slog.NewTextHandler(&logBuf, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.enable(); err != nil {
		t.Fatal(err)
	}
	defer d.disable()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go d.followResolvers(ctx, d.on.e, 10*time.Millisecond)
	upstreamsNow := func() string {
		var s []string
		for _, u := range d.on.e.UpstreamStates() {
			s = append(s, u.URL)
		}
		return strings.Join(s, ",")
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s; upstreams %s; log:\n%s", what, upstreamsNow(), logBuf.String())
			}
		}
	}
	os.WriteFile(f.ResolvConf, []byte("nameserver 198.19.53.53\n"), 0o644)
	waitFor("no log line on a resolver list of only dnstun", func() bool {
		return strings.Contains(logBuf.String(), "are only dnstun's own addresses (dnstun is the system resolver now); keeping the last good upstreams [192.0.2.1:53]")
	})
	if got := upstreamsNow(); got != "192.0.2.1:53" {
		t.Errorf("upstreams %s, want the last good 192.0.2.1:53", got)
	}
	os.WriteFile(f.ResolvConf, []byte("nameserver 192.0.2.7\nnameserver 198.19.53.53\n"), 0o644)
	waitFor("a real change not followed", func() bool { return upstreamsNow() == "192.0.2.7:53" })
}

func TestHealthQuery(t *testing.T) {
	q, id := healthQuery(HealthName)
	var m dns.Msg
	if err := m.Unpack(q); err != nil {
		t.Fatal(err)
	}
	if m.Id != id || len(m.Question) != 1 || m.Question[0].Name != HealthName+"." || m.Question[0].Qtype != dns.TypeA || !m.RecursionDesired {
		t.Errorf("health query %v", &m)
	}
}

// TestWatchdogReportsLostUpstreams: an upstream that stops answering is
// reported lost in the status once the forwarded probes go unanswered,
// and cleared once it answers again; while upstream answers reach
// clients, no probe is sent.
func TestWatchdogReportsLostUpstreams(t *testing.T) {
	up := upstreamServer(t)
	f := config.Default()
	f.Mode, f.Listen, f.Upstreams, f.Control.Socket = "flow", freePort(t).String(), []string{up.Addr().String()}, ""
	f.StateFile = filepath.Join(t.TempDir(), "state.json")
	f.Capture.Watchdog, f.Timeout, f.UpstreamTimeout = 40*time.Millisecond, 300*time.Millisecond, 100*time.Millisecond
	// No cache: the repeated name must reach the upstream (answers from
	// the cache say nothing of it, and rightly leave the probes on).
	f.Cache = "0"
	o, err := f.Options()
	if err != nil {
		t.Fatal(err)
	}
	d, _ := startDaemon(t, Config{Options: o})
	waitAnswer(t, o.Listen, "www.example.com")
	status := func() string {
		st, _ := d.Status()
		return st.Health + ": " + st.Problem
	}
	waitStatus := func(want string) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !strings.HasPrefix(status(), want); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("status %q, want %q", status(), want)
			}
		}
	}
	// Answers reach clients: the watchdog sends nothing of its own.
	stop := time.Now().Add(time.Second)
	for time.Now().Before(stop) {
		if r, err := ask(o.Listen, "www.example.com"); err != nil || r.Rcode != dns.RcodeSuccess {
			t.Fatalf("query under load: %v %v", r, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := up.QueriesFor(ProbeName + "."); n != 0 {
		t.Errorf("%d probes sent while answers reached clients", n)
	}
	up.SetSilent(true)
	waitStatus("upstreams-lost: no upstream has answered since")
	if !strings.Contains(status(), "SERVFAIL") {
		t.Errorf("problem does not say why: %q", status())
	}
	up.SetSilent(false)
	waitStatus("ok: ")
	if up.QueriesFor(ProbeName+".") == 0 {
		t.Error("the upstream never saw a probe")
	}
}

// TestMetricsAcrossSessions: the metrics' counters never go back and never
// count twice across disable and enable: the engine's of ended sessions
// are kept, the cache's (which outlives sessions) are read from the cache;
// a scrape while disabled works.
func TestMetricsAcrossSessions(t *testing.T) {
	up := upstreamServer(t)
	dir := t.TempDir()
	o := flowOptions(t, dir, up.Addr())
	d, _ := startDaemon(t, Config{Options: o})
	waitAnswer(t, o.Listen, "www.example.com") // a cache miss, then cached
	before := d.metricsSnapshot()
	if before.Stats.Cache.Misses == 0 || before.Stats.Counters[engine.Forwarded] == 0 {
		t.Fatalf("first session: misses %d, forwarded %d", before.Stats.Cache.Misses, before.Stats.Counters[engine.Forwarded])
	}
	if err := d.Disable(); err != nil {
		t.Fatal(err)
	}
	off := d.metricsSnapshot()
	if off.Enabled || off.Stats.Cache.Misses != before.Stats.Cache.Misses || off.Stats.Counters[engine.Forwarded] != before.Stats.Counters[engine.Forwarded] {
		t.Errorf("disabled: enabled %v, misses %d, forwarded %d; want the first session's %d and %d",
			off.Enabled, off.Stats.Cache.Misses, off.Stats.Counters[engine.Forwarded], before.Stats.Cache.Misses, before.Stats.Counters[engine.Forwarded])
	}
	if err := d.Enable(); err != nil {
		t.Fatal(err)
	}
	waitAnswer(t, o.Listen, "mail.example.com") // one more miss
	after := d.metricsSnapshot()
	if after.Stats.Cache.Misses != before.Stats.Cache.Misses+1 {
		t.Errorf("cache misses %d after one more, want %d (counted once)", after.Stats.Cache.Misses, before.Stats.Cache.Misses+1)
	}
	if after.Stats.Counters[engine.Forwarded] != before.Stats.Counters[engine.Forwarded]+1 || len(after.Upstreams) != 1 {
		t.Errorf("forwarded %d, upstreams %d; want %d, 1", after.Stats.Counters[engine.Forwarded], len(after.Upstreams), before.Stats.Counters[engine.Forwarded]+1)
	}
}

// SPDX-License-Identifier: MIT

package route

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"time"
)

// CaptureConfig is what one capture period needs.
type CaptureConfig struct {
	Route    Config
	StateDir string // the journal's directory (the caller holds its lock)
	// Resolved says whether to register the TUN with systemd-resolved:
	// "on", "off", or "auto" (only when ResolvedIsSystem and dnstun runs
	// in the host's own network namespace, where resolved lives).
	Resolved         string
	ResolvedIsSystem bool
	// Watchdog is how often Probe runs once steering is on; after
	// WatchdogMisses failures in a row Stalled reports (0: no watchdog).
	Watchdog time.Duration
	// Probe asks the engine a question through the TUN, as a client
	// would, and returns nil when it was answered within timeout.
	Probe func(ctx context.Context, timeout time.Duration) error
	Log   *slog.Logger
}

// WatchdogMisses is how many probes in a row must fail before a capture
// is reported stalled.
const WatchdogMisses = 3

// SelfTestTimeout is how long StartCapture waits for the engine's first
// answer before it refuses to steer.
const SelfTestTimeout = 3 * time.Second

// Capture is one period of steering with its guards: the rule monitor,
// the systemd-resolved registration and the watchdog.
type Capture struct {
	cfg         CaptureConfig
	steer       *Steering
	monitorDone chan struct{}
	resolved    bool
	cancel      context.CancelFunc
	stalled     chan error
}

// StartCapture self-tests the data path, and only when it answers steers
// the machine's DNS into the TUN, then watches over it. On error nothing
// is left steered.
func StartCapture(cc CaptureConfig) (*Capture, error) {
	ctx, cancel := context.WithCancel(context.Background())
	c := &Capture{cfg: cc, cancel: cancel, stalled: make(chan error, 1)}
	if err := selfTest(ctx, cc.Probe, SelfTestTimeout); err != nil {
		cancel()
		return nil, fmt.Errorf("self-test: the engine does not answer through %s: %w; nothing was steered", cc.Route.Tun, err)
	}
	var err error
	if c.steer, err = Apply(cc.Route, cc.StateDir, cc.Log); err != nil {
		cancel()
		return nil, err
	}
	c.monitorDone = make(chan struct{})
	go func() {
		if err := c.steer.Monitor(c.monitorDone); err != nil {
			cc.Log.Warn("rule monitor not running: rules deleted from outside will not be restored", "err", err)
		}
	}()
	c.resolved = c.registerResolved()
	if cc.Watchdog > 0 {
		go func() {
			probe := func(ctx context.Context) error { return cc.Probe(ctx, cc.Watchdog) }
			if err := watchdog(ctx, probe, cc.Watchdog, WatchdogMisses); err != nil {
				cc.Log.Error("watchdog: the engine stopped answering; steering is withdrawn so DNS falls back to the system's resolvers", "err", err)
				c.stalled <- err
			}
		}()
	}
	return c, nil
}

// Stalled delivers an error once the watchdog finds the data path dead.
func (c *Capture) Stalled() <-chan error { return c.stalled }

// Done is closed when Stop is called.
func (c *Capture) Done() <-chan struct{} { return c.monitorDone }

// Stop withdraws steering: DNS goes to the system's resolvers again.
func (c *Capture) Stop() error {
	c.cancel()
	close(c.monitorDone)
	if c.resolved {
		revertResolved(c.cfg.Route.Tun, c.cfg.Log)
	}
	return c.steer.Withdraw()
}

// selfTest waits up to limit for probe to succeed.
func selfTest(ctx context.Context, probe func(context.Context, time.Duration) error, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		err := probe(ctx, 300*time.Millisecond)
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
	}
}

// watchdog calls probe every interval until ctx ends (it then returns
// nil) or misses probes in a row fail (it returns the last error). A hang
// is the one failure that kernel-owned lifetimes do not cover: the caller
// turns this into a withdrawal.
func watchdog(ctx context.Context, probe func(context.Context) error, interval time.Duration, misses int) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	bad := 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		err := probe(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case err == nil:
			bad = 0
		default:
			if bad++; bad >= misses {
				return err
			}
		}
	}
}

// Cleanup undoes what a dead instance left: the rules, routes and
// nftables table of its journal (if any) and, by tag, any others. The
// caller holds the lock of dir, so no live instance owns them.
func Cleanup(dir string, log *slog.Logger) ([]string, error) {
	j, jerr := ReadJournal(dir)
	table, pid := DefaultTable, 0
	if j != nil {
		pid = j.PID
		log.Info("an earlier dnstun left state behind; cleaning up", "pid", j.PID, "boot_id", j.BootID, "phase", j.Phase, "started", j.Started)
		if j.Linux != nil && len(j.Linux.Routes) > 0 {
			table = j.Linux.Routes[0].Table
		}
	}
	// On macOS the resolver key is removed only when its marker names the
	// journal's pid, ours or a dead process; on Linux every leftover is
	// ours by its tag.
	removed, err := SweepOwned(table, pid, log)
	if table != DefaultTable {
		more, err2 := SweepOwned(DefaultTable, pid, log)
		removed, err = append(removed, more...), errors.Join(err, err2)
	}
	if err == nil {
		err = RemoveJournal(dir)
	}
	return removed, errors.Join(jerr, err)
}

// registerResolved registers the TUN with systemd-resolved when asked to,
// or (auto) when resolved is the system resolver and dnstun runs in the
// host's own network namespace: resolved lives there, and would otherwise
// apply the settings to whatever link has the same index in its namespace.
func (c *Capture) registerResolved() bool {
	cc, log := c.cfg, c.cfg.Log
	if runtime.GOOS != "linux" {
		return false
	}
	switch cc.Resolved {
	case "off":
		return false
	case "auto":
		if !cc.ResolvedIsSystem {
			return false
		}
		if !inInitialNetns() {
			log.Warn("systemd-resolved is the system resolver, but dnstun runs in another network namespace: not registering (use --resolved on to force)")
			return false
		}
	}
	if _, err := exec.LookPath("resolvectl"); err != nil {
		log.Warn("systemd-resolved registration skipped: resolvectl not found; resolved's stub at 127.0.0.53 is not steered", "err", err)
		return false
	}
	for _, cmd := range ResolvedPlan(cc.Route.Tun, cc.Route.Resolvers) {
		if out, err := exec.Command(cmd[0], cmd[1:]...).CombinedOutput(); err != nil {
			log.Warn("systemd-resolved registration failed; resolved's stub at 127.0.0.53 is not steered", "cmd", cmd, "err", err, "output", string(out))
			revertResolved(cc.Route.Tun, log)
			return false
		}
	}
	log.Info("registered with systemd-resolved", "link", cc.Route.Tun, "domain", "~.")
	return true
}

func revertResolved(tunName string, log *slog.Logger) {
	if out, err := exec.Command("resolvectl", "revert", tunName).CombinedOutput(); err != nil {
		log.Debug("resolvectl revert", "err", err, "output", string(out))
	}
	if err := exec.Command("resolvectl", "flush-caches").Run(); err != nil {
		log.Debug("resolvectl flush-caches", "err", err)
	}
}

// inInitialNetns reports whether this process shares pid 1's network
// namespace; false when that cannot be told.
func inInitialNetns() bool {
	self, err1 := os.Readlink("/proc/self/ns/net")
	init, err2 := os.Readlink("/proc/1/ns/net")
	return err1 == nil && err2 == nil && self == init
}

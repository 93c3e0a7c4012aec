// SPDX-License-Identifier: MIT

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/dnstun/dnstun/control"
	"github.com/dnstun/dnstun/engine"
	"github.com/dnstun/dnstun/filter"
	"github.com/dnstun/dnstun/listsrc"
	"github.com/dnstun/dnstun/querylog"
	"github.com/dnstun/dnstun/route"
	"github.com/dnstun/dnstun/service"
)

// version is dnstun's version, reported by status.
const version = "0.1.0-dev"

// daemon is one dnstun process: the block lists for its whole life and,
// while enabled, a session: the TUN (or flow socket), the engine, and with
// --capture the steering. Disabling ends the session; the process stays.
type daemon struct {
	c     *runConfig
	log   *slog.Logger
	live  *filter.Live
	lists []listSpec        // the files the set was built from (URLs resolved to cached copies)
	srcs  []*listsrc.Source // the lists given as URLs
	// stamps are the local list files as they were when last loaded
	// (watchLists); loadMu serialises loads (swapLists, Reload).
	stamps []fileStamp
	loadMu sync.Mutex
	qlog   *querylog.Ring
	start  time.Time
	fatal  chan error    // a session that can no longer serve (watchdog, engine death)
	quit   chan quitting // a control request to end the process

	mu sync.Mutex
	on *session // nil while disabled
}

// quitting ends run: with code 0 (stop) or the disabled status
// (--exit-when-disabled).
type quitting struct{ code int }

// exitError carries a process exit status through Main.
type exitError struct {
	code int
	msg  string
}

func (e exitError) Error() string { return e.msg }

// session is one enabled period.
type session struct {
	e           *engine.Engine
	name        string // TUN name ("" in flow mode)
	cancel      context.CancelFunc
	engDone     chan error
	steer       *route.Steering
	monitorDone chan struct{}
	resolved    bool
}

// newDaemon loads the lists: a bad list stops dnstun before the system is
// touched.
func newDaemon(c *runConfig, log *slog.Logger) (*daemon, error) {
	paths, srcs := resolveLists(c, log)
	stamps := stampLists(paths)
	set, err := loadLists(c, paths, log)
	if err != nil {
		return nil, err
	}
	d := &daemon{c: c, log: log, live: filter.NewLive(set), lists: paths, srcs: srcs, stamps: stamps, qlog: querylog.New(queryLogSize), start: time.Now(),
		fatal: make(chan error, 1), quit: make(chan quitting, 1)}
	c.engine.QueryLog = d.qlog
	return d, nil
}

// resolveLists maps --blocklist values to files with their settings: URLs
// to their cached copies, downloaded first when there is none. A URL that
// cannot be had is logged and left out; the other lists load, and the
// refresh tries again.
func resolveLists(c *runConfig, log *slog.Logger) ([]listSpec, []*listsrc.Source) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out []listSpec
	var srcs []*listsrc.Source
	for _, raw := range c.blocklists {
		ls, err := parseListSpec(raw)
		if err != nil {
			log.Error("block list not loaded", "err", err)
			continue
		}
		paths, s, errs := listsrc.Resolve(ctx, []string{ls.src}, c.listCache, nil)
		srcs = append(srcs, s...)
		for _, err := range errs {
			log.Error("block list not loaded", "err", err)
		}
		for _, p := range paths {
			ls.opts.Name = p
			out = append(out, ls)
		}
	}
	return out, srcs
}

// refreshLists re-downloads the URL lists every c.listRefresh and swaps in
// a new rule set when one changed.
func (d *daemon) refreshLists(ctx context.Context) {
	every(ctx, d.c.listRefresh, func() {
		d.mu.Lock()
		srcs := d.srcs
		d.mu.Unlock()
		if len(srcs) == 0 {
			return
		}
		changed, err := listsrc.Refresh(ctx, srcs)
		if err != nil {
			d.log.Warn("block list refresh", "err", err)
		}
		if changed {
			d.swapLists("a list URL has a new version")
		}
	})
}

// drainPending waits until e has no forwarded query waiting for an
// answer, or limit passes.
func drainPending(e *engine.Engine, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for e.Stats().Pending > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
}

// every calls fn every interval until ctx ends; never if interval <= 0.
func every(ctx context.Context, interval time.Duration, fn func()) {
	if interval <= 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn()
		}
	}
}

// queryLogSize is how many recent queries the control socket can show.
const queryLogSize = 4096

// run serves until ctx ends, a stop request arrives or a session fails.
// With capture it holds the single-instance lock for its whole life and
// first sweeps what a dead instance left. It starts in the persisted state
// (enabled unless `dnstun disable` said otherwise) and serves the control
// socket the whole time, also while disabled. SIGHUP reloads.
func (d *daemon) run(ctx context.Context) error {
	if d.c.capture.on {
		lock, err := route.TryLock(d.c.capture.stateDir)
		if err != nil {
			return err
		}
		defer lock.Unlock()
		if _, err := cleanupLeftovers(d.c.capture.stateDir, d.log); err != nil {
			d.log.Warn("cleanup of an earlier instance's leftovers was incomplete", "err", err)
		}
	}
	st, err := loadState(d.c.stateFile)
	if err != nil {
		d.log.Warn("persisted state unreadable", "err", err)
	}
	if !st.Enabled && d.c.exitWhenDisabled {
		d.log.Info("disabled (persisted state) and --exit-when-disabled: exiting")
		return exitError{code: service.ExitDisabledStatus(runtime.GOOS), msg: "disabled"}
	}
	if d.c.control.socket != "" {
		srv, err := control.Serve(ctx, d.c.control.socket, d.c.control.group, d, d.log)
		if err != nil {
			return fmt.Errorf("control socket: %w", err)
		}
		defer srv.Close()
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	rctx, stopRefresh := context.WithCancel(ctx)
	defer stopRefresh()
	go d.refreshLists(rctx)
	go d.watchLists(rctx)
	if st.Enabled {
		if err := d.enable(); err != nil {
			return err
		}
		// Hand back what loading the lists left as garbage, once
		// serving: a forced collection must not delay the first answer.
		go releaseMemory()
	} else {
		go releaseMemory()
		d.log.Info("starting disabled (persisted state); `dnstun enable` turns filtering on", "state_file", d.c.stateFile)
	}
	var result error
	for result == nil {
		select {
		case <-ctx.Done():
			result = context.Canceled
		case err := <-d.fatal:
			result = err
		case q := <-d.quit:
			result = context.Canceled
			if q.code != 0 {
				result = exitError{code: q.code, msg: "disabled"}
			}
		case <-hup:
			if err := d.Reload(); err != nil {
				d.log.Error("reload failed; the previous configuration keeps serving", "err", err)
			}
		}
	}
	if err := d.disable(); err != nil {
		d.log.Error("stop was incomplete; run `dnstun cleanup`", "err", err)
		if result == context.Canceled {
			result = err
		}
	}
	d.log.Info("dnstun stopped", "uptime", time.Since(d.start).Round(time.Millisecond))
	if result == context.Canceled {
		return nil
	}
	return result
}

// The control.Handler verbs.

// Status reports whether filtering is on and how.
func (d *daemon) Status() (control.Status, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := control.Status{
		Enabled:       d.on != nil,
		Steering:      "off",
		UptimeSeconds: time.Since(d.start).Seconds(),
		PID:           os.Getpid(),
		Version:       version,
	}
	if d.on != nil {
		st.Tun = d.on.name
		switch {
		case d.c.mode == "flow":
			st.Steering = "flow " + d.c.listen.String()
		case d.on.steer != nil:
			st.Steering = "capture"
		default:
			st.Steering = "virtual resolver"
		}
		for _, u := range d.on.e.UpstreamStates() {
			st.Upstreams = append(st.Upstreams, control.UpstreamStatus{Addr: u.Addr.String(), Healthy: u.Healthy})
		}
		s := d.on.e.Stats()
		st.Counters = s.Map()
	}
	return st, nil
}

// Enable turns filtering on and persists it.
func (d *daemon) Enable() error {
	if err := d.enable(); err != nil {
		return err
	}
	return saveState(d.c.stateFile, true)
}

// Disable turns filtering off (steering withdrawn, TUN closed), keeps the
// process and the control socket, and persists it; with
// --exit-when-disabled the process then exits.
func (d *daemon) Disable() error {
	if err := saveState(d.c.stateFile, false); err != nil {
		return err
	}
	if err := d.disable(); err != nil {
		return err
	}
	if d.c.exitWhenDisabled {
		d.requestQuit(service.ExitDisabledStatus(runtime.GOOS))
	}
	return nil
}

// Reload re-reads the configuration (command line and --config file) and
// the lists. A configuration or list that fails is refused with its error
// and the running one keeps serving. New lists and upstreams take effect at
// once, without dropping queries; other settings at the next enable.
func (d *daemon) Reload() error {
	d.loadMu.Lock()
	defer d.loadMu.Unlock()
	nc, err := parseRunFlags(d.c.args, io.Discard)
	if err != nil {
		return fmt.Errorf("reload refused: %w", err)
	}
	paths, srcs := resolveLists(nc, d.log)
	stamps := stampLists(paths)
	set, err := loadLists(nc, paths, d.log)
	if err != nil {
		return fmt.Errorf("reload refused: %w", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	nc.args = d.c.args
	nc.engine.Logger = d.c.engine.Logger
	nc.engine.QueryLog = d.qlog
	if d.on != nil && fmt.Sprint(nc.upstreams) != fmt.Sprint(d.c.upstreams) {
		if err := d.on.e.SetUpstreams(nc.upstreams); err != nil {
			return fmt.Errorf("reload refused: %w", err)
		}
	}
	d.live.Store(set)
	d.c, d.lists, d.srcs, d.stamps = nc, paths, srcs, stamps
	defer releaseMemory()
	d.log.Info("reloaded", "rules", set.Len(), "upstreams", nc.upstreams)
	return nil
}

// Stats returns the engine's counters (none while disabled).
func (d *daemon) Stats() (map[string]uint64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.on == nil {
		return map[string]uint64{}, nil
	}
	s := d.on.e.Stats()
	m := s.Map()
	m["pending"] = uint64(s.Pending)
	return m, nil
}

// QueryLog returns the n most recent queries.
func (d *daemon) QueryLog(n int) ([]control.QueryLogEntry, error) {
	return d.qlog.Snapshot(n), nil
}

// Stop starts a clean shutdown.
func (d *daemon) Stop() error {
	d.requestQuit(0)
	return nil
}

func (d *daemon) requestQuit(code int) {
	select {
	case d.quit <- quitting{code: code}:
	default:
	}
}

// enable starts a session; it does nothing if one runs.
func (d *daemon) enable() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.on != nil {
		return nil
	}
	s, err := d.startSession()
	if err != nil {
		return err
	}
	d.on = s
	return nil
}

// disable ends the session, steering first so that DNS falls back to the
// system's resolvers before the engine stops; it does nothing if none runs.
func (d *daemon) disable() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.on == nil {
		return nil
	}
	err := d.stopSession(d.on)
	d.on = nil
	return err
}

// startSession opens the front-end and the engine and, with capture,
// self-tests the engine before it steers anything.
func (d *daemon) startSession() (*session, error) {
	c := d.c
	e, name, err := newEngine(c, d.live, d.log)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &session{e: e, name: name, cancel: cancel, engDone: make(chan error, 1)}
	go func() {
		err := e.Run(ctx)
		st := e.Stats()
		d.log.Info("engine stopped", "stats", st.Map())
		s.engDone <- err
		if ctx.Err() == nil { // not asked to stop
			d.reportFatal(fmt.Errorf("engine stopped: %v", err))
		}
	}()
	if c.followResolvConf != "" {
		go followResolvers(ctx, c, e, 2*time.Second, d.log)
	}
	if c.mode == "flow" {
		d.log.Info("dnstun ready (flow mode)", "listen", c.listen, "upstreams", c.upstreams, "block_mode", c.engine.BlockMode.String())
		return s, nil
	}
	if !c.capture.on {
		d.log.Info("dnstun ready", "tun", name, "resolvers", c.resolvers, "upstreams", c.upstreams, "block_mode", c.engine.BlockMode.String())
		return s, nil
	}
	if c.engine.PassThrough {
		st := c.capture.setup
		d.log.Info("resolver setup", "kind", st.Kind, "why", st.Why, "upstreams_for_own_address", st.Upstreams, "skipped_local_stubs", st.Skipped,
			"forwarding", "pass-through: each captured query goes to the resolver it was sent to")
	} else {
		d.log.Info("forwarding", "mode", "override: every query goes to --upstream", "upstreams", c.upstreams)
	}
	probeAddr := netip.AddrPortFrom(c.resolvers[0], 53)
	if err := selfTest(ctx, probeAddr); err != nil {
		d.stopSession(s)
		return nil, fmt.Errorf("self-test: the engine does not answer on %v: %w; nothing was steered", probeAddr, err)
	}
	rc := route.Config{Tun: name, NFT: c.capture.nft, Resolvers: c.resolvers}
	for _, a := range c.tunAddrs {
		rc.IPv4 = rc.IPv4 || a.Is4()
		rc.IPv6 = rc.IPv6 || a.Is6()
	}
	if s.steer, err = route.Apply(rc, c.capture.stateDir, d.log); err != nil {
		d.stopSession(s)
		return nil, err
	}
	s.monitorDone = make(chan struct{})
	go func() {
		if err := s.steer.Monitor(s.monitorDone); err != nil {
			d.log.Warn("rule monitor not running: rules deleted from outside will not be restored", "err", err)
		}
	}()
	s.resolved = registerResolved(c, name, d.log)
	if c.capture.watchdog > 0 {
		stalled := make(chan error, 1)
		go watchdog(ctx, func(ctx context.Context) error { return probe(ctx, probeAddr, c.capture.watchdog) }, c.capture.watchdog, 3, stalled)
		go func() {
			select {
			case err := <-stalled:
				d.log.Error("watchdog: the engine stopped answering; withdrawing steering so DNS falls back to the system's resolvers", "err", err)
				d.reportFatal(fmt.Errorf("watchdog: engine stalled: %w", err))
			case <-ctx.Done():
			}
		}()
	}
	return s, nil
}

func (d *daemon) reportFatal(err error) {
	select {
	case d.fatal <- err:
	default:
	}
}

// stopSession withdraws steering, then stops the engine (which answers
// SERVFAIL to queries in flight and closes the TUN).
func (d *daemon) stopSession(s *session) error {
	var errs []error
	if s.monitorDone != nil {
		close(s.monitorDone)
	}
	if s.resolved {
		revertResolved(s.name, d.log)
	}
	if s.steer != nil {
		if err := s.steer.Withdraw(); err != nil {
			errs = append(errs, err)
		}
		// No query is steered here any more: let the forwarded ones in
		// flight get their answers, instead of the SERVFAIL that closing
		// the engine gives them (disable is not an outage).
		drainPending(s.e, d.c.engine.TotalTimeout)
	}
	s.cancel()
	if err := <-s.engDone; err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

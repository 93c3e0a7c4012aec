// SPDX-License-Identifier: MIT

package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/dnstun/dnstun/engine"
	"github.com/dnstun/dnstun/filter"
	"github.com/dnstun/dnstun/route"
)

// daemon is one dnstun process: the block lists for its whole life and,
// while enabled, a session: the TUN (or flow socket), the engine, and with
// --capture the steering. Disabling ends the session; the process stays.
type daemon struct {
	c     *runConfig
	log   *slog.Logger
	live  *filter.Live
	start time.Time
	fatal chan error // a session that can no longer serve (watchdog, engine death)

	mu sync.Mutex
	on *session // nil while disabled
}

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
	set, err := loadLists(c.blocklists, log)
	if err != nil {
		return nil, err
	}
	return &daemon{c: c, log: log, live: filter.NewLive(set), start: time.Now(), fatal: make(chan error, 1)}, nil
}

// run serves until ctx ends or a session fails. With capture it holds the
// single-instance lock for its whole life and first sweeps what a dead
// instance left. SIGHUP reloads the lists.
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
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	if err := d.enable(); err != nil {
		return err
	}
	var result error
	for result == nil {
		select {
		case <-ctx.Done():
			result = context.Canceled
		case err := <-d.fatal:
			result = err
		case <-hup:
			if err := d.reloadLists(); err != nil {
				d.log.Error("reload failed; the previous lists keep serving", "err", err)
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

// reloadLists builds a new rule set off the hot path and swaps it in.
func (d *daemon) reloadLists() error {
	set, err := loadLists(d.c.blocklists, d.log)
	if err != nil {
		return err
	}
	d.live.Store(set)
	return nil
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
	}
	s.cancel()
	if err := <-s.engDone; err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

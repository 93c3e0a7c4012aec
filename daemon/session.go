// SPDX-License-Identifier: MIT

package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/dnstun/dnstun/config"
	"github.com/dnstun/dnstun/engine"
	"github.com/dnstun/dnstun/filter"
	"github.com/dnstun/dnstun/route"
	"github.com/dnstun/dnstun/tun"
	"github.com/dnstun/dnstun/upstream"
)

// session is one enabled period.
type session struct {
	e       *engine.Engine
	tun     string // the TUN's name ("" in flow mode)
	cancel  context.CancelFunc
	engDone chan error
	capture *route.Capture // nil without capture, or while withdrawn
	// captureCfg is how capture was started, to start it again after a
	// withdrawal (upstreams lost); zero without capture.
	captureCfg route.CaptureConfig
	health     health // under Daemon.mu
}

// engineConfig is the engine's configuration for o, with the upstreams
// found for it.
func (d *Daemon) engineConfig(o *config.Options, sys systemResolvers) engine.Config {
	c := engine.Config{
		Upstreams:          upstreamsOf(o, sys),
		Domains:            o.Domains,
		Strategy:           o.UpstreamMode,
		Bootstrap:          bootstrapOf(o, sys),
		Case0x20:           o.Upstream0x20,
		QueriesPerSocket:   o.SocketQueries,
		SocketsPerUpstream: o.Sockets,
		UpstreamTimeout:    o.UpstreamTimeout,
		TotalTimeout:       o.Timeout,
		BlockMode:          o.BlockMode,
		BlockAddrs:         o.BlockAddrs,
		BlockTTL:           o.BlockTTL,
		MaxPending:         o.MaxPending,
		ClientRate:         o.ClientRate,
		// Following the system's resolvers with capture, each captured
		// query goes to the resolver it was sent to; those sent to
		// dnstun's own address go to the system's.
		PassThrough: o.FollowsSystem() && o.Capture.Enabled,
		Resolvers:   o.Resolvers,
		HealthName:  HealthName,
		QueryLog:    d.qlog,
		Attrib:      d.obs.attrib,
		Tap:         d.obs.tap,
		Metrics:     d.obs.metrics,
		Logger:      d.log,
	}
	if o.Mode == "tun" {
		// Steering exempts marked sockets; flow mode steers nothing, and
		// so runs without CAP_NET_ADMIN.
		c.Mark = upstream.Mark
		c.TCP, c.TCPIdleTimeout, c.MTU = true, o.TCPIdleTimeout, o.MTU
	}
	return c
}

// upstreamsOf is where queries to dnstun's own address go: the options'
// upstreams, or the system's resolvers.
func upstreamsOf(o *config.Options, sys systemResolvers) []upstream.Spec {
	if o.FollowsSystem() {
		return upstream.UDPSpecs(sys.ups)
	}
	return o.Upstreams
}

// bootstrapOf is what resolves the host names of upstream URLs: the
// options' bootstrap resolvers, or the system's.
func bootstrapOf(o *config.Options, sys systemResolvers) []netip.AddrPort {
	if len(o.Bootstrap) > 0 {
		return o.Bootstrap
	}
	return sys.ups
}

// newEngine opens the front-end (the TUN, or the flow socket) and the
// engine over it. It returns the TUN's name ("" in flow mode).
func newEngine(o *config.Options, cfg engine.Config, f filter.Filter) (*engine.Engine, string, error) {
	if o.Mode == "flow" {
		pc, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(o.Listen))
		if err != nil {
			return nil, "", fmt.Errorf("flow mode: listen on %v: %w", o.Listen, err)
		}
		e, err := engine.NewFlow(cfg, pc, f)
		if err != nil {
			pc.Close()
			return nil, "", err
		}
		return e, "", nil
	}
	tc := tun.Config{Name: o.Tun, MTU: o.MTU, Queues: o.Queues(), Logger: cfg.Logger}
	for _, a := range o.TunAddrs {
		tc.Addrs = append(tc.Addrs, netip.PrefixFrom(a, a.BitLen()))
	}
	for _, r := range o.Resolvers {
		tc.Routes = append(tc.Routes, netip.PrefixFrom(r, r.BitLen()))
	}
	dev, name, err := tun.Open(tc)
	if err != nil {
		return nil, "", err
	}
	e, err := engine.New(cfg, dev, f)
	if err != nil {
		dev.Close()
		return nil, "", err
	}
	return e, name, nil
}

// startSession opens the front-end and the engine and, with capture,
// self-tests the engine before it steers anything. d.mu is held.
func (d *Daemon) startSession() (*session, error) {
	o := d.o
	cfg := d.engineConfig(o, d.sys)
	c, err := d.cacheFor(o)
	if err != nil {
		return nil, err
	}
	cfg.Cache = c
	e, name, err := newEngine(o, cfg, d.live)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &session{e: e, tun: name, cancel: cancel, engDone: make(chan error, 1)}
	go func() {
		err := e.Run(ctx)
		st := e.Stats()
		if qs := e.QueuePackets(); len(qs) > 1 {
			d.log.Info("engine stopped", "stats", st.Map(), "tun_queue_packets", qs)
		} else {
			d.log.Info("engine stopped", "stats", st.Map())
		}
		s.engDone <- err
		if ctx.Err() == nil { // not asked to stop
			d.reportFatal(fmt.Errorf("engine stopped: %v", err))
		}
	}()
	if o.FollowsSystem() {
		go d.followResolvers(ctx, e, followInterval)
	}
	if o.Capture.Watchdog > 0 {
		go d.watchUpstreams(ctx, s, upstreamCheckInterval(o), forwardProbe(o))
	}
	switch {
	case o.Mode == "flow":
		d.log.Info("dnstun ready (flow mode)", "listen", o.Listen, "upstreams", cfg.Upstreams, "block_mode", cfg.BlockMode.String())
		return s, nil
	case !o.Capture.Enabled:
		d.log.Info("dnstun ready", "tun", name, "tun_queues", o.Queues(), "resolvers", o.Resolvers, "upstreams", cfg.Upstreams, "block_mode", cfg.BlockMode.String())
		return s, nil
	case cfg.PassThrough:
		st := d.sys.setup
		d.log.Info("resolver setup", "kind", st.Kind, "why", st.Why, "upstreams_for_own_address", st.Upstreams, "skipped_local_stubs", st.Skipped,
			"forwarding", "pass-through: each captured query goes to the resolver it was sent to")
	default:
		d.log.Info("forwarding", "mode", "override: every query goes to the upstreams given", "upstreams", cfg.Upstreams)
	}
	s.captureCfg = route.CaptureConfig{
		Route:            route.Config{Tun: name, NFT: o.Capture.NFT, Resolvers: o.Resolvers},
		StateDir:         o.Capture.StateDir,
		Resolved:         o.Capture.Resolved,
		ResolvedIsSystem: d.sys.setup.Kind == "systemd-resolved",
		Watchdog:         o.Capture.Watchdog,
		// Every virtual resolver must answer, IPv4 and IPv6 alike.
		Probe: func(ctx context.Context, timeout time.Duration) error {
			for _, r := range o.Resolvers {
				if _, err := probe(ctx, netip.AddrPortFrom(r, 53), HealthName, timeout); err != nil {
					return fmt.Errorf("%v: %w", r, err)
				}
			}
			return nil
		},
		Log: d.log,
	}
	for _, a := range o.TunAddrs {
		s.captureCfg.Route.IPv4 = s.captureCfg.Route.IPv4 || a.Is4()
		s.captureCfg.Route.IPv6 = s.captureCfg.Route.IPv6 || a.Is6()
	}
	if err := d.steer(ctx, s); err != nil {
		d.stopSession(s)
		return nil, err
	}
	return s, nil
}

// steer starts capture for s, and reports a stalled data path as fatal.
func (d *Daemon) steer(ctx context.Context, s *session) error {
	c, err := route.StartCapture(s.captureCfg)
	if err != nil {
		return err
	}
	s.capture = c
	go func() {
		select {
		case err := <-c.Stalled():
			d.reportFatal(fmt.Errorf("watchdog: engine stalled: %w", err))
		case <-c.Done():
		case <-ctx.Done():
		}
	}()
	return nil
}

// stopSession withdraws steering, then stops the engine (which answers
// SERVFAIL to queries in flight and closes the TUN).
func (d *Daemon) stopSession(s *session) error {
	var errs []error
	if s.capture != nil {
		if err := s.capture.Stop(); err != nil {
			errs = append(errs, err)
		}
		// No query is steered here any more: let the forwarded ones in
		// flight get their answers, instead of the SERVFAIL that closing
		// the engine gives them (disable is not an outage).
		drainPending(s.e, d.o.Timeout)
	}
	s.cancel()
	if err := <-s.engDone; err != nil {
		errs = append(errs, err)
	}
	d.sessionEnded(s.e.Stats(), s.e.Metrics())
	return errors.Join(errs...)
}

// drainQuiet is how long the TUN must have read nothing before a drain
// ends: a query steered in just before capture stopped may still be in the
// TUN's queue, or read but not yet sent upstream, when no query is
// pending.
const drainQuiet = 20 * time.Millisecond

// drainPending waits until e has no forwarded query waiting for an
// answer and has read no packet for drainQuiet, or limit passes.
func drainPending(e *engine.Engine, limit time.Duration) {
	deadline := time.Now().Add(limit)
	st := e.Stats()
	read, quiet := st.Get(engine.Packets), time.Now()
	for time.Now().Before(deadline) {
		if n := st.Get(engine.Packets); n != read {
			read, quiet = n, time.Now()
		}
		if st.Pending == 0 && time.Since(quiet) >= drainQuiet {
			return
		}
		time.Sleep(5 * time.Millisecond)
		st = e.Stats()
	}
}

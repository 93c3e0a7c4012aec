// SPDX-License-Identifier: MIT

package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/dnstun/dnstun/cache"
	"github.com/dnstun/dnstun/config"
	"github.com/dnstun/dnstun/control"
	"github.com/dnstun/dnstun/engine"
	"github.com/dnstun/dnstun/filter"
	"github.com/dnstun/dnstun/listsrc"
	"github.com/dnstun/dnstun/querylog"
	"github.com/dnstun/dnstun/route"
	"github.com/dnstun/dnstun/service"
)

// Version is dnstun's version, reported by status.
const Version = "0.1.0-dev"

// HealthName is answered by the engine itself; the capture self-test and
// the watchdog probe the data path with it. .invalid never resolves
// anywhere (RFC 6761).
const HealthName = "dnstun-health.invalid"

// QueryLogSize is how many recent queries the control socket can show.
const QueryLogSize = 4096

// Config is what a Daemon is made of.
type Config struct {
	Options *config.Options
	// Reload re-reads the configuration for `dnstun reload` and SIGHUP
	// (the CLI re-reads the same file and flags). Nil: a reload re-reads
	// the lists only.
	Reload func() (*config.Options, error)
	Logger *slog.Logger // nil: slog.Default()
}

// Daemon is one dnstun process: the block lists for its whole life and,
// while enabled, a session: the TUN (or flow socket), the engine, and with
// capture the steering. Disabling ends the session; the process stays.
// It implements control.Handler.
type Daemon struct {
	reload func() (*config.Options, error)
	log    *slog.Logger
	live   *filter.Live
	qlog   *querylog.Ring
	start  time.Time
	fatal  chan error // a session that can no longer serve (watchdog, engine death)
	quit   chan int   // a control request to end the process, with its exit status

	// loadMu serialises loads of the lists (reloads, refreshes, file
	// changes), so that an older load never replaces a newer one.
	loadMu sync.Mutex

	mu     sync.Mutex
	o      *config.Options
	sys    systemResolvers   // the system's resolvers, when o follows them
	lists  []config.ListSpec // what the set was built from (URLs resolved to cached copies)
	srcs   []*listsrc.Source // the lists given as URLs
	stamps []fileStamp       // the local list files as they were when last loaded
	on     *session          // nil while disabled
	// cache is the response cache (nil when off), kept across disable
	// and enable while its options stay the same; cacheOpts made it.
	cache     *cache.Cache
	cacheOpts cache.Options

	obs observers
	// engine is the serving session's engine (nil while disabled), for
	// attribution's callback, which must not take mu.
	engine atomic.Pointer[engine.Engine]
}

// ExitError carries the process's exit status out of Run (a disabled
// daemon with ExitWhenDisabled).
type ExitError struct {
	Code int
	Msg  string
}

func (e ExitError) Error() string { return e.Msg }

// New loads the lists and finds the upstreams: a bad list or no usable
// upstream stops dnstun before the system is touched.
func New(c Config) (*Daemon, error) {
	log := c.Logger
	if log == nil {
		log = slog.Default()
	}
	d := &Daemon{reload: c.Reload, log: log, o: c.Options, qlog: querylog.New(QueryLogSize), start: time.Now(),
		fatal: make(chan error, 1), quit: make(chan int, 1)}
	if c.Options.FollowsSystem() || needsBootstrap(c.Options) {
		sys, err := firstSystemResolvers(c.Options)
		if err != nil {
			return nil, fmt.Errorf("no upstream given and %w", err)
		}
		if len(sys.ups) == 0 && !c.Options.Capture.Enabled && c.Options.FollowsSystem() {
			return nil, fmt.Errorf("no upstream given and %s lists no usable nameserver: give --upstream IP[:PORT]", c.Options.ResolvConf)
		}
		if len(sys.ups) == 0 && needsBootstrap(c.Options) {
			return nil, fmt.Errorf("an upstream is named by a host name, no --bootstrap resolver is given, and %s lists no usable nameserver to resolve it: give --bootstrap IP[:PORT]", c.Options.ResolvConf)
		}
		d.sys = sys
	}
	lists, srcs := resolveLists(c.Options, log)
	d.lists, d.srcs, d.stamps = lists, srcs, stampLists(lists)
	start := time.Now()
	set, err := loadLists(c.Options, lists, log)
	if err != nil {
		return nil, err
	}
	d.noteLists(len(lists), set.Len(), time.Since(start))
	d.live = filter.NewLive(set)
	return d, nil
}

// Run serves until ctx ends, a stop request arrives or a session fails.
// With capture it holds the single-instance lock for its whole life and
// first sweeps what a dead instance left. It starts in the persisted state
// (enabled unless `dnstun disable` said otherwise) and serves the control
// socket the whole time, also while disabled. SIGHUP reloads.
func (d *Daemon) Run(ctx context.Context) error {
	o := d.options()
	if o.Capture.Enabled {
		lock, err := route.TryLock(o.Capture.StateDir)
		if err != nil {
			return err
		}
		defer lock.Unlock()
		if _, err := route.Cleanup(o.Capture.StateDir, d.log); err != nil {
			d.log.Warn("cleanup of an earlier instance's leftovers was incomplete", "err", err)
		}
	}
	st, err := loadState(o.StateFile)
	if err != nil {
		d.log.Warn("persisted state unreadable", "err", err)
	}
	if !st.Enabled && o.ExitWhenDisabled {
		d.log.Info("disabled (persisted state) and exit_when_disabled: exiting")
		return ExitError{Code: service.ExitDisabledStatus(runtime.GOOS), Msg: "disabled"}
	}
	stopObservers, err := d.startObservers(ctx)
	if err != nil {
		return err
	}
	defer stopObservers()
	if o.Control.Socket != "" {
		srv, err := control.Serve(ctx, o.Control.Socket, o.Control.Group, d, d.log)
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
	} else {
		d.log.Info("starting disabled (persisted state); `dnstun enable` turns filtering on", "state_file", o.StateFile)
	}
	// Set-up is done: keep only the capabilities the run needs (privs.go).
	d.dropPrivileges(o)
	// Hand back what loading the lists left as garbage, once serving: a
	// forced collection must not delay the first answer.
	go releaseMemory()
	var result error
	for result == nil {
		select {
		case <-ctx.Done():
			result = context.Canceled
		case err := <-d.fatal:
			result = err
		case code := <-d.quit:
			result = context.Canceled
			if code != 0 {
				result = ExitError{Code: code, Msg: "disabled"}
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

func (d *Daemon) options() *config.Options {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.o
}

// The control.Handler verbs.

// Status reports whether filtering is on and how.
func (d *Daemon) Status() (control.Status, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := control.Status{
		Enabled:       d.on != nil,
		Steering:      "off",
		UptimeSeconds: time.Since(d.start).Seconds(),
		PID:           os.Getpid(),
		Version:       Version,
	}
	if d.on == nil {
		return st, nil
	}
	st.Tun = d.on.tun
	switch {
	case d.o.Mode == "flow":
		st.Steering = "flow"
	case d.on.capture != nil:
		st.Steering = "capture"
	case d.on.health.withdrawn:
		st.Steering = "capture-withdrawn"
	default:
		st.Steering = "virtual"
	}
	st.Health = "ok"
	if h := d.on.health; h.lost {
		st.Health = "upstreams-lost"
		st.Problem = fmt.Sprintf("no upstream has answered since %s: %s", h.since.UTC().Format(time.RFC3339), h.why)
	}
	for _, u := range d.on.e.UpstreamStates() {
		st.Upstreams = append(st.Upstreams, control.UpstreamStatus{Addr: u.URL, Healthy: u.Healthy, Domains: u.Domains,
			RTTMillis: float64(u.RTT.Microseconds()) / 1000, Sent: u.Sent, Answers: u.Answers, Timeouts: u.Timeouts, Errors: u.Errors})
	}
	s := d.on.e.Stats()
	st.Counters = s.Map()
	return st, nil
}

// Enable turns filtering on and persists it.
func (d *Daemon) Enable() error {
	if err := d.enable(); err != nil {
		return err
	}
	return saveState(d.options().StateFile, true)
}

// Disable turns filtering off (steering withdrawn, TUN closed), keeps the
// process and the control socket, and persists it; with ExitWhenDisabled
// the process then exits.
func (d *Daemon) Disable() error {
	o := d.options()
	if err := saveState(o.StateFile, false); err != nil {
		return err
	}
	if err := d.disable(); err != nil {
		return err
	}
	if o.ExitWhenDisabled {
		d.requestQuit(service.ExitDisabledStatus(runtime.GOOS))
	}
	return nil
}

// Reload re-reads the configuration and the lists. A configuration or
// list that fails is refused with its error and the running one keeps
// serving. New lists and upstreams take effect at once, without dropping
// queries; other settings at the next enable.
func (d *Daemon) Reload() error {
	d.loadMu.Lock()
	defer d.loadMu.Unlock()
	no := d.options()
	if d.reload != nil {
		var err error
		if no, err = d.reload(); err != nil {
			return fmt.Errorf("reload refused: %w", err)
		}
	}
	var sys systemResolvers
	if no.FollowsSystem() || needsBootstrap(no) {
		var err error
		if sys, err = firstSystemResolvers(no); err != nil {
			return fmt.Errorf("reload refused: %w", err)
		}
	}
	lists, srcs := resolveLists(no, d.log)
	stamps := stampLists(lists)
	start := time.Now()
	set, err := loadLists(no, lists, d.log)
	if err != nil {
		return fmt.Errorf("reload refused: %w", err)
	}
	took := time.Since(start)
	d.mu.Lock()
	defer d.mu.Unlock()
	ups := upstreamsOf(no, sys)
	if d.on != nil && (fmt.Sprint(ups) != fmt.Sprint(upstreamsOf(d.o, d.sys)) || fmt.Sprint(no.Domains) != fmt.Sprint(d.o.Domains)) {
		if err := d.on.e.SetUpstreams(ups, no.Domains); err != nil {
			return fmt.Errorf("reload refused: %w", err)
		}
	}
	d.live.Store(set)
	d.obs.lists, d.obs.rules, d.obs.listsLoad, d.obs.listsSince = len(lists), set.Len(), took, time.Now()
	if d.cache != nil {
		// Answers stored after inspection by the old rules (CNAME
		// cloaking, answer IPs) must not outlive them.
		d.cache.Flush()
	}
	d.o, d.sys, d.lists, d.srcs, d.stamps = no, sys, lists, srcs, stamps
	defer releaseMemory()
	d.log.Info("reloaded", "rules", set.Len(), "upstreams", ups)
	return nil
}

// Stats returns the engine's counters (none while disabled).
func (d *Daemon) Stats() (map[string]uint64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.on == nil {
		return map[string]uint64{}, nil
	}
	s := d.on.e.Stats()
	m := s.Map()
	m["pending"] = uint64(s.Pending)
	if qs := d.on.e.QueuePackets(); len(qs) > 1 {
		// Packets read per TUN queue (one reader each).
		for i, n := range qs {
			m[fmt.Sprintf("tun_queue.%d.packets", i)] = n
		}
	}
	for _, u := range d.on.e.UpstreamStates() {
		k := "upstream." + u.URL + "."
		m[k+"sent"], m[k+"answers"], m[k+"timeouts"], m[k+"errors"] = u.Sent, u.Answers, u.Timeouts, u.Errors
		m[k+"rtt_us"] = uint64(u.RTT.Microseconds())
		m[k+"healthy"] = 0
		if u.Healthy {
			m[k+"healthy"] = 1
		}
	}
	return m, nil
}

// CacheFlush empties the response cache, or removes name and every name
// under it, and returns how many entries went (0 with the cache off).
func (d *Daemon) CacheFlush(name string) (int, error) {
	d.mu.Lock()
	c := d.cache
	d.mu.Unlock()
	if c == nil {
		return 0, nil
	}
	if name == "" {
		n := int(c.Stats().Entries)
		c.Flush()
		return n, nil
	}
	return c.FlushName(name), nil
}

// cacheFor returns the response cache for o, made anew when its options
// changed (a reload takes effect at the next enable); nil when off. d.mu
// is held.
func (d *Daemon) cacheFor(o *config.Options) (*cache.Cache, error) {
	if o.CacheBytes == 0 {
		d.retireCache()
		d.cache = nil
		return nil, nil
	}
	co := cache.Options{MaxBytes: o.CacheBytes, MinTTL: o.CacheMinTTL, MaxTTL: o.CacheMaxTTL, StaleFor: o.CacheStaleFor}
	if d.cache == nil || co != d.cacheOpts {
		c, err := cache.New(co)
		if err != nil {
			return nil, err
		}
		d.retireCache()
		d.cache, d.cacheOpts = c, co
	}
	return d.cache, nil
}

// QueryLog returns the most recent queries, or those after a.After.
func (d *Daemon) QueryLog(a control.QueryLogArgs) (control.QueryLogData, error) {
	if a.After == nil {
		recs := d.qlog.Snapshot(a.N)
		last := d.qlog.Added()
		if len(recs) > 0 {
			last = recs[len(recs)-1].Seq
		}
		return control.QueryLogData{Entries: recs, Last: last}, nil
	}
	recs, last, lost := d.qlog.Since(*a.After, a.N)
	return control.QueryLogData{Entries: recs, Last: last, Lost: lost}, nil
}

// Stop starts a clean shutdown.
func (d *Daemon) Stop() error {
	d.requestQuit(0)
	return nil
}

func (d *Daemon) requestQuit(code int) {
	select {
	case d.quit <- code:
	default:
	}
}

func (d *Daemon) reportFatal(err error) {
	select {
	case d.fatal <- err:
	default:
	}
}

// enable starts a session; it does nothing if one runs.
func (d *Daemon) enable() error {
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
	d.engine.Store(s.e)
	return nil
}

// disable ends the session, steering first so that DNS falls back to the
// system's resolvers before the engine stops; it does nothing if none runs.
func (d *Daemon) disable() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.on == nil {
		return nil
	}
	err := d.stopSession(d.on)
	d.engine.Store(nil) // after the drain: held queries still get their process
	d.on = nil
	return err
}

// releaseMemory returns to the system what building a rule set left as
// garbage (parsing a large list allocates several times what the set
// keeps); call it once the new set is installed and the old one dropped.
func releaseMemory() { debug.FreeOSMemory() }

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

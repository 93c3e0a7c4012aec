// SPDX-License-Identifier: MIT

package daemon

import (
	"context"
	"errors"
	"time"

	"github.com/dnstun/dnstun/attrib"
	"github.com/dnstun/dnstun/engine"
	"github.com/dnstun/dnstun/metrics"
	"github.com/dnstun/dnstun/querylog"
	"github.com/dnstun/dnstun/tap"
)

// observers are what watches the data path for the process's whole life,
// across enable and disable: attribution, dnstap, the query log file and
// the metrics endpoint. Each is set up by Run from the options it started
// with (a reload does not change them: restart to).
type observers struct {
	attrib *attrib.Table // nil: attribution off or unsupported
	tap    *tap.Tap      // nil: no dnstap
	// metrics is true when the metrics endpoint serves (the engines then
	// keep their latency histograms and answer counters).
	metrics bool

	// totals are the counters of the sessions that ended, so that the
	// metrics never go back when filtering is disabled and enabled again.
	// Under Daemon.mu.
	totals     engine.Stats
	totalsM    engine.Metrics
	lists      int
	rules      int
	listsLoad  time.Duration
	listsSince time.Time
}

// queryLogPoll is how often the query log file takes the new entries: at
// the ring's size (4096), up to about 40,000 queries a second are written
// without loss.
const queryLogPoll = 100 * time.Millisecond

// startObservers starts what the options ask for; it returns a function
// that stops them all (flushing dnstap and the query log file).
func (d *Daemon) startObservers(ctx context.Context) (stop func(), err error) {
	o := d.options()
	// Not Run's context: a signal cancels that as the last session starts
	// to drain, and what it answers then must still reach the query log
	// file and dnstap, and its held queries their process. stop ends them,
	// after the session.
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var wait []chan struct{}
	goTrack := func(f func()) {
		done := make(chan struct{})
		wait = append(wait, done)
		go func() {
			defer close(done)
			f()
		}()
	}
	var closers []func()
	stop = func() {
		cancel()
		for _, w := range wait {
			<-w
		}
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	if o.Attribution {
		t, err := attrib.New(attrib.Config{OnResolved: d.ownerResolved, Logger: d.log})
		switch {
		case errors.Is(err, errors.ErrUnsupported):
			d.log.Warn("attribution is not supported on this system: queries are logged without their process", "err", err)
		case err != nil:
			stop()
			return nil, err
		default:
			d.obs.attrib = t
			d.qlog.SetOwnerLookup(t.Lookup)
			goTrack(func() { t.Run(ctx) })
		}
	}
	if o.Dnstap != "" {
		t, err := tap.Open(o.Dnstap, tap.Config{Version: Version, Logger: d.log})
		if err != nil {
			stop()
			return nil, err
		}
		d.obs.tap = t
		closers = append(closers, func() {
			if err := t.Close(); err != nil {
				d.log.Warn("dnstap output closed with an error", "err", err)
			}
		})
		d.log.Info("dnstap messages written", "to", o.Dnstap)
	}
	if o.QueryLogFile != "" {
		lf, err := querylog.OpenFile(o.QueryLogFile, int64(o.QueryLogSize), o.QueryLogKeep)
		if err != nil {
			stop()
			return nil, err
		}
		goTrack(func() { querylog.Follow(ctx, d.qlog, lf, queryLogPoll, d.log) })
	}
	if o.Metrics.IsValid() {
		srv, err := metrics.Serve(ctx, o.Metrics.String(), metrics.Handler(d.metricsSnapshot), d.log)
		if err != nil {
			stop()
			return nil, err
		}
		d.obs.metrics = true
		closers = append(closers, func() { srv.Close() })
	}
	return stop, nil
}

// ownerResolved hands attribution's results to the engine serving, which
// releases the queries that waited for them.
func (d *Daemon) ownerResolved(k attrib.Key, o *attrib.Owner) {
	if e := d.engine.Load(); e != nil {
		e.OwnerResolved(k, o)
	}
}

// noteLists records the rule set just swapped in, for the metrics.
func (d *Daemon) noteLists(lists, rules int, took time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.obs.lists, d.obs.rules, d.obs.listsLoad, d.obs.listsSince = lists, rules, took, time.Now()
}

// sessionEnded adds an ended session's counters to the totals. d.mu is
// held.
func (d *Daemon) sessionEnded(st engine.Stats, m engine.Metrics) {
	for i, v := range st.Counters {
		d.obs.totals.Counters[i] += v
	}
	for i, v := range st.Drops {
		d.obs.totals.Drops[i] += v
	}
	// The cache's counters are not the session's: the cache outlives
	// sessions while its options stay the same (cacheFor adds a replaced
	// cache's to the totals).
	d.obs.totalsM.Add(&m)
}

// retireCache adds the cache being replaced to the metrics' totals (its
// counters go with it). d.mu is held.
func (d *Daemon) retireCache() {
	if d.cache == nil {
		return
	}
	cs := d.cache.Stats()
	d.obs.totals.Cache.Misses += cs.Misses
	d.obs.totals.Cache.Evictions += cs.Evictions
}

// metricsSnapshot is what a scrape of /metrics reads: the totals of ended
// sessions plus the serving one's counters.
func (d *Daemon) metricsSnapshot() metrics.Snapshot {
	d.mu.Lock()
	s := metrics.Snapshot{
		Version: Version, Enabled: d.on != nil, Stats: d.obs.totals, Metrics: d.obs.totalsM,
		Rules: d.obs.rules, Lists: d.obs.lists, ListsLoad: d.obs.listsLoad, ListsLoaded: d.obs.listsSince,
	}
	on, c := d.on, d.cache
	d.mu.Unlock()
	if on != nil {
		st, m := on.e.Stats(), on.e.Metrics()
		for i, v := range st.Counters {
			s.Stats.Counters[i] += v
		}
		for i, v := range st.Drops {
			s.Stats.Drops[i] += v
		}
		s.Stats.Pending, s.Stats.Sockets = st.Pending, st.Sockets
		misses, evictions := s.Stats.Cache.Misses+st.Cache.Misses, s.Stats.Cache.Evictions+st.Cache.Evictions
		s.Stats.Cache = st.Cache
		s.Stats.Cache.Misses, s.Stats.Cache.Evictions = misses, evictions
		s.Metrics.Add(&m)
		s.Upstreams = on.e.UpstreamStates()
	} else if c != nil {
		// Disabled: the cache (kept for the next enable) still has its
		// counts.
		cs := c.Stats()
		s.Stats.Cache.Misses += cs.Misses
		s.Stats.Cache.Evictions += cs.Evictions
		s.Stats.Cache.Entries, s.Stats.Cache.Bytes = cs.Entries, cs.Bytes
	}
	s.Extra = map[string]uint64{}
	if t := d.obs.attrib; t != nil {
		a := t.Stats()
		s.Extra["attribution_hits"], s.Extra["attribution_misses"] = a.Hits, a.Misses
		s.Extra["attribution_lookups"], s.Extra["attribution_found"] = a.Lookups, a.Found
		s.Extra["attribution_not_found"], s.Extra["attribution_failures"] = a.NotFound, a.Failures
		s.Extra["attribution_queue_drops"] = a.Drops
	}
	if t := d.obs.tap; t != nil {
		ts := t.Stats()
		s.Extra["dnstap_sent"], s.Extra["dnstap_dropped"], s.Extra["dnstap_discarded"] = ts.Sent, ts.Dropped, ts.Discarded
		s.Extra["dnstap_write_errors"], s.Extra["dnstap_reconnects"] = ts.WriteErrors, ts.Reconnects
	}
	return s
}

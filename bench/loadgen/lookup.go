package loadgen

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// LookupConfig describes a run of lookups through Go's own resolver, the
// way an ordinary Go program resolves names: net.Resolver with PreferGo,
// LookupNetIP. Go's resolver opens a fresh socket for every query and asks
// A and AAAA in parallel (network "ip"), so a lookup is two queries on two
// short-lived sockets, the per-socket costs that Run's long-lived sockets
// do not show. Concurrent lookups of one name share their queries (the
// resolver merges them), so a mix should have more names than
// Concurrency.
//
// The resolver reads its options (timeout, attempts, ndots, search) from
// the machine's /etc/resolv.conf and /etc/hosts before DNS, as any Go
// program does; only its Dial is replaced, so that every query goes to
// Server whatever resolv.conf names. A name with a trailing dot is looked
// up as it is; without one it goes through the search list.
type LookupConfig struct {
	// Server receives every query.
	Server netip.AddrPort
	// Names are looked up in order (shuffled once when Seed != 0),
	// cycling.
	Names []string
	Seed  uint64
	// Network is LookupNetIP's: "ip" (A and AAAA, the default), "ip4"
	// or "ip6".
	Network string
	// Mode is ClosedLoop (Concurrency lookups at a time, each started
	// when one ends) or OpenLoop (Rate lookups a second on a fixed
	// schedule, latency from the scheduled start).
	Mode        Mode
	Concurrency int
	Rate        float64
	// Duration bounds the starting of lookups (required, at most
	// MaxDuration); MaxLookups their number (0: no limit).
	Duration   time.Duration
	MaxLookups int
	// Timeout bounds each lookup (default DefaultTimeout).
	Timeout time.Duration
	// Dial opens the resolver's sockets; it is called with Server's
	// address. Nil: a net.Dialer's DialContext.
	Dial func(ctx context.Context, network, address string) (net.Conn, error)
}

// LookupResult holds the measurements of a lookup run.
type LookupResult struct {
	// Lookups were started; each ended Found (addresses returned),
	// NotFound (the name has no address: NXDOMAIN, or no data for any
	// type asked) or Failed (anything else: a timeout, SERVFAIL, a
	// refused or misbehaving server; FirstError has the first), or,
	// when the run was cancelled, InFlight.
	Lookups, Found, NotFound, Failed, InFlight int64
	// Addrs counts the addresses the Found lookups returned; Sockets
	// the sockets the resolver opened (calls of Dial).
	Addrs, Sockets int64
	// Elapsed runs from the start to the end of the last lookup; LPS is
	// (Found+NotFound)/Elapsed.
	Elapsed time.Duration
	LPS     float64
	// Latency of the lookups that got an answer (Found, NotFound):
	// closed loop from their start, open loop from their scheduled
	// start. SendLag (open loop) is how late lookups started.
	Latency, SendLag Percentiles
	FirstError       string
}

// Answered is Found + NotFound: the lookups that got an answer.
func (r *LookupResult) Answered() int64 { return r.Found + r.NotFound }

func (c LookupConfig) normalize() (LookupConfig, error) {
	if !c.Server.IsValid() {
		return c, errors.New("loadgen: lookups: invalid server address")
	}
	if len(c.Names) == 0 {
		return c, errors.New("loadgen: lookups: no names")
	}
	if c.Duration <= 0 {
		return c, errors.New("loadgen: lookups: Duration must be > 0")
	}
	c.Duration = min(c.Duration, MaxDuration)
	if c.MaxLookups < 0 || c.Timeout < 0 {
		return c, errors.New("loadgen: lookups: MaxLookups and Timeout must be >= 0")
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	switch c.Network {
	case "":
		c.Network = "ip"
	case "ip", "ip4", "ip6":
	default:
		return c, fmt.Errorf("loadgen: lookups: network %q is not ip, ip4 or ip6", c.Network)
	}
	switch c.Mode {
	case ClosedLoop:
		if c.Concurrency < 0 {
			return c, errors.New("loadgen: lookups: Concurrency must be >= 0")
		}
		if c.Concurrency == 0 {
			c.Concurrency = DefaultConcurrency
		}
	case OpenLoop:
		if !(c.Rate > 0) || math.IsInf(c.Rate, 0) {
			return c, errors.New("loadgen: lookups: open loop needs Rate > 0")
		}
	default:
		return c, fmt.Errorf("loadgen: lookups: unknown mode %v", c.Mode)
	}
	if c.Dial == nil {
		c.Dial = (&net.Dialer{}).DialContext
	}
	return c, nil
}

// lookupWorker is one goroutine's share of a run: merged at the end.
type lookupWorker struct {
	found, notFound, failed, addrs int64
	hist                           Histogram
}

type lookupRun struct {
	cfg     LookupConfig
	res     *net.Resolver
	order   []int
	base    time.Time
	seq     atomic.Int64
	sockets atomic.Int64
	last    atomic.Int64 // end of the latest lookup, ns since base
	errs    firstError
}

// one looks up the name of lookup g and records it in w, under mu when
// mu is not nil; latency is from from (ns since base). It reports whether
// the run was cancelled (then nothing is recorded).
func (r *lookupRun) one(ctx context.Context, g, from int64, w *lookupWorker, mu *sync.Mutex) (cancelled bool) {
	name := r.cfg.Names[r.order[g%int64(len(r.order))]]
	lctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	addrs, err := r.res.LookupNetIP(lctx, r.cfg.Network, name)
	cancel()
	end := int64(time.Since(r.base))
	for {
		l := r.last.Load()
		if end <= l || r.last.CompareAndSwap(l, end) {
			break
		}
	}
	var dnsErr *net.DNSError
	notFound := errors.As(err, &dnsErr) && dnsErr.IsNotFound
	if err != nil && !notFound && ctx.Err() != nil {
		return true
	}
	if mu != nil {
		mu.Lock()
		defer mu.Unlock()
	}
	switch {
	case err == nil:
		w.found++
		w.addrs += int64(len(addrs))
	case notFound:
		w.notFound++
	default:
		w.failed++
		// A DNSError names the server of resolv.conf, not the one
		// Dial reached.
		why := err.Error()
		if dnsErr != nil {
			why = dnsErr.Err
		}
		r.errs.note(fmt.Errorf("lookup %s via %v: %s", name, r.cfg.Server, why))
		return false
	}
	w.hist.Record(time.Duration(end - from))
	return false
}

// Lookups runs lookups as described by cfg and returns the measurements.
// It stops starting lookups when ctx ends, Duration has passed or
// MaxLookups were started, and returns when the lookups started have
// ended (each within Timeout). If ctx ended, the partial result is
// returned with ctx's error.
func Lookups(ctx context.Context, cfg LookupConfig) (*LookupResult, error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	r := &lookupRun{cfg: cfg, order: make([]int, len(cfg.Names))}
	for i := range r.order {
		r.order[i] = i
	}
	if cfg.Seed != 0 {
		rng := rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))
		rng.Shuffle(len(r.order), func(i, j int) { r.order[i], r.order[j] = r.order[j], r.order[i] })
	}
	server := cfg.Server.String()
	r.res = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		r.sockets.Add(1)
		return cfg.Dial(ctx, network, server)
	}}
	// next hands out lookup numbers until the end of the run.
	maxL := int64(cfg.MaxLookups)
	r.base = time.Now()
	sendCtx, stop := context.WithTimeout(ctx, cfg.Duration)
	defer stop()
	next := func() (int64, bool) {
		if sendCtx.Err() != nil {
			return 0, false
		}
		g := r.seq.Add(1) - 1
		return g, maxL == 0 || g < maxL
	}

	var (
		wg       sync.WaitGroup
		inflight atomic.Int64
		lag      Histogram
		shared   sync.Mutex
	)
	// Closed loop: a worker per goroutine; open loop: one, shared (a
	// Histogram is 35 KB: not one per lookup).
	n := 1
	if cfg.Mode == ClosedLoop {
		n = cfg.Concurrency
	}
	workers := make([]*lookupWorker, n)
	for i := range workers {
		workers[i] = &lookupWorker{}
	}
	if cfg.Mode == ClosedLoop {
		for _, w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					g, ok := next()
					if !ok {
						return
					}
					if r.one(ctx, g, int64(time.Since(r.base)), w, nil) {
						inflight.Add(1)
						return
					}
				}
			}()
		}
	} else {
		// The pacer, as Run's open loop: a runtime timer for the coarse
		// wait, nanosleep for the rest; one goroutine per lookup.
		paced := make(chan struct{})
		go func() {
			defer close(paced)
			pacerThread()
			interval := 1e9 / cfg.Rate
			timer := time.NewTimer(time.Hour)
			defer timer.Stop()
			for {
				g, ok := next()
				if !ok {
					return
				}
				sched := int64(float64(g) * interval)
				if sched >= int64(cfg.Duration) {
					return
				}
				if wait := sched - int64(time.Since(r.base)); wait > coarseSlack {
					timer.Reset(time.Duration(wait - coarseSlack))
					select {
					case <-timer.C:
					case <-sendCtx.Done():
						return
					}
				}
				if wait := sched - int64(time.Since(r.base)); wait > 0 {
					preciseSleep(time.Duration(wait))
				}
				lag.Record(time.Since(r.base) - time.Duration(sched))
				wg.Add(1)
				go func() {
					defer wg.Done()
					if r.one(ctx, g, sched, workers[0], &shared) {
						inflight.Add(1)
					}
				}()
			}
		}()
		<-paced
	}
	wg.Wait()

	res := &LookupResult{InFlight: inflight.Load(), Sockets: r.sockets.Load(), FirstError: r.errs.String()}
	var lat Histogram
	for _, w := range workers {
		res.Found += w.found
		res.NotFound += w.notFound
		res.Failed += w.failed
		res.Addrs += w.addrs
		lat.Merge(&w.hist)
	}
	res.Lookups = res.Found + res.NotFound + res.Failed + res.InFlight
	res.Elapsed = time.Duration(r.last.Load())
	if res.Elapsed > 0 {
		res.LPS = float64(res.Answered()) / res.Elapsed.Seconds()
	}
	res.Latency = lat.Percentiles()
	res.SendLag = lag.Percentiles()
	return res, ctx.Err()
}

// SPDX-License-Identifier: MIT

package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/dnstun/dnstun/bench/loadgen"
	"github.com/dnstun/dnstun/control"
	"github.com/dnstun/dnstun/internal/lab"
)

// The cache phase's upstream: a second bench/cmd/upstream in the upstream
// namespace, on the client's core, answering with TTL cacheTTL (the first
// keeps TTL 0 for the other phases, so nothing is cached there).
var cacheUpstreamAddr = netip.AddrPortFrom(upstreamAddr.Addr(), 5354)

const (
	cacheTTL = 3600
	// cacheTag names the systems' configuration files in the phase.
	cacheTag = "cache-"
)

// cacheSetup is the systems' setup in the cache phase.
var cacheSetup = setup{upstream: cacheUpstreamAddr, cache: true, tag: cacheTag}

// cacheSystem is one system of the warmed-hits part and the paths it
// runs, in order, in one process.
type cacheSystem struct {
	name   string
	target netip.AddrPort
	paths  []string
	start  func(e *env, n int) (*lab.Proc, error)
}

func cacheSystems() []*cacheSystem {
	return []*cacheSystem{
		{"dnstun", tunResolver, []string{CacheHits, CacheBlocked}, func(e *env, n int) (*lab.Proc, error) { return startDnstun(e, n, cacheSetup) }},
		{"ceiling", tunResolver, []string{CacheBlocked}, func(e *env, _ int) (*lab.Proc, error) {
			return e.start(e.cpus.sut, e.bins["ceiling"], "-resolver", tunResolver.Addr().String())
		}},
		{"dnsmasq", localAddr, []string{CacheHits}, func(e *env, n int) (*lab.Proc, error) { return startDnsmasq(e, n, cacheSetup) }},
		{"unbound", localAddr, []string{CacheHits}, func(e *env, n int) (*lab.Proc, error) { return startUnbound(e, n, cacheSetup) }},
		{"dnsdist", localAddr, []string{CacheHits}, func(e *env, n int) (*lab.Proc, error) { return startDnsdist(e, n, cacheSetup) }},
	}
}

// runCache runs the response cache phase: a second upstream answering
// with TTL cacheTTL, then for each repetition and system (those of
// o.Systems) a start, the warm-up and the measured runs of its paths;
// then the fill of dnstun's cache (o.CacheNames > 0). A run that fails is
// recorded in notes and the phase goes on.
func runCache(ctx context.Context, e *env, o Options, blocked, forward []loadgen.Query, progress func(string, ...any)) (_ *CacheReport, notes []string) {
	cr := &CacheReport{TTL: cacheTTL, Upstream: cacheUpstreamAddr.String()}
	up, err := e.lab.Start(e.lab.Up, lab.Cmd{Args: []string{e.bins["upstream"], "-listen", cacheUpstreamAddr.String(), "-tcp=false", "-ttl", fmt.Sprint(cacheTTL)},
		CPUs: cpuList(e.cpus.client), LogLimit: logLimit})
	if err != nil {
		cr.Why = "not run: " + err.Error()
		return cr, []string{"cache: " + err.Error()}
	}
	defer up.Stop()
	// A name of no mix: nothing the runs ask is cached by the probe.
	if _, err := e.firstAnswer(ctx, up, cacheUpstreamAddr, "ready.cache.example", lab.RcodeNoError, 10*time.Second); err != nil {
		cr.Why = "not run: the cache phase's upstream did not answer"
		return cr, []string{fmt.Sprintf("cache: upstream %v: %v", cacheUpstreamAddr, firstLines(err.Error()+"\n"+up.Log(), 6))}
	}
	want := func(name string) bool { return len(o.Systems) == 0 || slices.Contains(o.Systems, name) }
	var systems []*cacheSystem
	for _, s := range cacheSystems() {
		if !want(s.name) {
			continue
		}
		why := ""
		if s.name != "dnstun" && s.name != "ceiling" && lookPeer(s.name) == "" {
			why = "not installed (scripts/bench.sh installs it)"
		}
		for _, path := range s.paths {
			cr.Runs = append(cr.Runs, &CacheRun{System: s.name, Path: path, Config: cacheConfig(s.name), Why: why})
		}
		if why == "" {
			systems = append(systems, s)
		}
	}
	// Repetitions interleaved, as in the other phases.
	for r := range o.Reps {
		for _, s := range systems {
			progress("cache rep %d/%d: %s", r+1, o.Reps, s.name)
			reps, err := runCacheSystem(ctx, e, o, s, up, blocked, forward, progress)
			if err != nil {
				if ctx.Err() != nil {
					return cr, notes
				}
				progress("  %s failed: %v", s.name, err)
				notes = append(notes, fmt.Sprintf("cache: %s, rep %d: %v", s.name, r+1, firstLines(err.Error(), 6)))
				continue
			}
			for i, path := range s.paths {
				cr.Run(s.name, path).Reps = append(cr.Run(s.name, path).Reps, reps[i])
			}
		}
	}
	if o.CacheNames > 0 && want("dnstun") && ctx.Err() == nil {
		progress("cache fill: %d distinct names through dnstun (--cache %s), then %d Zipf queries", o.CacheNames, dnstunCacheSize, o.CacheZipf)
		var err error
		cr.Fill, err = runCacheFill(ctx, e, o, up, blocked, progress)
		if err != nil && ctx.Err() == nil {
			progress("  fill failed: %v", err)
			notes = append(notes, "cache fill: "+firstLines(err.Error(), 6))
		}
	}
	return cr, notes
}

// runCacheSystem runs one repetition of s: start it, then each of its
// paths; it returns one CacheRep per path.
func runCacheSystem(ctx context.Context, e *env, o Options, s *cacheSystem, up *lab.Proc, blocked, forward []loadgen.Query, progress func(string, ...any)) ([]*CacheRep, error) {
	p, err := s.start(e, o.ListSize)
	if err != nil {
		return nil, err
	}
	defer p.Stop()
	// A blocked name: the forwarded mix stays out of the cache until
	// the warm-up.
	if _, err := e.readyPinned(ctx, p, s.target, blocked[0].Name, lab.RcodeNXDomain, 60*time.Second, o.SUTCPU); err != nil {
		return nil, err
	}
	sys := &system{name: s.name, target: s.target}
	var out []*CacheRep
	for _, path := range s.paths {
		rep := &CacheRep{}
		qs := blocked
		if path == CacheHits {
			qs = forward
			// Every name once, in order: each a miss the upstream answers
			// and the cache keeps.
			u0, err := upstreamCount(ctx, up)
			if err != nil {
				return nil, err
			}
			res, err := loadgen.Run(ctx, loadgen.Config{
				Target: s.target, Names: forward, Concurrency: o.Concurrency,
				Duration: warmLimit, MaxQueries: len(forward), Timeout: o.Timeout, Dial: e.lab.Host.Dial,
			})
			if err != nil {
				return nil, fmt.Errorf("warm-up: %w", err)
			}
			u1, err := upstreamCount(ctx, up)
			if err != nil {
				return nil, err
			}
			rep.WarmAnswered, rep.UpstreamWarm = res.Answered, u1-u0
			progress("  warm-up   %d of %d names answered, upstream answered %d", res.Answered, len(forward), u1-u0)
		}
		// Paths, threads, and for the hits any name the warm-up lost.
		if _, err := load(ctx, e, sys, o, qs, loadgen.ClosedLoop, 300*time.Millisecond); err != nil {
			return nil, err
		}
		u0, err := upstreamCount(ctx, up)
		if err != nil {
			return nil, err
		}
		for _, mode := range []loadgen.Mode{loadgen.ClosedLoop, loadgen.OpenLoop} {
			pr, err := measure(ctx, e, sys, o, p.Pid(), qs, mode, o.CachePhase)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			if mode == loadgen.ClosedLoop {
				rep.Closed = pr
			} else {
				rep.Open = pr
			}
			progress("  %-7s %-6s qps %9.0f  lost %5d  p50 %8v  p99 %8v  cpu/q %6v", path, mode, pr.QPS, pr.Lost,
				pr.Latency.P50.Round(time.Microsecond/10), pr.Latency.P99.Round(time.Microsecond/10), pr.CPUPerQuery)
			if p.Exited() {
				return nil, fmt.Errorf("%s exited: %v\n%s", s.name, p.Err(), p.Log())
			}
		}
		if path == CacheHits {
			u1, err := upstreamCount(ctx, up)
			if err != nil {
				return nil, err
			}
			rep.UpstreamMeasured = u1 - u0
			progress("  upstream answered %d queries during the measured runs", u1-u0)
		}
		out = append(out, rep)
	}
	return out, nil
}

// measure runs one bounded load against s and reads the CPU time of pid
// and of the SUT core around it.
func measure(ctx context.Context, e *env, s *system, o Options, pid int, qs []loadgen.Query, mode loadgen.Mode, d time.Duration) (*PhaseResult, error) {
	var res *loadgen.Result
	u, err := cpuAround(pid, o.SUTCPU, func() (err error) {
		res, err = load(ctx, e, s, o, qs, mode, d)
		return err
	})
	if err != nil {
		return nil, err
	}
	pr := &PhaseResult{
		Sent: res.Sent, Answered: res.Answered, Lost: res.Lost, Errors: res.Errors,
		Mismatched: res.Mismatched, Rcodes: res.Rcodes, QPS: res.QPS,
		Latency: res.Latency, SendLagP99: res.SendLag.P99,
	}
	if res.Answered > 0 {
		pr.CPUPerQuery = u.cpu / time.Duration(res.Answered)
		pr.SysPerQuery = u.sys / time.Duration(res.Answered)
		pr.CorePerQuery = u.core / time.Duration(res.Answered)
	}
	return pr, nil
}

// usage is what cpuAround measures: the process's user+system time, its
// system time alone, and the busy time of the system-under-test core.
type usage struct{ cpu, sys, core time.Duration }

// cpuAround runs fn and returns the CPU time process pid used meanwhile
// (cpuTimes) and the busy time of core sutCPU (coreBusy): what every phase
// divides by the queries answered.
func cpuAround(pid, sutCPU int, fn func() error) (usage, error) {
	u0, s0, _ := cpuTimes(pid)
	core0 := coreBusy(sutCPU)
	if err := fn(); err != nil {
		return usage{}, err
	}
	u1, s1, _ := cpuTimes(pid)
	return usage{cpu: u1 + s1 - u0 - s0, sys: s1 - s0, core: coreBusy(sutCPU) - core0}, nil
}

// upstreamCount returns how many queries the upstream responder p has
// answered (UDP and TCP): it sends SIGUSR1 and reads the line p prints.
func upstreamCount(ctx context.Context, p *lab.Proc) (int64, error) {
	const prefix = "upstream: answered "
	before := strings.Count(p.Log(), prefix)
	if err := p.Signal(syscall.SIGUSR1); err != nil {
		return 0, fmt.Errorf("ask the upstream for its count: %w", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		log := p.Log()
		if strings.Count(log, prefix) > before {
			line := log[strings.LastIndex(log, prefix):]
			line, _, _ = strings.Cut(line, "\n")
			var udp, tcp int64
			if _, err := fmt.Sscanf(line, prefix+"%d queries over UDP, %d over TCP", &udp, &tcp); err != nil {
				return 0, fmt.Errorf("upstream's count %q: %w", line, err)
			}
			return udp + tcp, nil
		}
		if p.Exited() || time.Now().After(deadline) {
			return 0, fmt.Errorf("the upstream (pid %d) printed no count within 5 s of SIGUSR1 (exited: %v)\n%s", p.Pid(), p.Exited(), p.Log())
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// runCacheFill starts dnstun with --cache dnstunCacheSize and a control
// socket, sends o.CacheNames distinct names once (closed loop, bounded by
// fillLimit), reads the cache's counters and the RSS, then sends
// o.CacheZipf queries drawn from those names with a Zipf distribution and
// reads the counters again. A fill cut short by fillLimit is measured as
// far as it went, and says so in Why.
func runCacheFill(ctx context.Context, e *env, o Options, up *lab.Proc, blocked []loadgen.Query, progress func(string, ...any)) (*CacheFill, error) {
	cf := &CacheFill{CacheSize: dnstunCacheSize, Names: o.CacheNames, ZipfS: zipfS}
	sock := filepath.Join(e.dir, "cache-control.sock")
	p, err := startDnstun(e, o.ListSize, cacheSetup, "--control", sock)
	if err != nil {
		return cf, err
	}
	defer p.Stop()
	if _, err := e.firstAnswer(ctx, p, tunResolver, blocked[0].Name, lab.RcodeNXDomain, 60*time.Second); err != nil {
		return cf, fmt.Errorf("start: %w\n%s", err, p.Log())
	}
	stats := func() (map[string]uint64, error) {
		c, err := control.Dial(sock)
		if err != nil {
			return nil, fmt.Errorf("dnstun's control socket %s: %w\n%s", sock, err, p.Log())
		}
		defer c.Close()
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		m, err := c.Stats(cctx)
		if err != nil {
			return nil, fmt.Errorf("dnstun stats: %w", err)
		}
		return m, nil
	}
	if _, err := stats(); err != nil {
		return cf, err
	}
	cf.RSSStart, _ = memKiB(p.Pid())

	names := toQueries(AllowedNames(o.CacheNames))
	u0, err := upstreamCount(ctx, up)
	if err != nil {
		return cf, err
	}
	t0 := time.Now()
	res, err := loadgen.Run(ctx, loadgen.Config{
		Target: tunResolver, Names: names, Concurrency: o.Concurrency,
		Duration: fillLimit, MaxQueries: len(names), Timeout: o.Timeout, Dial: e.lab.Host.Dial,
	})
	cf.Took = time.Since(t0)
	if err != nil {
		return cf, fmt.Errorf("fill: %w", err)
	}
	cf.Sent, cf.Answered = res.Sent, res.Answered
	if int(res.Sent) < len(names) {
		cf.Why = fmt.Sprintf("the fill stopped after %v with %d of %d names sent", fillLimit, res.Sent, len(names))
	}
	u1, err := upstreamCount(ctx, up)
	if err != nil {
		return cf, err
	}
	cf.Upstream = u1 - u0
	m1, err := stats()
	if err != nil {
		return cf, err
	}
	cf.Entries, cf.Bytes, cf.Evictions = m1["cache_entries"], m1["cache_bytes"], m1["cache_evictions"]
	cf.RSS, cf.HWM = memKiB(p.Pid())
	progress("  fill: %d of %d names answered in %v (%.0f qps); cache %d entries, %.1f MiB, %d evictions; RSS %d MiB (start %d, peak %d)",
		res.Answered, len(names), cf.Took.Round(time.Millisecond), res.QPS, cf.Entries, float64(cf.Bytes)/(1<<20), cf.Evictions,
		cf.RSS/1024, cf.RSSStart/1024, cf.HWM/1024)
	if p.Exited() {
		return cf, fmt.Errorf("dnstun exited during the fill: %v\n%s", p.Err(), p.Log())
	}
	if o.CacheZipf <= 0 || res.Sent == 0 {
		return cf, nil
	}

	z := newZipf(int(res.Sent), zipfS, NameSeed)
	sample, ranks := z.sample(o.CacheZipf, NameSeed+1)
	qs := make([]loadgen.Query, len(sample))
	for i, n := range sample {
		qs[i] = names[n]
	}
	cf.ZipfQueries = len(qs)
	u2, err := upstreamCount(ctx, up)
	if err != nil {
		return cf, err
	}
	res, err = loadgen.Run(ctx, loadgen.Config{
		Target: tunResolver, Names: qs, Concurrency: o.Concurrency,
		Duration: fillLimit, MaxQueries: len(qs), Timeout: o.Timeout, Dial: e.lab.Host.Dial,
	})
	if err != nil {
		return cf, fmt.Errorf("zipf pass: %w", err)
	}
	cf.ZipfAnswered = res.Answered
	u3, err := upstreamCount(ctx, up)
	if err != nil {
		return cf, err
	}
	cf.ZipfUpstream = u3 - u2
	m2, err := stats()
	if err != nil {
		return cf, err
	}
	cf.ZipfHits, cf.ZipfMisses = m2["cache_hits"]-m1["cache_hits"], m2["cache_misses"]-m1["cache_misses"]
	cf.ZipfEntries, cf.ZipfBytes, cf.ZipfEvictions = m2["cache_entries"], m2["cache_bytes"], m2["cache_evictions"]
	cf.TopShare = topShare(ranks, int(cf.ZipfEntries))
	cf.RSSZipf, cf.HWMZipf = memKiB(p.Pid())
	progress("  zipf pass: %d of %d answered; hits %d, misses %d: hit ratio %.3f (the %d most popular names take %.3f of the queries); upstream answered %d; RSS %d MiB",
		res.Answered, len(qs), cf.ZipfHits, cf.ZipfMisses, cf.HitRatio(), cf.ZipfEntries, cf.TopShare, cf.ZipfUpstream, cf.RSSZipf/1024)
	if p.Exited() {
		return cf, fmt.Errorf("dnstun exited during the zipf pass: %v\n%s", p.Err(), p.Log())
	}
	return cf, nil
}

// SPDX-License-Identifier: MIT

package e2e

import (
	"fmt"
	"strings"
	"time"
)

// cacheMarkdown renders the response cache phase: the warmed hits beside
// dnstun's blocked path and the ceiling, the targets (not in a
// smoke run), and dnstun's cache after the fill. Empty when the phase did
// not run.
func cacheMarkdown(r *Report, smoke bool) string {
	c := r.Cache
	if c == nil {
		return ""
	}
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	o := r.Options
	w("\n## Response cache: warmed hits\n\n")
	if c.Why != "" {
		w("%s\n", c.Why)
		return b.String()
	}
	var configs []string
	for _, run := range c.Runs {
		if run.Path == CacheHits && run.Config != "" {
			configs = append(configs, run.System+" "+run.Config)
		}
	}
	w("The phase's own upstream (a second `bench/cmd/upstream`, %s, `-ttl %d`) answers every name with TTL %d. "+
		"Each system runs with its cache on (%s) and the %d-name block list. "+
		"Warm-up: every name of the forwarded mix (%d names under `%s`, type A) sent once, in order, %d in flight, then a 300 ms closed loop over the mix; "+
		"the upstream's count of answers (it prints it on SIGUSR1) is read around the warm-up pass and around the measured runs, so 0 in the last column means every measured query was a hit. "+
		"Then closed loop for %v with %d queries in flight and open loop at %.0f qps for %v. "+
		"The blocked rows run in this phase too, with the blocked mix: dnstun's blocked path in the same dnstun process after its hits, and the ceiling. "+
		"CPU µs/q as in the other phases (the process's user+sys time over the closed loop's answered queries); x blocked: CPU/q over dnstun's blocked CPU/q of this phase; "+
		"p50 − ceiling: the p50 at %.0f qps minus the ceiling's. Medians of the repetitions, (min–max) when they differ.\n\n",
		c.Upstream, c.TTL, c.TTL, strings.Join(configs, "; "), o.ListSize, forwardQueries, forwardZone, o.Concurrency,
		o.CachePhase, o.Concurrency, o.Rate, o.CachePhase, o.Rate)
	w("| system | queries | qps | CPU µs/q | x blocked | p50 µs | p99 µs | p50 − ceiling | lost %% | warm-up: answered / upstream | upstream during the runs |\n")
	w("|---|---|---|---|---|---|---|---|---|---|---|\n")
	closed := func(fn func(*PhaseResult) float64) func(*CacheRep) (float64, bool) {
		return func(rep *CacheRep) (float64, bool) {
			if rep.Closed == nil || rep.Closed.Answered == 0 {
				return 0, false
			}
			return fn(rep.Closed), true
		}
	}
	open := func(fn func(*PhaseResult) float64) func(*CacheRep) (float64, bool) {
		return func(rep *CacheRep) (float64, bool) {
			if rep.Open == nil || rep.Open.Answered == 0 {
				return 0, false
			}
			return fn(rep.Open), true
		}
	}
	p50 := func(p *PhaseResult) float64 { return float64(p.Latency.P50) }
	p99 := func(p *PhaseResult) float64 { return float64(p.Latency.P99) }
	blockedCPU := c.Run("dnstun", CacheBlocked).Metric(closed(cpuQ))
	ceilP50 := c.Run("ceiling", CacheBlocked).Metric(open(p50))
	for _, run := range c.Runs {
		if run.Why != "" {
			w("| %s | %s | %s | – | – | – | – | – | – | – | – |\n", run.System, run.Path, run.Why)
			continue
		}
		cpu := run.Metric(closed(cpuQ))
		if cpu.N == 0 {
			w("| %s | %s | **failed** (see the failures below) | – | – | – | – | – | – | – | – |\n", run.System, run.Path)
			continue
		}
		lat := run.Metric(open(p50))
		diff := "–"
		if lat.N > 0 && ceilP50.N > 0 {
			diff = fmt.Sprintf("%+.1f", (lat.Med-ceilP50.Med)/us)
		}
		warm, during := "–", "–"
		if run.Path == CacheHits {
			warm = f(run.Metric(func(rep *CacheRep) (float64, bool) { return float64(rep.WarmAnswered), true }), 1, 0) + " / " +
				f(run.Metric(func(rep *CacheRep) (float64, bool) { return float64(rep.UpstreamWarm), true }), 1, 0)
			during = f(run.Metric(func(rep *CacheRep) (float64, bool) { return float64(rep.UpstreamMeasured), true }), 1, 0)
		}
		w("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", run.System, run.Path,
			f(run.Metric(closed(qps)), 1, 0), f(cpu, us, 2), ratio(cpu, blockedCPU), f(lat, us, 1), f(run.Metric(open(p99)), us, 1),
			diff, f(run.Metric(closed(lossPct)), 1, 2), warm, during)
	}
	if notes := cacheRcodeNotes(c); notes != "" {
		w("\n%s\n", notes)
	}
	if !smoke {
		w("\n### Targets of issue 13 (response cache)\n\n")
		w("| target | measured | verdict |\n|---|---|---|\n")
		verdict := func(ok, have bool) string {
			switch {
			case !have:
				return "n/a"
			case ok:
				return "met"
			}
			return "**missed**"
		}
		hit := c.Run("dnstun", CacheHits)
		hitCPU, hitP50 := hit.Metric(closed(cpuQ)), hit.Metric(open(p50))
		w("| dnstun: a hit's CPU/q <= 1.1x a blocked query's | %.2f µs vs %.2f µs = %.2fx | %s |\n",
			hitCPU.Med/us, blockedCPU.Med/us, hitCPU.Med/blockedCPU.Med, verdict(hitCPU.Med <= 1.1*blockedCPU.Med, hitCPU.N > 0 && blockedCPU.N > 0))
		w("| dnstun: hit p50 <= ceiling p50 + 10 µs | %+.1f µs | %s |\n",
			(hitP50.Med-ceilP50.Med)/us, verdict(hitP50.Med-ceilP50.Med <= 10*us, hitP50.N > 0 && ceilP50.N > 0))
	}
	w("%s", cacheFillMarkdown(c.Fill, c.TTL, o))
	return b.String()
}

// cacheRcodeNotes lists the runs whose answers were not all of the rcode
// their path expects (NOERROR for hits, NXDOMAIN for blocked names), or
// mismatched.
func cacheRcodeNotes(c *CacheReport) string {
	var out []string
	for _, run := range c.Runs {
		want := 0
		if run.Path == CacheBlocked {
			want = 3
		}
		var answered, ok, mism int64
		for _, rep := range run.Reps {
			for _, p := range []*PhaseResult{rep.Closed, rep.Open} {
				if p != nil {
					answered += p.Answered
					ok += p.Rcodes[want]
					mism += p.Mismatched
				}
			}
		}
		if answered > ok || mism > 0 {
			out = append(out, fmt.Sprintf("%s %s: %d of %d answers not %s, %d mismatched", run.System, run.Path, answered-ok, answered,
				map[int]string{0: "NOERROR", 3: "NXDOMAIN"}[want], mism))
		}
	}
	if len(out) == 0 {
		return ""
	}
	return "Unexpected answers: " + strings.Join(out, "; ") + "."
}

// cacheFillMarkdown renders dnstun's cache after the fill; empty without
// one.
func cacheFillMarkdown(cf *CacheFill, ttl int, o Options) string {
	if cf == nil {
		return ""
	}
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	mib := func(kib int64) string { return fmt.Sprintf("%.1f", float64(kib)/1024) }
	w("\n## Response cache: %d distinct names with `--cache %s`\n\n", cf.Names, cf.CacheSize)
	w("dnstun (packet path) with `--cache %s`, the %d-name block list and a control socket. "+
		"The fill: the names `f0.%s` to `f%d.%s` (type A, TTL %d, none blocked) sent once each, in order, %d in flight, at most %v; "+
		"then the cache's counters (`dnstun stats`: `cache_entries`, `cache_bytes`, `cache_evictions`) and dnstun's VmRSS and VmHWM (the peak). "+
		"Then a second pass of %d queries drawn from the names sent with a Zipf distribution (s = %g: the name of rank r asked with probability proportional to 1/r^s), "+
		"the ranks given to the names in a fixed random order, unrelated to the order the fill sent them in; "+
		"its hit ratio is `cache_hits / (cache_hits + cache_misses)` over the pass. "+
		"Beside it, the share of the pass's queries that asked one of the N most popular names, N the entries the cache held after the pass: the hit ratio of a cache that held exactly those names throughout. "+
		"Run once (not repeated), after the other runs of the phase.\n\n",
		cf.CacheSize, o.ListSize, forwardZone, cf.Names-1, forwardZone, ttl, o.Concurrency, fillLimit,
		cf.ZipfQueries, cf.ZipfS)
	w("| measure | value |\n|---|---|\n")
	w("| names sent / answered | %d / %d |\n", cf.Sent, cf.Answered)
	qpsFill := 0.0
	if cf.Took > 0 {
		qpsFill = float64(cf.Answered) / cf.Took.Seconds()
	}
	w("| fill took | %v (%.0f answers/s) |\n", cf.Took.Round(100*time.Millisecond), qpsFill)
	w("| upstream answered during the fill | %d |\n", cf.Upstream)
	w("| `cache_entries` after the fill | %d |\n", cf.Entries)
	w("| `cache_bytes` after the fill | %d (%.1f MiB) |\n", cf.Bytes, float64(cf.Bytes)/(1<<20))
	w("| `cache_evictions` after the fill | %d |\n", cf.Evictions)
	w("| dnstun RSS MiB: before the fill / after / peak (VmHWM) | %s / %s / %s |\n", mib(cf.RSSStart), mib(cf.RSS), mib(cf.HWM))
	if cf.ZipfQueries > 0 {
		w("| Zipf pass: queries answered | %d of %d |\n", cf.ZipfAnswered, cf.ZipfQueries)
		if hr := cf.HitRatio(); hr >= 0 {
			w("| **hit ratio** over the pass | **%.3f** (%d hits, %d misses) |\n", hr, cf.ZipfHits, cf.ZipfMisses)
		} else {
			w("| hit ratio over the pass | – (no lookups counted) |\n")
		}
		w("| share of the pass's queries for the %d most popular names | %.3f |\n", cf.ZipfEntries, cf.TopShare)
		w("| upstream answered during the pass | %d |\n", cf.ZipfUpstream)
		w("| cache after the pass: entries, bytes, evictions | %d, %.1f MiB, %d |\n", cf.ZipfEntries, float64(cf.ZipfBytes)/(1<<20), cf.ZipfEvictions)
		w("| dnstun RSS MiB after the pass / peak (VmHWM) | %s / %s |\n", mib(cf.RSSZipf), mib(cf.HWMZipf))
	}
	if cf.Why != "" {
		w("| note | %s |\n", cf.Why)
	}
	return b.String()
}

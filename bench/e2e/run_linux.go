// SPDX-License-Identifier: MIT

package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dnstun/dnstun/bench/loadgen"
	"github.com/dnstun/dnstun/internal/lab"
)

// SystemNames lists every system in the order they are measured.
func SystemNames() []string {
	var out []string
	for _, s := range allSystems() {
		out = append(out, s.name)
	}
	return out
}

// Run runs the benchmark. Everything it creates is removed before it
// returns, also when ctx is cancelled (then the partial report is returned
// with ctx's error).
func Run(ctx context.Context, o Options) (rep *Report, err error) {
	progress := o.Progress
	if progress == nil {
		progress = func(string, ...any) {}
	}
	if o.Reps < 1 || o.Closed <= 0 || o.Open <= 0 || o.Rate <= 0 || o.ListSize < 1 {
		return nil, errors.New("e2e: Reps, Closed, Open, Rate and ListSize must be positive")
	}
	if o.Transports < 0 || o.Lookups < 0 {
		return nil, errors.New("e2e: Transports and Lookups must be >= 0")
	}
	if o.TransportsOnly && o.Transports == 0 {
		return nil, errors.New("e2e: TransportsOnly needs Transports > 0 (the length of each run)")
	}
	if o.CachePhase < 0 || o.CacheNames < 0 || o.CacheZipf < 0 {
		return nil, errors.New("e2e: CachePhase, CacheNames and CacheZipf must be >= 0")
	}
	if o.CacheOnly && o.CachePhase == 0 {
		return nil, errors.New("e2e: CacheOnly needs CachePhase > 0 (the length of each run: give -cache-phase)")
	}
	if o.TCP < 0 || (o.TCP > 0 && (o.TCPConcurrency < 1 || o.TCPPipeline < 1 || o.TCPPipeline > min(TCPPerConn, loadgen.MaxPipeline, o.TCPConcurrency))) {
		return nil, fmt.Errorf("e2e: TCP must be >= 0, TCPConcurrency positive and TCPPipeline 1..min(%d, TCPConcurrency)", TCPPerConn)
	}
	for _, n := range o.Systems {
		if !slices.Contains(SystemNames(), n) {
			return nil, fmt.Errorf("e2e: unknown system %q (have %s)", n, strings.Join(SystemNames(), ", "))
		}
	}
	rep = &Report{Options: o, Started: time.Now(), Machine: Machine()}
	defer func() {
		if rep != nil { // nil when Run failed before any figure
			rep.Took = time.Since(rep.Started)
		}
	}()

	dir, err := os.MkdirTemp("", "dnstun-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)

	bins, err := buildBins(ctx, o, dir, progress)
	if err != nil {
		return nil, err
	}

	// Lists and query mixes.
	bigList := o.BigListSize
	if o.only() {
		bigList = 0 // only the load phases' systems use it
	}
	progress("generating lists: %d and %d names", o.ListSize, bigList)
	all := BlockNames(max(o.ListSize, bigList))
	e := &env{dir: dir, moduleDir: o.ModuleDir, bins: bins, lists: map[int]map[listFormat]string{}}
	for _, n := range []int{o.ListSize, bigList} {
		if n == 0 || e.lists[n] != nil {
			continue
		}
		e.lists[n] = map[listFormat]string{}
		for f, ext := range map[listFormat]string{fmtPlain: "txt", fmtDnsmasq: "dnsmasq.conf", fmtUnbound: "unbound.conf"} {
			p := filepath.Join(dir, fmt.Sprintf("block-%d.%s", n, ext))
			if err := writeList(p, all[:n], f); err != nil {
				return nil, err
			}
			e.lists[n][f] = p
		}
	}
	blocked := toQueries(BlockedSample(all, o.ListSize, blockedQueries))
	forward := toQueries(AllowedNames(forwardQueries))
	for name, qs := range map[string][]loadgen.Query{"blocked": blocked, "forward": forward} {
		var b bytes.Buffer
		for _, q := range qs {
			b.WriteString(q.Name + " A\n")
		}
		if err := os.WriteFile(filepath.Join(dir, name+".txt"), b.Bytes(), 0o644); err != nil {
			return nil, err
		}
	}
	if e.lookupNames, err = writeLookupNames(dir, blocked, forward); err != nil {
		return nil, err
	}

	progress("building namespaces; client and upstream on cpu %d, system under test on cpu %d", o.ClientCPU, o.SUTCPU)
	e.cpus = cpus{client: o.ClientCPU, sut: o.SUTCPU}
	l, upstream, err := newLab(ctx, bins["upstream"], e.cpus)
	if err != nil {
		return nil, err
	}
	defer l.Close()
	e.lab, e.upstream = l, upstream
	e.dial = newNSDialer(l.Host, max(o.TCPConcurrency, 1))
	defer e.dial.Close()

	var systems []*system
	for _, s := range allSystems() {
		if o.only() || (len(o.Systems) > 0 && !slices.Contains(o.Systems, s.name)) {
			continue
		}
		sr := &SystemReport{Name: s.name, Label: s.label}
		sr.Why = s.avail(e)
		if sr.Why == "" {
			sr.Version = s.version(e)
			systems = append(systems, s)
		}
		rep.Systems = append(rep.Systems, sr)
	}

	// Repetitions are interleaved (rep 1 of every system, then rep 2...)
	// so that a drift of the machine spreads over all systems.
	for r := range o.Reps {
		for _, s := range systems {
			sr := rep.System(s.name)
			progress("rep %d/%d: %s", r+1, o.Reps, s.name)
			rr, err := runSystem(ctx, e, s, o, len(sr.Reps) == 0, blocked, forward, progress)
			if err != nil {
				if ctx.Err() != nil {
					return rep, ctx.Err()
				}
				progress("  %s failed: %v", s.name, err)
				rep.Notes = append(rep.Notes, fmt.Sprintf("%s, rep %d: %v", s.name, r+1, firstLines(err.Error(), 6)))
				continue
			}
			sr.Reps = append(sr.Reps, rr)
		}
	}
	if d := rep.System("direct"); d != nil && len(d.Reps) > 0 {
		rep.Responder = time.Duration(d.PhaseMetric(ClosedForward, func(p *PhaseResult) float64 { return float64(p.CPUPerQuery) }).Med)
	}

	if o.Transports > 0 && (!o.only() || o.TransportsOnly) && ctx.Err() == nil {
		var notes []string
		rep.Transports, notes = runTransports(ctx, e, o, forward, progress)
		rep.Notes = append(rep.Notes, notes...)
	}
	if o.CachePhase > 0 && (!o.only() || o.CacheOnly) && ctx.Err() == nil {
		var notes []string
		rep.Cache, notes = runCache(ctx, e, o, blocked, forward, progress)
		rep.Notes = append(rep.Notes, notes...)
	}
	if o.Dnsperf && !o.only() && ctx.Err() == nil {
		rep.Dnsperf = crossCheck(ctx, e, o, blocked, forward, progress)
	}
	return rep, ctx.Err()
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, " / ")
}

func toQueries(names []string) []loadgen.Query {
	out := make([]loadgen.Query, len(names))
	for i, n := range names {
		out[i] = loadgen.Query{Name: n, Type: 1}
	}
	return out
}

// buildBins builds the binaries not given in o.Bins.
func buildBins(ctx context.Context, o Options, dir string, progress func(string, ...any)) (map[string]string, error) {
	bins := map[string]string{}
	pkgs := map[string]string{"dnstun": "./cmd/dnstun", "ceiling": "./bench/cmd/ceiling", "upstream": "./bench/cmd/upstream"}
	if o.Transports > 0 && (!o.only() || o.TransportsOnly) {
		pkgs["quicupstream"] = "./bench/cmd/quicupstream"
	}
	if o.Lookups > 0 && !o.only() {
		pkgs["golookup"] = "./bench/cmd/golookup"
	}
	for name, pkg := range pkgs {
		if p := o.Bins[name]; p != "" {
			bins[name] = p
			continue
		}
		out := filepath.Join(dir, name)
		progress("go build %s", pkg)
		cmd := exec.CommandContext(ctx, goTool(), "build", "-o", out, pkg)
		cmd.Dir = o.ModuleDir
		if b, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
		}
		bins[name] = out
	}
	return bins, nil
}

// runSystem runs one repetition of s: start with the list, the four load
// phases, the lookup and the TCP phases, stop; then, with big set (the
// system's first repetition), the start-up, RSS and reload measurement
// with the big list.
func runSystem(ctx context.Context, e *env, s *system, o Options, big bool, blocked, forward []loadgen.Query, progress func(string, ...any)) (*RepResult, error) {
	rr := &RepResult{Phases: map[string]*PhaseResult{}}
	var p *lab.Proc
	pid := e.upstream.Pid() // direct: the responder does the work
	if s.start != nil {
		var err error
		if p, err = s.start(e, o.ListSize); err != nil {
			return nil, err
		}
		defer p.Stop()
		if rr.Start, err = e.readyPinned(ctx, p, s.target, blocked[0].Name, lab.RcodeNXDomain, 60*time.Second, o.SUTCPU); err != nil {
			return nil, err
		}
		pid = p.Pid()
	}
	// Warm-up: paths, caches, thread pools.
	warm := forward
	if !s.fwd {
		warm = blocked
	}
	if _, err := load(ctx, e, s, o, warm, loadgen.ClosedLoop, 300*time.Millisecond); err != nil {
		return nil, err
	}
	for _, ph := range Phases {
		qs, mode, d := blocked, loadgen.ClosedLoop, o.Closed
		if ph == ClosedForward || ph == OpenForward {
			qs = forward
			if !s.fwd {
				continue
			}
		}
		if ph == OpenBlocked || ph == OpenForward {
			mode, d = loadgen.OpenLoop, o.Open
		}
		if s.name == "direct" && (ph == ClosedBlocked || ph == OpenBlocked) {
			continue // direct has no list: its figures are the forward ones
		}
		pr, err := measure(ctx, e, s, o, pid, qs, mode, d)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", ph, err)
		}
		rr.Phases[ph] = pr
		progress("  %-15s qps %9.0f  lost %5d  p50 %8v  p99 %8v  cpu/q %6v  core/q %6v",
			ph, pr.QPS, pr.Lost, pr.Latency.P50.Round(time.Microsecond/10), pr.Latency.P99.Round(time.Microsecond/10),
			pr.CPUPerQuery, pr.CorePerQuery)
		if p != nil && p.Exited() {
			return nil, fmt.Errorf("%s exited during %s: %v\n%s", s.name, ph, p.Err(), p.Log())
		}
	}
	if err := runLookupPhases(ctx, e, s, o, rr, p, pid, progress); err != nil {
		return nil, err
	}
	if err := runTCPPhases(ctx, e, s, o, rr, p, pid, blocked, forward, progress); err != nil {
		return nil, err
	}
	if p != nil {
		rr.RSS, rr.HWM = memKiB(p.Pid())
		p.Stop()
	}
	if big && s.start != nil && o.BigListSize > 0 && s.blocks {
		bp, err := s.start(e, o.BigListSize)
		if err != nil {
			return nil, err
		}
		defer bp.Stop()
		if rr.StartBig, err = e.firstAnswer(ctx, bp, s.target, blocked[0].Name, lab.RcodeNXDomain, 120*time.Second); err != nil {
			return nil, fmt.Errorf("start with %d names: %w\n%s", o.BigListSize, err, bp.Log())
		}
		// Settle, then answer a few queries: RSS of a serving process.
		time.Sleep(500 * time.Millisecond)
		if _, err := load(ctx, e, s, Options{Concurrency: 8, Timeout: o.Timeout}, blocked[:1000], loadgen.ClosedLoop, 200*time.Millisecond); err != nil {
			return nil, err
		}
		time.Sleep(500 * time.Millisecond)
		rr.RSSBig, rr.HWMBig = memKiB(bp.Pid())
		progress("  start-up with %d names %v, RSS %d MiB (with %d names: start %v, RSS %d MiB)",
			o.BigListSize, rr.StartBig.Round(time.Millisecond), rr.RSSBig/1024, o.ListSize, rr.Start.Round(time.Millisecond), rr.RSS/1024)
		if s.reloads {
			if rr.ReloadPeak, rr.Reload, err = e.measureReload(ctx, bp, s.target, e.lists[o.BigListSize][fmtPlain], reloadReps); err != nil {
				return nil, fmt.Errorf("reload with %d names: %w\n%s", o.BigListSize, err, bp.Log())
			}
			progress("  reload of %d names: %v, peak RSS %d MiB (%.2fx the steady %d MiB)", o.BigListSize,
				rr.Reload.Round(time.Millisecond), rr.ReloadPeak/1024, float64(rr.ReloadPeak)/float64(rr.RSSBig), rr.RSSBig/1024)
		}
		bp.Stop()
	}
	return rr, nil
}

// runTCPPhases runs the DNS-over-TCP phases of s (when it answers over
// TCP and o.TCP > 0) into rr. A system that does not answer over TCP gets
// phases with nothing answered and the reason in FirstError: a failed
// connect ends after o.Timeout, so nothing waits longer than o.TCP +
// o.Timeout per phase.
func runTCPPhases(ctx context.Context, e *env, s *system, o Options, rr *RepResult, p *lab.Proc, pid int,
	blocked, forward []loadgen.Query, progress func(string, ...any)) error {
	if !s.tcp || o.TCP <= 0 {
		return nil
	}
	for _, ph := range TCPPhases {
		qs, perConn, pipeline := forward, 1, 1
		if ph == TCP1Blocked || ph == TCPNBlocked {
			if !o.TCPBlocked || !s.blocks {
				continue
			}
			qs = blocked
		} else if !s.fwd {
			continue
		}
		if ph == TCPNForward || ph == TCPNBlocked {
			perConn, pipeline = TCPPerConn, o.TCPPipeline
		}
		var res *loadgen.Result
		t0 := time.Now()
		u, err := cpuAround(pid, o.SUTCPU, func() (err error) {
			res, err = loadTCP(ctx, e, s, o, qs, perConn, pipeline)
			return err
		})
		took := time.Since(t0)
		if err != nil {
			return fmt.Errorf("%s: %w", ph, err)
		}
		pr := &PhaseResult{
			Sent: res.Sent, Answered: res.Answered, Lost: res.Lost, Errors: res.Errors,
			Mismatched: res.Mismatched, Rcodes: res.Rcodes, QPS: res.QPS, Latency: res.Latency,
			Conns: res.Conns, ConnFailed: res.ConnFailed, Closed: res.Closed, FirstError: res.FirstError,
		}
		if res.Answered > 0 {
			pr.CPUPerQuery = u.cpu / time.Duration(res.Answered)
			pr.CorePerQuery = u.core / time.Duration(res.Answered)
		}
		rr.Phases[ph] = pr
		progress("  %-15s qps %9.0f  lost %5d  p50 %8v  p99 %8v  cpu/q %6v  conns %6d  failed %5d  closed %5d  in %v%s",
			ph, pr.QPS, pr.Lost, pr.Latency.P50.Round(time.Microsecond/10), pr.Latency.P99.Round(time.Microsecond/10),
			pr.CPUPerQuery, pr.Conns, pr.ConnFailed, pr.Closed, took.Round(time.Millisecond), errSuffix(pr.FirstError))
		if p != nil && p.Exited() {
			return fmt.Errorf("%s exited during %s: %v\n%s", s.name, ph, p.Err(), p.Log())
		}
	}
	return nil
}

func errSuffix(s string) string {
	if s == "" {
		return ""
	}
	return "  first error: " + s
}

// loadTCP runs one bounded closed-loop DNS-over-TCP load against s from the
// SUT namespace: o.TCPConcurrency queries in flight, perConn queries per
// connection, up to pipeline of them in flight on one connection.
func loadTCP(ctx context.Context, e *env, s *system, o Options, qs []loadgen.Query, perConn, pipeline int) (*loadgen.Result, error) {
	return loadgen.Run(ctx, loadgen.Config{
		Target:         s.target,
		Names:          qs,
		Seed:           1,
		Transport:      loadgen.TCP,
		Concurrency:    o.TCPConcurrency,
		QueriesPerConn: perConn,
		Pipeline:       pipeline,
		Duration:       o.TCP,
		// Bound by count too: no path here answers 1M qps.
		MaxQueries:  int(o.TCP.Seconds()*1e6) + 1000,
		Timeout:     o.Timeout,
		DialContext: e.dial.DialContext,
	})
}

// load runs one bounded load against s from the SUT namespace.
func load(ctx context.Context, e *env, s *system, o Options, qs []loadgen.Query, mode loadgen.Mode, d time.Duration) (*loadgen.Result, error) {
	cfg := loadgen.Config{
		Target:   s.target,
		Names:    qs,
		Seed:     1,
		Mode:     mode,
		Duration: d,
		Timeout:  o.Timeout,
		Dial:     e.lab.Host.Dial,
	}
	if mode == loadgen.ClosedLoop {
		cfg.Concurrency = o.Concurrency
		// Bound by count too: no path here answers 1M qps.
		cfg.MaxQueries = int(d.Seconds()*1e6) + 1000
	} else {
		cfg.Rate = o.Rate
		cfg.MaxQueries = int(d.Seconds()*o.Rate) + 1
	}
	return loadgen.Run(ctx, cfg)
}

// checkPinned verifies that pid runs on cpu only.
func checkPinned(pid, cpu int) error {
	if cpu < 0 {
		return nil
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return err
	}
	m := regexp.MustCompile(`(?m)^Cpus_allowed_list:\s*(\S+)`).FindSubmatch(b)
	if m == nil || string(m[1]) != strconv.Itoa(cpu) {
		return fmt.Errorf("pid %d is not pinned to cpu %d (/proc/%d/status: %q)", pid, cpu, pid, m)
	}
	return nil
}

// Machine describes the machine: CPU model and count, memory, kernel.
func Machine() string {
	var model string
	n := 0
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok {
				switch strings.TrimSpace(k) {
				case "model name":
					model = strings.TrimSpace(v)
					n++
				}
			}
		}
	}
	var mem string
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		f := strings.Fields(string(b))
		if len(f) > 1 {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			mem = fmt.Sprintf("%.1f GiB RAM", float64(kb)/(1<<20))
		}
	}
	uname, _ := exec.Command("uname", "-srvm").Output()
	return fmt.Sprintf("%d x %s, %s; %s; %s", n, model, mem, strings.TrimSpace(string(uname)), runtime.Version())
}

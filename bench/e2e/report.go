// SPDX-License-Identifier: MIT

package e2e

import (
	"slices"
	"time"

	"github.com/dnstun/dnstun/bench/loadgen"
)

// Options configures a benchmark run.
type Options struct {
	// Reps is the number of repetitions of every measurement (median,
	// min and max are reported).
	Reps int
	// Closed is the length of each closed-loop (saturation) run, Open of
	// each open-loop (fixed-rate) run.
	Closed, Open time.Duration
	// Concurrency is the closed-loop number of queries in flight (UDP
	// and TCP).
	Concurrency int
	// TCP is the length of each DNS-over-TCP run (closed loop); 0 skips
	// the TCP phases.
	TCP time.Duration
	// TCPConcurrency is the number of queries in flight in the TCP
	// phases. The 1-per-connection phases have TCPConcurrency connections
	// open at a time, the TCPPerConn ones TCPConcurrency/TCPPipeline, each
	// with up to TCPPipeline queries in flight.
	TCPConcurrency, TCPPipeline int
	// TCPBlocked adds the TCP phases with blocked names.
	TCPBlocked bool
	// Transports is the length of each run of the upstream transports
	// phase (closed loop, then open loop at Rate): dnstun and dnsdist
	// forwarding to one upstream over each transport; 0 skips it.
	Transports time.Duration `json:",omitempty"`
	// TransportsOnly runs the transports phase alone (no other phase, no
	// dnsperf); with CacheOnly, the two phases.
	TransportsOnly bool `json:",omitempty"`
	// CachePhase is the length of each run of the response cache phase
	// (closed loop, then open loop at Rate): dnstun's cache hits and the
	// peers' with their caches on, warmed with every name of the
	// forwarded mix, beside dnstun's blocked path and the ceiling; then
	// dnstun's cache filled with CacheNames distinct names. 0 skips it.
	CachePhase time.Duration `json:",omitempty"`
	// CacheOnly runs the cache phase alone (no other phase, no dnsperf);
	// with TransportsOnly, the two phases.
	CacheOnly bool `json:",omitempty"`
	// CacheNames is how many distinct names the cache phase sends through
	// dnstun once (0 skips that part), CacheZipf how many queries its
	// second pass draws from them (Zipf, s = 1).
	CacheNames int `json:",omitempty"`
	CacheZipf  int `json:",omitempty"`
	// Lookups is the length of each run of the lookup phase (closed
	// loop, then open loop): an ordinary Go program's resolver
	// (bench/cmd/golookup: a fresh socket per query, A and AAAA in
	// parallel) looking the mixes up through the systems that have
	// lookups set; 0 skips it.
	Lookups time.Duration `json:",omitempty"`
	// Rate is the open-loop rate in queries per second.
	Rate float64
	// Timeout is the time after which a query counts as lost.
	Timeout time.Duration
	// ListSize is the block list size of the load runs; BigListSize that
	// of the RSS, start-up and reload measurement (0 skips it), made in
	// each system's first repetition only: it measures the list, not
	// the load.
	ListSize, BigListSize int
	// Systems selects systems by name (empty: all).
	Systems []string
	// ClientCPU runs the client (and the upstream), SUTCPU the system
	// under test; -1 does not pin.
	ClientCPU, SUTCPU int
	// Dnsperf runs the dnsperf cross-check when dnsperf is installed.
	Dnsperf bool
	// Bins holds prebuilt binaries: "dnstun", "ceiling", "upstream",
	// "quicupstream"; the missing ones are built with `go build` from
	// ModuleDir.
	Bins map[string]string
	// ModuleDir is the root of the dnstun module (for go build).
	ModuleDir string
	// Progress, when set, receives one line per step.
	Progress func(format string, args ...any) `json:"-"`
}

// Defaults returns the options of the default run (about 8.5 min on a
// 2-core machine, filter and micro-benchmarks included). Three
// repetitions, as the spread between them is larger than that within a
// run; 1 s runs, as each still answers 10^4 to 10^5 queries (a closed
// loop keeps the system's core busy, so CPU ticks of 10 ms are within 1%
// of its CPU time) and the open loop's p50 comes from 2,000 samples.
func Defaults() Options {
	return Options{
		Reps: 3, Closed: time.Second, Open: time.Second,
		Concurrency: 64, Rate: 2000, Timeout: time.Second,
		TCP: time.Second, TCPConcurrency: 16, TCPPipeline: 1, TCPBlocked: true, Transports: time.Second,
		CachePhase: time.Second, CacheNames: 1_000_000, CacheZipf: 100_000, Lookups: time.Second,
		ListSize: 100_000, BigListSize: 1_000_000,
		ClientCPU: 0, SUTCPU: 1, Dnsperf: true,
	}
}

// Smoke returns the options of the smoke run: a few seconds, one
// repetition, small lists.
func Smoke() Options {
	o := Defaults()
	o.Reps = 1
	o.Closed, o.Open = 500*time.Millisecond, 500*time.Millisecond
	o.Rate = 1000
	o.TCP, o.TCPBlocked = 100*time.Millisecond, false
	o.Lookups = 200 * time.Millisecond
	o.Transports = 0 // -transports DURATION turns it on
	o.CachePhase = 0 // -cache-phase DURATION turns it on
	o.CacheNames, o.CacheZipf = 20_000, 10_000
	o.ListSize, o.BigListSize = 10_000, 0
	o.Dnsperf = false
	return o
}

// LookupConcurrency is the lookup phase's closed-loop lookups at a time:
// half of Concurrency, as each lookup has two queries in flight (A and
// AAAA), so that as many queries are in flight as in the closed-loop
// phases.
func LookupConcurrency(o Options) int { return max(o.Concurrency/2, 1) }

// LookupRate is the lookup phase's open-loop rate in lookups a second:
// half of Rate, so that the systems answer Rate queries a second, as in
// the open-loop phases.
func LookupRate(o Options) float64 { return o.Rate / 2 }

// reloadReps is how many reloads of the big list are measured (in the
// first repetition).
const reloadReps = 3

// Phase names.
const (
	ClosedBlocked = "closed-blocked"
	ClosedForward = "closed-forward"
	OpenBlocked   = "open-blocked"
	OpenForward   = "open-forward"
)

// Phases in the order they run.
var Phases = []string{ClosedBlocked, ClosedForward, OpenBlocked, OpenForward}

// DNS-over-TCP phase names: closed loop, one query per connection or
// TCPPerConn per connection.
const (
	TCP1Forward = "tcp1-forward"
	TCPNForward = "tcp100-forward"
	TCP1Blocked = "tcp1-blocked"
	TCPNBlocked = "tcp100-blocked"
	TCPPerConn  = 100
)

// TCPPhases in the order they run (after Phases), for the systems that
// answer over TCP; the blocked ones only with Options.TCPBlocked.
var TCPPhases = []string{TCP1Forward, TCPNForward, TCP1Blocked, TCPNBlocked}

// tcpConns is the number of TCP connections dnsmasq (max-tcp-connections,
// default 20) and unbound (incoming-num-tcp, default 10) serve at once:
// above the benchmark's Concurrency, so that none waits in the listen
// queue because of a default.
const tcpConns = 256

// Lookup phase names: the blocked and the forwarded mix looked up by Go's
// resolver (RepResult.Lookups).
const (
	LookupBlocked = "lookup-blocked"
	LookupForward = "lookup-forward"
)

// LookupRuns is one mix of the lookup phase: the closed-loop run
// (LookupConcurrency lookups at a time) and the open-loop one (LookupRate
// lookups a second).
type LookupRuns struct {
	Closed, Open *LookupRun
}

// LookupRun is one run of bench/cmd/golookup against a system: what the
// program measured, and the system's CPU time and its core's busy time
// during the run over the lookups answered (two queries each).
type LookupRun struct {
	loadgen.LookupResult
	CPUPerLookup, CorePerLookup time.Duration
}

// PhaseResult is one load run against one system.
type PhaseResult struct {
	Sent, Answered, Lost, Errors, Mismatched int64
	Rcodes                                   map[int]int64
	QPS                                      float64
	Latency                                  loadgen.Percentiles
	SendLagP99                               time.Duration
	// CPUPerQuery is the process's user+sys time during the run divided
	// by the answered queries (the upstream responder's for direct).
	CPUPerQuery time.Duration
	// SysPerQuery is the system (kernel) part of CPUPerQuery: the system
	// calls' work, and the softirqs that ran in the process's context.
	SysPerQuery time.Duration `json:",omitempty"`
	// CorePerQuery is the busy time of the system-under-test core divided
	// by the answered queries (softirq included).
	CorePerQuery time.Duration
	// TCP phases: connections established, failed and closed by the
	// server with queries in flight (loadgen.Result), and the first error.
	Conns, ConnFailed, Closed int64  `json:",omitempty"`
	FirstError                string `json:",omitempty"`
}

// RepResult is one repetition of one system.
type RepResult struct {
	Phases map[string]*PhaseResult
	// Start is the time from exec to the first NXDOMAIN for a blocked
	// name with the ListSize list; Start1M with the BigListSize list.
	Start, StartBig time.Duration
	// RSS (KiB) after the load runs with the ListSize list; RSSBig after
	// the first answer (+ 1 s) with the BigListSize list. HWM: peak.
	RSS, HWM, RSSBig, HWMBig int64
	// ReloadPeak (KiB) is the highest VmHWM while reloading a changed
	// BigListSize list (SIGHUP), and Reload the slowest of those reloads
	// (signal to the first answer that the new list blocks).
	ReloadPeak int64         `json:",omitempty"`
	Reload     time.Duration `json:",omitempty"`
	// Lookups holds the lookup phase's mixes by phase name
	// (LookupBlocked, LookupForward); nil when it did not run.
	Lookups map[string]*LookupRuns `json:",omitempty"`
}

// SystemReport is everything measured for one system.
type SystemReport struct {
	Name, Label, Version string
	// Why is non-empty when the system could not run.
	Why  string
	Reps []*RepResult
}

// CrossCheck compares loadgen with dnsperf on one target.
type CrossCheck struct {
	System, Queries                string
	LoadgenQPS, DnsperfQPS         float64
	LoadgenAvgLat, DnsperfAvgLat   time.Duration
	LoadgenLost, DnsperfLost       int64
	DnsperfVersion, DnsperfCommand string
	Why                            string
}

// Report is the outcome of Run.
type Report struct {
	Options   Options
	Command   string
	Started   time.Time
	Took      time.Duration
	Machine   string
	Systems   []*SystemReport
	Dnsperf   []*CrossCheck
	Notes     []string
	Upstream  string
	Responder time.Duration // upstream responder CPU per query (direct, forwarded names)
	// Filter holds the filter package's benchmarks (RunFilterBenches),
	// run with FilterCommand.
	Filter        []*FilterBench `json:",omitempty"`
	FilterCommand string         `json:",omitempty"`
	// Micro holds the hot-path packages' benchmarks (RunMicroBenches).
	Micro        []*FilterBench `json:",omitempty"`
	MicroCommand string         `json:",omitempty"`
	// Transports is the upstream transports phase (Options.Transports);
	// nil when it did not run (and in reports from before it existed).
	Transports *TransportsReport `json:",omitempty"`
	// Cache is the response cache phase (Options.CachePhase); nil when it
	// did not run (and in reports from before it existed).
	Cache *CacheReport `json:",omitempty"`
}

// only reports whether o runs only some phases (TransportsOnly,
// CacheOnly): then the systems' load phases, the big list and dnsperf
// are skipped.
func (o Options) only() bool { return o.TransportsOnly || o.CacheOnly }

// Paths of the cache phase: what a run's queries exercise.
const (
	// CacheHits: the forwarded mix, every name of it in the cache.
	CacheHits = "hits"
	// CacheBlocked: the blocked mix (dnstun's blocked path, the ceiling).
	CacheBlocked = "blocked"
)

// CacheReport is the response cache phase: warmed hits beside the blocked
// path and the ceiling (Runs), and dnstun's cache after CacheNames
// distinct names (Fill).
type CacheReport struct {
	// TTL is the TTL of the phase's upstream answers; Upstream where it
	// answered (a second bench/cmd/upstream, -ttl TTL).
	TTL      int
	Upstream string
	// Why is set when the phase could not run at all.
	Why  string `json:",omitempty"`
	Runs []*CacheRun
	// Fill is nil when Options.CacheNames is 0.
	Fill *CacheFill `json:",omitempty"`
}

// CacheRun is one system on one path (CacheHits, CacheBlocked).
type CacheRun struct {
	System, Path string
	// Config says how the system's cache was set up.
	Config string
	// Why is set when the system could not run here.
	Why  string `json:",omitempty"`
	Reps []*CacheRep
}

// CacheRep is one repetition of a CacheRun.
type CacheRep struct {
	// Closed is the saturation run, Open the run at Options.Rate.
	Closed, Open *PhaseResult
	// CacheHits only: the warm-up pass sent every name of the mix once
	// and WarmAnswered were answered; the upstream answered UpstreamWarm
	// queries during that pass and UpstreamMeasured during the closed
	// and open runs (0 when every query was a hit).
	WarmAnswered, UpstreamWarm, UpstreamMeasured int64
}

// Run returns the run of system on path, or nil.
func (c *CacheReport) Run(system, path string) *CacheRun {
	if c == nil {
		return nil
	}
	for _, r := range c.Runs {
		if r.System == system && r.Path == path {
			return r
		}
	}
	return nil
}

// Metric collects one number from every repetition of r; ok=false entries
// are skipped.
func (r *CacheRun) Metric(f func(*CacheRep) (float64, bool)) Stat {
	if r == nil {
		return Stat{}
	}
	return metric(r.Reps, f)
}

// CacheFill is dnstun (packet path, --cache CacheSize) after Names
// distinct forwarded names, each sent once, then a pass of ZipfQueries
// drawn from those names with a Zipf distribution.
type CacheFill struct {
	CacheSize string
	// Names were to be sent; Sent and Answered were, in Took (bounded:
	// a fill that ran out of time stops early and says so here).
	Names          int
	Sent, Answered int64
	Took           time.Duration
	// Upstream is what the upstream answered during the fill.
	Upstream int64
	// The cache's counters after the fill (`dnstun stats`).
	Entries, Bytes, Evictions uint64
	// RSSStart (KiB) is dnstun's VmRSS before the fill; RSS and HWM
	// (VmHWM, the peak) after it.
	RSSStart, RSS, HWM int64
	// The Zipf pass: ZipfS the exponent, ZipfQueries drawn over the
	// names sent (their popularity in a fixed random order, unrelated
	// to the order they were sent in), ZipfAnswered answered;
	// ZipfHits and ZipfMisses the cache's counters' change over the
	// pass, ZipfUpstream what the upstream answered meanwhile.
	ZipfS                  float64
	ZipfQueries            int
	ZipfAnswered           int64
	ZipfHits, ZipfMisses   uint64
	ZipfUpstream           int64
	ZipfEntries, ZipfBytes uint64
	ZipfEvictions          uint64
	// TopShare is the share of the pass's queries that asked one of the
	// ZipfEntries most popular names: the hit ratio of a cache that held
	// exactly those names throughout the pass.
	TopShare float64
	// RSSZipf and HWMZipf (KiB) after the pass.
	RSSZipf, HWMZipf int64
	// Why is set when the fill could not run or ended early.
	Why string `json:",omitempty"`
}

// HitRatio is cache_hits / (cache_hits + cache_misses) over the Zipf
// pass, or -1 without lookups.
func (c *CacheFill) HitRatio() float64 {
	if c == nil || c.ZipfHits+c.ZipfMisses == 0 {
		return -1
	}
	return float64(c.ZipfHits) / float64(c.ZipfHits+c.ZipfMisses)
}

// Transport names, in the order the phase runs them.
const (
	TransportUDP = "udp"
	// TransportUDP64 is plain UDP with 64 queries per source port
	// (--upstream-socket-queries 64) instead of a fresh port per query:
	// what spoof resistance costs.
	TransportUDP64 = "udp-64"
	TransportTCP   = "tcp"
	TransportDoT   = "dot"
	TransportDoH   = "doh"
	TransportDoQ   = "doq"
	TransportDoH3  = "doh3"
)

// Transports lists the transports of the transports phase in order.
var Transports = []string{TransportUDP, TransportUDP64, TransportTCP, TransportDoT, TransportDoH, TransportDoQ, TransportDoH3}

// dnsdistMaxInFlight lets dnsdist send several queries at once on one TCP
// or DoT connection to the backend in the transports phase, answered in
// any order (unbound does so), as dnstun does; dnsdist's default (0)
// opens a connection per query in flight.
const dnsdistMaxInFlight = 128

// TransportsReport is the upstream transports phase: dnstun and dnsdist
// forwarding the forwarded-name mix to one upstream over each transport.
type TransportsReport struct {
	// Unbound describes the server of UDP, TCP, DoT and DoH (unbound's
	// version), QUIC that of DoQ and DoH3 (bench/cmd/quicupstream);
	// UnboundAt and QUICAt say where each served what.
	Unbound, QUIC     string
	UnboundAt, QUICAt string
	// Why is set when the phase could not run at all.
	Why  string `json:",omitempty"`
	Runs []*TransportRun
}

// TransportRun is one system forwarding over one transport.
type TransportRun struct {
	Transport string // TransportUDP...
	System    string // dnstun, dnsdist
	// Server is "unbound" or "quicupstream"; Upstream is how the system
	// was told to reach it (dnstun's --upstream URL, dnsdist's newServer
	// table).
	Server, Upstream string
	// Why is set when the system does not forward over this transport.
	Why  string `json:",omitempty"`
	Reps []*TransportRep
}

// TransportRep is one repetition of a TransportRun.
type TransportRep struct {
	// Closed is the saturation run, Open the run at Options.Rate.
	Closed, Open *PhaseResult
	// ServerCPUPerQuery is the upstream server's CPU time during the
	// closed run over the queries answered.
	ServerCPUPerQuery time.Duration
}

// Run returns the run of system over transport, or nil.
func (t *TransportsReport) Run(transport, system string) *TransportRun {
	if t == nil {
		return nil
	}
	for _, r := range t.Runs {
		if r.Transport == transport && r.System == system {
			return r
		}
	}
	return nil
}

// Metric collects one number from every repetition of r; ok=false entries
// are skipped.
func (r *TransportRun) Metric(f func(*TransportRep) (float64, bool)) Stat {
	if r == nil {
		return Stat{}
	}
	return metric(r.Reps, f)
}

// metric is the Stat of f over reps, skipping those f reports not ok.
func metric[R any](reps []R, f func(R) (float64, bool)) Stat {
	var v []float64
	for _, rep := range reps {
		if x, ok := f(rep); ok {
			v = append(v, x)
		}
	}
	return stat(v)
}

// Stat is a median with its range over repetitions.
type Stat struct {
	Med, Min, Max float64
	N             int
}

// stat summarises vals (NaN-free; empty gives N=0).
func stat(vals []float64) Stat {
	if len(vals) == 0 {
		return Stat{}
	}
	s := slices.Clone(vals)
	slices.Sort(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return Stat{Med: m, Min: s[0], Max: s[len(s)-1], N: len(s)}
}

// Metric collects one number from every repetition of s; ok=false entries
// are skipped.
func (s *SystemReport) Metric(f func(*RepResult) (float64, bool)) Stat {
	var v []float64
	for _, r := range s.Reps {
		if x, ok := f(r); ok {
			v = append(v, x)
		}
	}
	return stat(v)
}

// LookupMetric is Metric over one lookup phase's closed-loop (open
// false) or open-loop runs; runs with nothing answered are skipped.
func (s *SystemReport) LookupMetric(phase string, open bool, f func(*LookupRun) float64) Stat {
	return s.Metric(func(r *RepResult) (float64, bool) {
		m := r.Lookups[phase]
		if m == nil {
			return 0, false
		}
		run := m.Closed
		if open {
			run = m.Open
		}
		if run == nil || run.Answered() == 0 {
			return 0, false
		}
		return f(run), true
	})
}

// PhaseMetric is Metric over one phase's results.
func (s *SystemReport) PhaseMetric(phase string, f func(*PhaseResult) float64) Stat {
	return s.Metric(func(r *RepResult) (float64, bool) {
		p := r.Phases[phase]
		if p == nil || p.Answered == 0 {
			return 0, false
		}
		return f(p), true
	})
}

// System returns the report of the named system, or nil.
func (r *Report) System(name string) *SystemReport {
	for _, s := range r.Systems {
		if s.Name == name {
			return s
		}
	}
	return nil
}

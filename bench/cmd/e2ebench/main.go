// SPDX-License-Identifier: MIT

// Command e2ebench runs dnstun's end-to-end benchmark (see package
// bench/e2e) and writes bench/RESULTS.md, bench/results.json and the chart.
// It needs root: it creates and removes network namespaces.
//
//	go run ./bench/cmd/e2ebench [flags]     (scripts/bench.sh wraps it)
//
// The chart is drawn from results.json by bench/chart, a module of its own
// (so the plotting library stays out of the daemon's go.mod), which
// e2ebench runs with `go run`; a chart that cannot be drawn is reported and
// leaves the results and RESULTS.md in place.
//
// It pins itself (the client) to -client-cpu by re-executing under
// taskset, and every system under test to -sut-cpu.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/dnstun/dnstun/bench/e2e"
)

const pinnedEnv = "DNSTUN_BENCH_PINNED"

func main() {
	o := e2e.Defaults()
	smoke := flag.Bool("smoke", false, "a few seconds: 1 repetition, 0.5 s runs (TCP 0.1 s, forwarded names only; lookups 0.2 s), 10k list, no 1M list, no dnsperf, no transports or cache phase (unless -transports or -cache-phase is given; the cache fill then has 20k names); no targets")
	optionFlags(flag.CommandLine, &o)
	systems := flag.String("systems", "", "comma-separated systems to run (default all: "+strings.Join(e2e.SystemNames(), ",")+")")
	out := flag.String("out", "bench", "directory for RESULTS.md, results.json and chart.png (empty: print only)")
	dnstunBin := flag.String("dnstun", "", "prebuilt dnstun binary (default: go build ./cmd/dnstun)")
	from := flag.String("from", "", "do not run: render RESULTS.md and the chart again from this results.json")
	filterBench := flag.Bool("filter", true, "also run the filter package's benchmarks (go test -bench) for the filter section (not with -smoke)")
	flag.Parse()
	if *from != "" {
		render(*from, *out)
		return
	}
	outSet := false
	flag.Visit(func(f *flag.Flag) { outSet = outSet || f.Name == "out" })
	if (*smoke || o.TransportsOnly || o.CacheOnly) && !outSet {
		*out = "" // a smoke or one-phase run leaves the tree as it was
	}
	if *smoke {
		// The smoke defaults, with the flags given explicitly over them.
		s := e2e.Smoke()
		sf := flag.NewFlagSet("smoke", flag.ContinueOnError)
		optionFlags(sf, &s)
		flag.Visit(func(f *flag.Flag) {
			if sf.Lookup(f.Name) != nil {
				check(sf.Set(f.Name, f.Value.String()))
			}
		})
		o = s
	}
	if *systems != "" {
		o.Systems = strings.Split(*systems, ",")
	}
	if *dnstunBin != "" {
		o.Bins = map[string]string{"dnstun": *dnstunBin}
	}
	if os.Geteuid() != 0 {
		fail("needs root: it creates network namespaces, veth pairs and TUN devices (run scripts/bench.sh, or sudo)")
	}
	pin(o.ClientCPU)
	wd, _ := os.Getwd()
	o.ModuleDir = moduleRoot(wd)
	o.Progress = func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := e2e.Run(ctx, o)
	if rep == nil {
		fail(err.Error())
	}
	only := o.TransportsOnly || o.CacheOnly
	if err == nil && *filterBench && !*smoke && !only {
		o.Progress("filter benchmarks (about 30 s)")
		rep.Filter, rep.FilterCommand, err = e2e.RunFilterBenches(ctx, o.ModuleDir)
		if err == nil {
			o.Progress("hot-path micro-benchmarks (about 1 min)")
			rep.Micro, rep.MicroCommand, err = e2e.RunMicroBenches(ctx, o.ModuleDir)
		}
	}
	rep.Command = commandLine()
	md := e2e.Markdown(rep, *smoke)
	if *out != "" && err == nil {
		jsonPath := filepath.Join(*out, "results.json")
		chartPath := filepath.Join(*out, "chart.png")
		mdPath := filepath.Join(*out, "RESULTS.md")
		if *smoke {
			jsonPath = filepath.Join(*out, "smoke-results.json")
			chartPath = filepath.Join(*out, "smoke-chart.png")
			mdPath = filepath.Join(*out, "SMOKE.md")
		}
		b, jerr := json.MarshalIndent(rep, "", "  ")
		check(jerr)
		check(os.WriteFile(jsonPath, append(b, '\n'), 0o644))
		written := []string{mdPath, jsonPath}
		// The chart and the notes are about the other phases.
		if !only {
			o.Progress("chart (go run in bench/chart)")
			if cerr := drawChart(ctx, o.ModuleDir, jsonPath, chartPath); cerr != nil {
				fmt.Fprintln(os.Stderr, "e2ebench: chart:", cerr)
			} else {
				md = strings.Replace(md, "CHART", filepath.Base(chartPath), 1)
				written = append(written, chartPath)
			}
			if !*smoke {
				md += notes(*out)
			}
		}
		check(os.WriteFile(mdPath, []byte(md), 0o644))
		fmt.Fprintf(os.Stderr, "wrote %s\n", strings.Join(written, ", "))
	}
	fmt.Print(md)
	if err != nil {
		fail(err.Error())
	}
}

// render writes RESULTS.md and chart.png into out from a results.json.
func render(from, out string) {
	b, err := os.ReadFile(from)
	check(err)
	var rep e2e.Report
	check(json.Unmarshal(b, &rep))
	md := e2e.Markdown(&rep, false)
	if rep.Options.TransportsOnly || rep.Options.CacheOnly {
		// Some phases alone: no chart, and NOTES.md describes a full run.
		check(os.WriteFile(filepath.Join(out, "RESULTS.md"), []byte(md), 0o644))
		fmt.Fprintf(os.Stderr, "wrote %s\n", filepath.Join(out, "RESULTS.md"))
		return
	}
	chartPath := filepath.Join(out, "chart.png")
	wd, _ := os.Getwd()
	check(drawChart(context.Background(), moduleRoot(wd), from, chartPath))
	md = strings.Replace(md, "CHART", filepath.Base(chartPath), 1) + notes(out)
	check(os.WriteFile(filepath.Join(out, "RESULTS.md"), []byte(md), 0o644))
	fmt.Fprintf(os.Stderr, "wrote %s and %s\n", filepath.Join(out, "RESULTS.md"), chartPath)
}

// drawChart draws the chart of the results.json at jsonPath into chartPath
// by running the bench/chart module (`go run .` in its directory) of the
// dnstun checkout at moduleDir. Its output goes to stderr.
func drawChart(ctx context.Context, moduleDir, jsonPath, chartPath string) error {
	in, err := filepath.Abs(jsonPath)
	if err != nil {
		return err
	}
	out, err := filepath.Abs(chartPath)
	if err != nil {
		return err
	}
	dir := filepath.Join(moduleDir, "bench", "chart")
	args := []string{"run", ".", "-in", in, "-out", out}
	cmd := exec.CommandContext(ctx, goTool(), args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go %s (in %s): %w", strings.Join(args, " "), dir, err)
	}
	return nil
}

// goTool is the go command: the one on PATH, else this toolchain's.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

// notes returns the hand-written analysis kept in DIR/NOTES.md (what a
// missed target costs and what would close it), to append to RESULTS.md.
func notes(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "NOTES.md"))
	if err != nil {
		return ""
	}
	return "\n" + string(b)
}

// optionFlags defines the flags that set the benchmark's options on fs,
// with o's values as defaults.
func optionFlags(fs *flag.FlagSet, o *e2e.Options) {
	fs.IntVar(&o.Reps, "reps", o.Reps, "repetitions (median, min-max reported)")
	fs.DurationVar(&o.Closed, "closed", o.Closed, "length of each closed-loop (saturation) run")
	fs.DurationVar(&o.Open, "open", o.Open, "length of each open-loop (fixed-rate) run")
	fs.IntVar(&o.Concurrency, "concurrency", o.Concurrency, "closed-loop queries in flight")
	fs.Float64Var(&o.Rate, "rate", o.Rate, "open-loop rate (queries per second)")
	fs.DurationVar(&o.Timeout, "timeout", o.Timeout, "a query unanswered this long is lost")
	fs.IntVar(&o.ListSize, "list", o.ListSize, "block list size for the load runs")
	fs.IntVar(&o.BigListSize, "big-list", o.BigListSize, "block list size for the RSS and start-up figures (0: skip)")
	fs.IntVar(&o.ClientCPU, "client-cpu", o.ClientCPU, "core of the client and the upstream (-1: no pinning)")
	fs.IntVar(&o.SUTCPU, "sut-cpu", o.SUTCPU, "core of the system under test (-1: no pinning)")
	fs.BoolVar(&o.Dnsperf, "dnsperf", o.Dnsperf, "cross-check loadgen against dnsperf when installed")
	fs.DurationVar(&o.TCP, "tcp", o.TCP, "length of each DNS-over-TCP run (closed loop; 0: no TCP phases)")
	fs.IntVar(&o.TCPConcurrency, "tcp-concurrency", o.TCPConcurrency, "TCP queries in flight (1 per connection: as many connections)")
	fs.IntVar(&o.TCPPipeline, "tcp-pipeline", o.TCPPipeline, fmt.Sprintf("queries in flight per connection in the %d-per-connection TCP phases", e2e.TCPPerConn))
	fs.BoolVar(&o.TCPBlocked, "tcp-blocked", o.TCPBlocked, "also run the TCP phases with blocked names")
	fs.DurationVar(&o.Lookups, "lookups", o.Lookups, "length of each run of the lookup phase (an ordinary Go program's resolver, bench/cmd/golookup, looking the mixes up through direct, dnstun, its flow mode, dnsdist and the ceiling; closed loop, then open loop; 0: skip it)")
	fs.DurationVar(&o.Transports, "transports", o.Transports, "length of each run of the upstream transports phase (dnstun and dnsdist forwarding over UDP, TCP, DoT, DoH, DoQ, DoH3; 0: skip it)")
	fs.BoolVar(&o.TransportsOnly, "transports-only", o.TransportsOnly, "run the upstream transports phase alone (with -smoke, give -transports too; with -cache-only, the two phases)")
	fs.DurationVar(&o.CachePhase, "cache-phase", o.CachePhase, "length of each run of the response cache phase (warmed hits of dnstun, dnsmasq, unbound and dnsdist with caches on, beside dnstun's blocked path and the ceiling; then dnstun's cache filled with -cache-names names; 0: skip it)")
	fs.BoolVar(&o.CacheOnly, "cache-only", o.CacheOnly, "run the response cache phase alone (with -smoke, give -cache-phase too; with -transports-only, the two phases)")
	fs.IntVar(&o.CacheNames, "cache-names", o.CacheNames, "distinct names the cache phase sends through dnstun once, before a Zipf pass over them (0: skip that part)")
	fs.IntVar(&o.CacheZipf, "cache-zipf", o.CacheZipf, "queries of the cache phase's Zipf pass over the -cache-names names")
}

// pin re-executes this program under `taskset -c cpu` once, so that every
// thread of the client runs on that core.
func pin(cpu int) {
	if cpu < 0 || os.Getenv(pinnedEnv) == "1" {
		return
	}
	exe, err := os.Executable()
	check(err)
	ts, err := exec.LookPath("taskset")
	if err != nil {
		fail("taskset not found (Debian package util-linux); use -client-cpu -1 -sut-cpu -1 to run unpinned")
	}
	os.Setenv(pinnedEnv, "1")
	check(syscall.Exec(ts, append([]string{"taskset", "-c", strconv.Itoa(cpu), exe}, os.Args[1:]...), os.Environ()))
}

func moduleRoot(dir string) string {
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			return dir
		}
	}
}

func commandLine() string {
	if c := os.Getenv("DNSTUN_BENCH_COMMAND"); c != "" {
		return c
	}
	return "go run ./bench/cmd/e2ebench " + strings.Join(os.Args[1:], " ")
}

func check(err error) {
	if err != nil {
		fail(err.Error())
	}
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "e2ebench:", msg)
	os.Exit(1)
}

// SPDX-License-Identifier: MIT

package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/dnstun/dnstun/bench/loadgen"
)

// benchConfig is what `dnstun bench` parsed.
type benchConfig struct {
	lg   loadgen.Config
	json bool
}

func parseBenchFlags(args []string, stderr io.Writer) (*benchConfig, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: dnstun bench --target IP[:PORT] --names FILE [flags]

Sends DNS queries over UDP (or TCP) to one resolver and reports throughput,
loss and latency. Closed loop keeps --concurrency queries in flight (capacity);
open loop sends at a fixed --rate and measures latency from the scheduled
send time (p50 ... p99.9). The names file has one "name [TYPE]" per line
(dnsperf's format; TYPE defaults to A). Works against any resolver address,
on Linux and macOS; it needs no privileges.

Flags:
`)
		fs.PrintDefaults()
	}
	var (
		c                benchConfig
		target, names    string
		mode, transport  string
		seed             uint64
		concurrency, max int
	)
	fs.StringVar(&target, "target", "", "resolver to query, IP[:PORT] (port 53 by default); e.g. 198.19.53.53")
	fs.StringVar(&names, "names", "", "query file: one \"name [TYPE]\" per line (required)")
	fs.StringVar(&mode, "mode", "closed", "closed (saturation at --concurrency) or open (fixed --rate)")
	fs.IntVar(&concurrency, "concurrency", loadgen.DefaultConcurrency, "closed loop: queries in flight")
	fs.Float64Var(&c.lg.Rate, "rate", 1000, "open loop: queries per second")
	fs.DurationVar(&c.lg.Duration, "duration", 10*time.Second, "how long to send (at most "+loadgen.MaxDuration.String()+")")
	fs.IntVar(&max, "max-queries", 0, "stop after this many queries (0: no limit)")
	fs.DurationVar(&c.lg.Timeout, "timeout", loadgen.DefaultTimeout, "a query unanswered this long is lost")
	fs.IntVar(&c.lg.Sockets, "sockets", 0, "UDP sockets (source ports); 0: the load generator's default")
	fs.Uint64Var(&seed, "seed", 0, "shuffle the names once with this seed (0: file order)")
	fs.StringVar(&transport, "transport", "udp", "udp, or tcp (two-byte length framing; closed loop only)")
	fs.IntVar(&c.lg.QueriesPerConn, "per-conn", 0, "tcp: queries per connection before it is closed and a new one opened (0: 1)")
	fs.IntVar(&c.lg.Pipeline, "pipeline", 0, "tcp: queries in flight per connection; --concurrency is spread over concurrency/pipeline connections (0: 1)")
	fs.BoolVar(&c.json, "json", false, "print the result as JSON")
	if err := parseFlags(fs, args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	if target == "" {
		return nil, usageError{errors.New("--target is required (e.g. --target 198.19.53.53)")}
	}
	ap, err := parseTarget(target)
	if err != nil {
		return nil, usageError{err}
	}
	c.lg.Target = ap
	switch mode {
	case "closed":
		c.lg.Mode = loadgen.ClosedLoop
	case "open":
		c.lg.Mode = loadgen.OpenLoop
	default:
		return nil, usageError{fmt.Errorf("--mode %q: want closed or open", mode)}
	}
	switch transport {
	case "udp":
		if c.lg.QueriesPerConn != 0 || c.lg.Pipeline != 0 {
			return nil, usageError{errors.New("--per-conn and --pipeline need --transport tcp")}
		}
	case "tcp":
		c.lg.Transport = loadgen.TCP
		if c.lg.Mode != loadgen.ClosedLoop {
			return nil, usageError{errors.New("--transport tcp supports --mode closed only")}
		}
		if c.lg.Sockets != 0 {
			return nil, usageError{errors.New("--sockets is for UDP; over TCP --concurrency and --pipeline set the connections")}
		}
	default:
		return nil, usageError{fmt.Errorf("--transport %q: want udp or tcp", transport)}
	}
	c.lg.Concurrency, c.lg.MaxQueries, c.lg.Seed = concurrency, max, seed
	if names == "" {
		return nil, usageError{errors.New("--names FILE is required")}
	}
	f, err := os.Open(names)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if c.lg.Names, err = loadgen.ReadNames(f); err != nil {
		return nil, fmt.Errorf("%s: %w", names, err)
	}
	return &c, nil
}

// parseTarget accepts IP, IP:PORT and [IPv6]:PORT.
func parseTarget(s string) (netip.AddrPort, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.AddrPortFrom(a.Unmap(), 53), nil
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("--target %q: want IP or IP:PORT", s)
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}

func cmdBench(args []string, stdout, stderr io.Writer) error {
	c, err := parseBenchFlags(args, stderr)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := loadgen.Run(ctx, c.lg)
	if res == nil {
		return err
	}
	if c.json {
		b, jerr := json.MarshalIndent(benchJSON(c, res), "", "  ")
		if jerr != nil {
			return jerr
		}
		fmt.Fprintf(stdout, "%s\n", b)
	} else {
		fmt.Fprintf(stdout, "target %v  %v  %v  %d names\n%s\n", c.lg.Target, c.lg.Transport, c.lg.Mode, len(c.lg.Names), res)
	}
	if errors.Is(err, context.Canceled) {
		return nil // Ctrl-C: the partial result was printed
	}
	return err
}

// benchResult is the JSON form of a result: durations in microseconds,
// rcodes by name.
type benchResult struct {
	Target      string             `json:"target"`
	Transport   string             `json:"transport"`
	Mode        string             `json:"mode"`
	Names       int                `json:"names"`
	Concurrency int                `json:"concurrency,omitempty"`
	Rate        float64            `json:"rate,omitempty"`
	Sent        int64              `json:"sent"`
	Answered    int64              `json:"answered"`
	Lost        int64              `json:"lost"`
	InFlight    int64              `json:"in_flight"`
	Errors      int64              `json:"errors"`
	Mismatched  int64              `json:"mismatched"`
	Late        int64              `json:"late"`
	ElapsedS    float64            `json:"elapsed_s"`
	QPS         float64            `json:"qps"`
	LatencyUS   map[string]float64 `json:"latency_us"`
	SendLagUS   map[string]float64 `json:"send_lag_us,omitempty"`
	Rcodes      map[string]int64   `json:"rcodes"`
	// TCP only.
	QueriesPerConn int                `json:"queries_per_conn,omitempty"`
	Pipeline       int                `json:"pipeline,omitempty"`
	Conns          int64              `json:"conns,omitempty"`
	ConnFailed     int64              `json:"conn_failed,omitempty"`
	Closed         int64              `json:"closed_by_server,omitempty"`
	ConnectUS      map[string]float64 `json:"connect_us,omitempty"`
	FirstError     string             `json:"first_error,omitempty"`
}

var rcodeText = map[int]string{0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}

func pctUS(p loadgen.Percentiles) map[string]float64 {
	if p.Count == 0 {
		return nil
	}
	u := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	return map[string]float64{"min": u(p.Min), "p50": u(p.P50), "p90": u(p.P90), "p99": u(p.P99),
		"p99.9": u(p.P999), "max": u(p.Max), "mean": u(p.Mean)}
}

func benchJSON(c *benchConfig, r *loadgen.Result) benchResult {
	out := benchResult{
		Target: c.lg.Target.String(), Transport: c.lg.Transport.String(), Mode: strings.TrimSuffix(c.lg.Mode.String(), "-loop"), Names: len(c.lg.Names),
		Sent: r.Sent, Answered: r.Answered, Lost: r.Lost, InFlight: r.InFlight, Errors: r.Errors,
		Mismatched: r.Mismatched, Late: r.Late, ElapsedS: r.Elapsed.Seconds(), QPS: r.QPS,
		LatencyUS: pctUS(r.Latency), SendLagUS: pctUS(r.SendLag), Rcodes: map[string]int64{},
		Conns: r.Conns, ConnFailed: r.ConnFailed, Closed: r.Closed, ConnectUS: pctUS(r.Connect), FirstError: r.FirstError,
	}
	if c.lg.Transport == loadgen.TCP {
		out.QueriesPerConn, out.Pipeline = max(c.lg.QueriesPerConn, 1), max(c.lg.Pipeline, 1)
	}
	if c.lg.Mode == loadgen.ClosedLoop {
		out.Concurrency = c.lg.Concurrency
	} else {
		out.Rate = c.lg.Rate
	}
	codes := make([]int, 0, len(r.Rcodes))
	for k := range r.Rcodes {
		codes = append(codes, k)
	}
	slices.Sort(codes)
	for _, k := range codes {
		name, ok := rcodeText[k]
		if !ok {
			name = fmt.Sprintf("RCODE%d", k)
		}
		out.Rcodes[name] = r.Rcodes[k]
	}
	return out
}

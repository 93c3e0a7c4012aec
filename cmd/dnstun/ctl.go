// SPDX-License-Identifier: MIT

package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/dnstun/dnstun/config"
	"github.com/dnstun/dnstun/control"
	"github.com/dnstun/dnstun/service"
)

// cmdControl runs one control verb against a running daemon:
// `dnstun status|enable|disable|reload|stats|querylog|stop`.
func cmdControl(verb string, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet(verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("control", config.DefaultSocket(runtime.GOOS), "the daemon's control socket")
	asJSON := fs.Bool("json", false, "print the raw JSON response data")
	n, follow := 0, false
	if verb == control.VerbQueryLog {
		fs.IntVar(&n, "n", control.DefaultQueryLogN, "how many recent queries")
		fs.BoolVar(&follow, "f", false, "follow: print the recent queries, then each new one as it is logged, until interrupted")
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if verb == control.VerbQueryLog {
		if fs.NArg() > 0 {
			return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
		}
		return cmdQueryLog(*path, n, follow, *asJSON, stdout, stderr)
	}
	name := ""
	if verb == control.VerbCacheFlush && fs.NArg() == 1 {
		name = fs.Arg(0)
	} else if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	c, err := control.Dial(*path)
	if err != nil {
		return fmt.Errorf("%w (is dnstun running? its socket is set with --control)", err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var reqArgs map[string]any
	if name != "" {
		reqArgs = map[string]any{"name": name}
	}
	data, err := c.Do(ctx, verb, reqArgs)
	if err != nil {
		return err
	}
	if *asJSON {
		fmt.Fprintln(stdout, string(data))
		return nil
	}
	return printControl(stdout, verb, data)
}

func printControl(w io.Writer, verb string, data json.RawMessage) error {
	switch verb {
	case control.VerbStatus:
		var s control.Status
		if err := json.Unmarshal(data, &s); err != nil {
			return err
		}
		// The first line is exactly "enabled" or "disabled", for scripts.
		if s.Enabled {
			fmt.Fprintln(w, "enabled")
		} else {
			fmt.Fprintln(w, "disabled")
		}
		fmt.Fprintf(w, "steering: %s\n", s.Steering)
		if s.Health != "" {
			fmt.Fprintf(w, "health: %s\n", s.Health)
		}
		if s.Problem != "" {
			fmt.Fprintf(w, "problem: %s\n", s.Problem)
		}
		if s.Tun != "" {
			fmt.Fprintf(w, "tun: %s\n", s.Tun)
		}
		for _, u := range s.Upstreams {
			health := "healthy"
			if !u.Healthy {
				health = "skipped (not answering)"
			}
			route := ""
			if len(u.Domains) > 0 {
				route = " for " + strings.Join(u.Domains, ",")
			}
			fmt.Fprintf(w, "upstream: %s%s %s rtt=%.1fms sent=%d answers=%d timeouts=%d errors=%d\n", u.Addr, route, health, u.RTTMillis, u.Sent, u.Answers, u.Timeouts, u.Errors)
		}
		fmt.Fprintf(w, "pid: %d\nuptime: %s\nversion: %s\n", s.PID, (time.Duration(s.UptimeSeconds) * time.Second).String(), s.Version)
		for _, k := range slices.Sorted(maps.Keys(s.Counters)) {
			fmt.Fprintf(w, "%s: %d\n", k, s.Counters[k])
		}
	case control.VerbStats:
		var m map[string]uint64
		if err := json.Unmarshal(data, &m); err != nil {
			return err
		}
		for _, k := range slices.Sorted(maps.Keys(m)) {
			fmt.Fprintf(w, "%s: %d\n", k, m[k])
		}
	case control.VerbCacheFlush:
		var d control.CacheFlushData
		if err := json.Unmarshal(data, &d); err != nil {
			return err
		}
		fmt.Fprintf(w, "flushed %d cache entries\n", d.Flushed)
	default:
		fmt.Fprintln(w, "ok")
	}
	return nil
}

// cmdQueryLog is `dnstun querylog [-n N] [-f] [--json]`: the n most recent
// queries, as a table or (--json) one JSON object a line; with -f, then
// every new one until interrupted.
func cmdQueryLog(path string, n int, follow, asJSON bool, stdout, stderr io.Writer) error {
	c, err := control.Dial(path)
	if err != nil {
		return fmt.Errorf("%w (is dnstun running? its socket is set with --control)", err)
	}
	defer c.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	call := func(f func(context.Context) (control.QueryLogData, error)) (control.QueryLogData, error) {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		return f(cctx)
	}
	// The most recent n (-n 0: none, but the number to follow from).
	d, err := call(func(ctx context.Context) (control.QueryLogData, error) { return c.QueryLogRecent(ctx, max(n, 1)) })
	if err != nil {
		return err
	}
	if n == 0 {
		d.Entries = nil
	}
	p := queryLogPrinter{w: stdout, json: asJSON}
	p.print(d.Entries, !follow)
	if !follow {
		return nil
	}
	last := d.Last
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		d, err := call(func(ctx context.Context) (control.QueryLogData, error) {
			return c.QueryLogAfter(ctx, last, control.MaxQueryLogN)
		})
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("following the query log: %w", err)
		}
		if d.Lost > 0 {
			fmt.Fprintf(stderr, "dnstun: %d queries were logged faster than they could be shown and are missing\n", d.Lost)
		}
		p.print(d.Entries, false)
		last = d.Last
	}
}

// queryLogPrinter prints query log entries as a table or JSON lines.
type queryLogPrinter struct {
	w      io.Writer
	json   bool
	header bool
}

// print prints recs; aligned pads the table to the widest entry (a single
// batch), else columns have fixed widths (a followed log).
func (p *queryLogPrinter) print(recs []control.QueryLogEntry, aligned bool) {
	if p.json {
		enc := json.NewEncoder(p.w)
		for i := range recs {
			enc.Encode(&recs[i])
		}
		return
	}
	var out io.Writer = p.w
	var tw *tabwriter.Writer
	if aligned {
		tw = tabwriter.NewWriter(p.w, 2, 8, 2, ' ', 0)
		out = tw
	}
	row := func(cells ...string) {
		if aligned {
			fmt.Fprintln(out, strings.Join(cells, "\t"))
			return
		}
		widths := []int{8, 21, 40, 5, 8, 8, 21, 9}
		var b strings.Builder
		for i, c := range cells {
			if i < len(widths) {
				fmt.Fprintf(&b, "%-*s  ", widths[i], c)
			} else {
				b.WriteString(c)
			}
		}
		fmt.Fprintln(out, strings.TrimRight(b.String(), " "))
	}
	if !p.header {
		row("TIME", "CLIENT", "NAME", "TYPE", "DECISION", "RCODE", "UPSTREAM", "LATENCY", "PROCESS")
		p.header = true
	}
	for _, e := range recs {
		proc := ""
		if e.Process != "" || e.PID != 0 {
			proc = fmt.Sprintf("%s[%d]", e.Process, e.PID)
		}
		row(e.Time.Local().Format(time.TimeOnly), e.Client, e.Name, e.Type, e.Decision, e.Rcode, e.Upstream, fmt.Sprintf("%dµs", e.LatencyMicros), proc)
	}
	if tw != nil {
		tw.Flush()
	}
}

// linksCgo reports whether the running binary was built with cgo.
func linksCgo() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, st := range bi.Settings {
		if st.Key == "CGO_ENABLED" {
			return st.Value == "1"
		}
	}
	return false
}

// cmdInstall installs dnstun as a system service (systemd unit on Linux,
// launchd daemon on macOS), or with -n prints what it would do.
func cmdInstall(uninstall bool, args []string, stdout, stderr io.Writer) error {
	name := "install"
	if uninstall {
		name = "uninstall"
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := service.Defaults(runtime.GOOS)
	root := fs.String("root", "/", "install under this root directory (DESTDIR-style; commands are then only printed)")
	dry := fs.Bool("n", false, "print what would be done, do nothing")
	fs.StringVar(&o.Binary, "bin", o.Binary, "where the binary goes")
	fs.StringVar(&o.Config, "config", o.Config, "the configuration file (a default is written if absent; never overwritten)")
	purge := false
	if uninstall {
		fs.BoolVar(&purge, "purge", false, "also remove the configuration")
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	o.Source = exe
	var p service.Plan
	if uninstall {
		p, err = service.UninstallPlan(o, runtime.GOOS, purge)
	} else {
		p, err = service.InstallPlan(o, runtime.GOOS)
	}
	if err != nil {
		return err
	}
	if !uninstall && runtime.GOOS == "linux" && linksCgo() {
		fmt.Fprintln(stderr, "dnstun: warning: this binary links cgo, so it cannot drop its capabilities after set-up"+
			" (it keeps every privilege of root): build it with CGO_ENABLED=0 go build ./cmd/dnstun")
	}
	if *dry {
		fmt.Fprint(stdout, p.String())
		return nil
	}
	var run service.Runner = service.ExecRunner{}
	if *root != "/" {
		run = printRunner{w: stdout}
	}
	done, err := service.Apply(p, *root, run)
	for _, d := range done {
		fmt.Fprintln(stdout, d)
	}
	return err
}

// printRunner prints commands instead of running them (installs into a
// root directory other than /).
type printRunner struct{ w io.Writer }

func (r printRunner) Run(argv []string) error {
	fmt.Fprintln(r.w, "would run:", strings.Join(argv, " "))
	return nil
}

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
	"runtime"
	"slices"
	"strings"
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
	n := 0
	if verb == control.VerbQueryLog {
		fs.IntVar(&n, "n", control.DefaultQueryLogN, "how many recent queries")
	}
	if err := parseFlags(fs, args); err != nil {
		return err
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
	if verb == control.VerbQueryLog {
		reqArgs = map[string]any{"n": n}
	}
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
	case control.VerbQueryLog:
		var d control.QueryLogData
		if err := json.Unmarshal(data, &d); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "TIME\tCLIENT\tNAME\tTYPE\tDECISION\tRCODE\tUPSTREAM\tLATENCY")
		for _, e := range d.Entries {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%dµs\n", e.Time.Format(time.TimeOnly), e.Client, e.Name, e.Type, e.Decision, e.Rcode, e.Upstream, e.LatencyMicros)
		}
		tw.Flush()
	default:
		fmt.Fprintln(w, "ok")
	}
	return nil
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

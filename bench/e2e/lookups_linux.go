// SPDX-License-Identifier: MIT

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/dnstun/dnstun/bench/loadgen"
	"github.com/dnstun/dnstun/internal/lab"
)

// writeLookupNames writes the name files of the lookup phase into dir:
// the blocked and forwarded mixes, rooted (a trailing dot), so that the
// machine's resolv.conf search list adds no query to a blocked name.
func writeLookupNames(dir string, blocked, forward []loadgen.Query) (map[string]string, error) {
	files := map[string]string{}
	for _, m := range []struct {
		phase string
		qs    []loadgen.Query
	}{{LookupBlocked, blocked}, {LookupForward, forward}} {
		var b strings.Builder
		for _, q := range m.qs {
			b.WriteString(q.Name + ".\n")
		}
		p := filepath.Join(dir, m.phase+".txt")
		if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
			return nil, err
		}
		files[m.phase] = p
	}
	return files, nil
}

// runLookupPhases runs the lookup phases of s (when s.lookups and
// o.Lookups > 0) into rr: bench/cmd/golookup in the SUT namespace on the
// client's core, looking up the blocked mix (systems that block) and the
// forwarded mix (systems that forward), closed loop then open loop, with
// the CPU time of pid around each run.
func runLookupPhases(ctx context.Context, e *env, s *system, o Options, rr *RepResult, p *lab.Proc, pid int, progress func(string, ...any)) error {
	if !s.lookups || o.Lookups <= 0 {
		return nil
	}
	for _, ph := range []string{LookupBlocked, LookupForward} {
		if (ph == LookupBlocked && !s.blocks) || (ph == LookupForward && !s.fwd) {
			continue
		}
		lr := &LookupRuns{}
		for _, mode := range []loadgen.Mode{loadgen.ClosedLoop, loadgen.OpenLoop} {
			run, err := lookupRun(ctx, e, s, o, pid, e.lookupNames[ph], mode)
			if err != nil {
				return fmt.Errorf("%s, %v: %w", ph, mode, err)
			}
			if mode == loadgen.ClosedLoop {
				lr.Closed = run
			} else {
				lr.Open = run
			}
			progress("  %-15s %-11s lookups/s %7.0f  failed %4d  p50 %8v  p99 %8v  cpu/lookup %7v  sockets %6d%s",
				ph, mode, run.LPS, run.Failed, run.Latency.P50.Round(time.Microsecond/10), run.Latency.P99.Round(time.Microsecond/10),
				run.CPUPerLookup, run.Sockets, errSuffix(run.FirstError))
			if p != nil && p.Exited() {
				return fmt.Errorf("%s exited during %s: %v\n%s", s.name, ph, p.Err(), p.Log())
			}
		}
		if rr.Lookups == nil {
			rr.Lookups = map[string]*LookupRuns{}
		}
		rr.Lookups[ph] = lr
	}
	return nil
}

// lookupRun runs bench/cmd/golookup once against s with the names in
// file: o.Lookups long, LookupConcurrency(o) lookups at a time (closed
// loop) or LookupRate(o) a second (open loop), bounded by count too; it
// waits for the program at most o.Lookups + o.Timeout + 10 s.
func lookupRun(ctx context.Context, e *env, s *system, o Options, pid int, file string, mode loadgen.Mode) (*LookupRun, error) {
	out := filepath.Join(e.dir, "golookup.json")
	if err := os.Remove(out); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	args := []string{e.bins["golookup"], "-server", s.target.String(), "-names", file,
		"-duration", o.Lookups.String(), "-timeout", o.Timeout.String(), "-out", out}
	if mode == loadgen.ClosedLoop {
		// No path here answers 1M lookups a second.
		args = append(args, "-mode", "closed", "-concurrency", strconv.Itoa(LookupConcurrency(o)),
			"-max", strconv.Itoa(int(o.Lookups.Seconds()*1e6)+1000))
	} else {
		args = append(args, "-mode", "open", "-rate", strconv.FormatFloat(LookupRate(o), 'f', -1, 64),
			"-max", strconv.Itoa(int(o.Lookups.Seconds()*LookupRate(o))+1))
	}
	limit := o.Lookups + o.Timeout + 10*time.Second
	u, err := cpuAround(pid, o.SUTCPU, func() error {
		p, err := e.lab.Start(e.lab.Host, lab.Cmd{Args: args, CPUs: cpuList(e.cpus.client), LogLimit: logLimit})
		if err != nil {
			return err
		}
		defer p.Stop()
		t := time.NewTimer(limit)
		defer t.Stop()
		select {
		case <-p.Done():
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			return fmt.Errorf("%s did not exit within %v\n%s", strings.Join(args, " "), limit, p.Log())
		}
		if err := p.Err(); err != nil {
			return fmt.Errorf("%s: %w\n%s", strings.Join(args, " "), err, p.Log())
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(out)
	if err != nil {
		return nil, fmt.Errorf("golookup's result: %w", err)
	}
	run := &LookupRun{}
	if err := json.Unmarshal(b, &run.LookupResult); err != nil {
		return nil, fmt.Errorf("golookup's result %s: %w", out, err)
	}
	if n := run.Answered(); n > 0 {
		run.CPUPerLookup = u.cpu / time.Duration(n)
		run.CorePerLookup = u.core / time.Duration(n)
	}
	return run, nil
}

// SPDX-License-Identifier: MIT

package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/dnstun/dnstun/bench/loadgen"
	"github.com/dnstun/dnstun/internal/lab"
)

// crossCheck measures closed-loop saturation once with loadgen and once
// with dnsperf, same target, same query file, same number of sockets and
// queries in flight, same core: dnstun with blocked names, and direct.
func crossCheck(ctx context.Context, e *env, o Options, blocked, forward []loadgen.Query, progress func(string, ...any)) []*CrossCheck {
	bin := lookPeer("dnsperf")
	var out []*CrossCheck
	for _, c := range []struct {
		sys, file string
		qs        []loadgen.Query
	}{{"dnstun", "blocked", blocked}, {"direct", "forward", forward}} {
		cc := &CrossCheck{System: c.sys, Queries: c.file}
		out = append(out, cc)
		if bin == "" {
			cc.Why = "dnsperf not installed (Debian package dnsperf)"
			continue
		}
		var s *system
		var sp *lab.Proc
		for _, x := range allSystems() {
			if x.name == c.sys {
				s = x
			}
		}
		progress("cross-check loadgen vs dnsperf: %s, %s names", c.sys, c.file)
		if s.start != nil {
			p, err := s.start(e, o.ListSize)
			if err != nil {
				cc.Why = err.Error()
				continue
			}
			sp = p
			defer p.Stop()
			if _, err := e.firstAnswer(ctx, p, s.target, blocked[0].Name, lab.RcodeNXDomain, 60*time.Second); err != nil {
				cc.Why = err.Error()
				p.Stop()
				continue
			}
		}
		res, err := load(ctx, e, s, o, c.qs, loadgen.ClosedLoop, o.Closed)
		if err != nil {
			cc.Why = err.Error()
			continue
		}
		cc.LoadgenQPS, cc.LoadgenAvgLat, cc.LoadgenLost = res.QPS, res.Latency.Mean, res.Lost
		secs := strconv.Itoa(max(1, int(o.Closed.Seconds())))
		args := []string{"-s", s.target.Addr().String(), "-p", strconv.Itoa(int(s.target.Port())),
			"-d", filepath.Join(e.dir, c.file+".txt"), "-l", secs,
			"-c", "8", "-q", strconv.Itoa(o.Concurrency), "-T", "1",
			"-t", strconv.Itoa(max(1, int(o.Timeout.Seconds())))}
		cc.DnsperfCommand = "dnsperf " + strings.Join(args, " ")
		p, err := e.start(o.ClientCPU, bin, args...)
		if err != nil {
			cc.Why = err.Error()
			continue
		}
		select {
		case <-p.Done():
		case <-time.After(o.Closed + 30*time.Second):
			p.Stop()
		case <-ctx.Done():
			p.Stop()
			return out
		}
		if sp != nil {
			sp.Stop()
		}
		log := p.Log()
		cc.DnsperfVersion = firstMatch(log, `(?m)^DNS Performance Testing Tool\s*\n\s*Version\s+(\S+)`)
		if cc.DnsperfVersion == "" {
			cc.DnsperfVersion = firstMatch(log, `Version\s+(\S+)`)
		}
		cc.DnsperfQPS, _ = strconv.ParseFloat(firstMatch(log, `Queries per second:\s+([0-9.]+)`), 64)
		lat, _ := strconv.ParseFloat(firstMatch(log, `Average Latency \(s\):\s+([0-9.]+)`), 64)
		cc.DnsperfAvgLat = time.Duration(lat * 1e9)
		cc.DnsperfLost, _ = strconv.ParseInt(firstMatch(log, `Queries lost:\s+([0-9]+)`), 10, 64)
		if cc.DnsperfQPS == 0 {
			cc.Why = fmt.Sprintf("could not read dnsperf's output: %s", firstLines(log, 8))
		}
		progress("  loadgen %.0f qps (mean %v), dnsperf %.0f qps (mean %v)", cc.LoadgenQPS, cc.LoadgenAvgLat, cc.DnsperfQPS, cc.DnsperfAvgLat)
	}
	return out
}

func firstMatch(s, re string) string {
	m := regexp.MustCompile(re).FindStringSubmatch(s)
	if m == nil {
		return ""
	}
	return m[1]
}

// SPDX-License-Identifier: MIT

package main

import (
	"context"
	_ "embed"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/miekg/dns"
)

//go:embed demo-blocklist.txt
var demoBlocklist string

// demoStep is one query of the demo.
type demoStep struct {
	name     string
	qtype    uint16
	via      string // "v4" or "v6" resolver address
	before   func(l *lab)
	expected string
}

var demoSteps = []demoStep{
	{name: "www.example.com", qtype: dns.TypeA, via: "v4", expected: "forwarded"},
	{name: "www.example.com", qtype: dns.TypeAAAA, via: "v6", expected: "forwarded"},
	{name: "example.com", qtype: dns.TypeTXT, via: "v4", expected: "forwarded"},
	{name: "ads.doubleclick.net", qtype: dns.TypeA, via: "v4", expected: "blocked"},
	{name: "pixel.tracker.example", qtype: dns.TypeAAAA, via: "v6", expected: "blocked"},
	{name: "ads.example.com", qtype: dns.TypeA, via: "v4", expected: "blocked"},
	{name: "cdn.ads.example.com", qtype: dns.TypeA, via: "v4", expected: "forwarded"},
	{name: "printer.lan", qtype: dns.TypeA, via: "v4", expected: "local"},
	{name: "printer.lan", qtype: dns.TypeAAAA, via: "v6", expected: "local"},
	{name: "nonexistent.example.com", qtype: dns.TypeA, via: "v4", expected: "forwarded"},
	{name: "mail.example.com", qtype: dns.TypeA, via: "v4", expected: "forwarded",
		before: func(l *lab) { l.primary.Close() }},
}

func cmdDemo(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: dnstun demo\n\nRuns dnstun for real inside two throw-away network namespaces (root needed),\nsends real queries through its TUN and prints what happened to each.")
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("the demo needs root to create network namespaces and a TUN device.\n" +
			"Run it as root, e.g.:  go build -o dnstun ./cmd/dnstun && sudo ./dnstun demo")
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return runDemo(ctx, []string{exe}, nil, stdout)
}

// runDemo builds the lab, runs dnstun in it, sends demoSteps and prints
// the table. Everything is removed when it returns, also on error or
// Ctrl-C (ctx).
func runDemo(ctx context.Context, exe, env []string, out io.Writer) error {
	fmt.Fprintln(out, "dnstun demo: building two network namespaces (host, upstream) joined by a veth pair ...")
	l, err := newLab("dnstun-demo")
	if err != nil {
		return err
	}
	defer func() {
		l.close()
		fmt.Fprintln(out, "dnstun demo: namespaces, TUN and processes removed.")
	}()
	fmt.Fprintf(out, "dnstun demo: upstream DNS servers %v (primary) and %v (secondary) in %s\n", labPrimary, labSecondary, l.up.Name)
	fmt.Fprintf(out, "dnstun demo: starting `dnstun run` in %s with the bundled block list ...\n", l.host.Name)
	args := append([]string{"--upstream-timeout", "1s", "--timeout", "3s", "--log-level", "warn"}, labUpstreamArgs...)
	if err := l.startDnstun(ctx, exe, env, map[string]string{"demo-blocklist.txt": demoBlocklist}, args...); err != nil {
		return err
	}
	fmt.Fprintf(out, "dnstun demo: dnstun serves %v and %v on its TUN; querying them from %s\n\n", labResolver4.Addr(), labResolver6.Addr(), l.host.Name)
	tw := tabwriter.NewWriter(out, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tTYPE\tRESOLVER\tDECISION\tUPSTREAM\tANSWER\tLATENCY\tNOTE")
	var failures []string
	for _, st := range demoSteps {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		note := ""
		if st.before != nil {
			st.before(l)
			note = "primary upstream stopped first"
		}
		res, decision, upstream, rtt, err := l.observe(st.name, st.qtype, st.via)
		answer := answerText(res)
		if err != nil {
			answer = "error: " + err.Error()
		}
		if decision != st.expected {
			failures = append(failures, fmt.Sprintf("%s %s: %s, expected %s", st.name, dns.TypeToString[st.qtype], decision, st.expected))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", st.name, dns.TypeToString[st.qtype], resolverFor(st.via).Addr(), decision, upstream, answer, rtt.Round(10*time.Microsecond), note)
	}
	tw.Flush()
	fmt.Fprintln(out)
	if err := l.stopDnstun(); err != nil {
		return fmt.Errorf("dnstun did not stop cleanly: %v\n%s", err, l.Log())
	}
	if len(failures) > 0 {
		return fmt.Errorf("unexpected decisions:\n  %s\ndnstun's log:\n%s", strings.Join(failures, "\n  "), l.Log())
	}
	fmt.Fprintln(out, "dnstun demo: every query got the expected decision; dnstun stopped cleanly on SIGTERM.")
	return nil
}

func resolverFor(via string) netip.AddrPort {
	if via == "v6" {
		return labResolver6
	}
	return labResolver4
}

// observe sends one query and names the decision from what the upstream
// servers saw: a query they saw was forwarded (and which one answered);
// one they did not see was blocked or answered locally by dnstun.
func (l *lab) observe(name string, qtype uint16, via string) (*dns.Msg, string, string, time.Duration, error) {
	p0, s0 := l.primary.QueriesFor(name), l.secondary.QueriesFor(name)
	res, rtt, err := l.query(resolverFor(via), name, qtype, 5*time.Second)
	if err != nil {
		return nil, "no answer", "", rtt, err
	}
	p1, s1 := l.primary.QueriesFor(name), l.secondary.QueriesFor(name)
	switch {
	case s1 > s0:
		return res, "forwarded", "secondary", rtt, nil
	case p1 > p0:
		return res, "forwarded", "primary", rtt, nil
	case res.Rcode == dns.RcodeSuccess && len(res.Answer) > 0 && !isNullAnswer(res):
		return res, "local", "-", rtt, nil
	default:
		return res, "blocked", "-", rtt, nil
	}
}

func isNullAnswer(m *dns.Msg) bool {
	for _, rr := range m.Answer {
		switch rr := rr.(type) {
		case *dns.A:
			if !rr.A.IsUnspecified() {
				return false
			}
		case *dns.AAAA:
			if !rr.AAAA.IsUnspecified() {
				return false
			}
		}
	}
	return true
}

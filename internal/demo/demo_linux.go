// SPDX-License-Identifier: MIT

package demo

import (
	"context"
	_ "embed"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dnstun/dnstun/control"
	"github.com/dnstun/dnstun/internal/dnstest"
	"github.com/dnstun/dnstun/internal/lab"
	"github.com/miekg/dns"
)

// Blocklist is the demo's bundled block list.
//
//go:embed blocklist.txt
var Blocklist string

// The demo runs in the lab of internal/lab, set up with IPv6, default
// routes and four in-process upstream servers:
//
//	┌─ host ──────────────────────────────┐        ┌─ upstream ──────────────────────────┐
//	│ dnstun run (subprocess), dnstun0:   │        │ on-link (the gateway, dt-u):        │
//	│   198.19.53.53, fd64:6e73:7475::53  │  veth  │   primary   192.0.2.1:53 udp        │
//	│ clients (miekg, Go, glibc, dig)     ├────────┤   secondary [2001:db8:53::1]:53     │
//	│ dt-h 192.0.2.2/24 2001:db8:53::2/64 │        │ off-link (on lo, routed via dt-u):  │
//	│ default via 192.0.2.1 / ...53::1    │        │   198.51.100.53 udp+tcp,            │
//	└─────────────────────────────────────┘        │   [2001:db8:5353::53] udp           │
//	                                               └─────────────────────────────────────┘
//
// All servers are miekg/dns (internal/dnstest) answering Zone; each
// counts what it saw. The tests in this package use the same lab.
var (
	Primary   = lab.Upstream4
	Secondary = lab.Upstream6
	Resolver4 = lab.Resolver4
	Resolver6 = lab.Resolver6
	OffLink4  = lab.Loopback4
	OffLink6  = lab.Loopback6
)

// UpstreamArgs point dnstun at the lab's on-link servers.
var UpstreamArgs = []string{"--upstream", Primary.String(), "--upstream", Secondary.String()}

// Zone is what the upstream servers hold; other names are NXDOMAIN.
var Zone = []string{
	"www.example.com. 300 IN A 192.0.2.80",
	"www.example.com. 300 IN AAAA 2001:db8::80",
	"mail.example.com. 300 IN A 192.0.2.25",
	"example.com. 300 IN TXT \"dnstun demo zone\"",
	"ready.example.com. 0 IN A 192.0.2.1",
	"ads.doubleclick.net. 300 IN A 192.0.2.66",
	"pixel.tracker.example. 300 IN A 192.0.2.66",
	"ads.example.com. 300 IN A 192.0.2.66",
	"cdn.ads.example.com. 300 IN A 192.0.2.67",
}

// bigTXT is the number of 200-byte TXT records of big.example.com: an
// answer of about 4 KB, larger than any client may receive over UDP
// without EDNS (the lab's servers do not truncate: dnstun must).
const bigTXT = 20

func init() {
	for i := range bigTXT {
		Zone = append(Zone, fmt.Sprintf("big.example.com. 300 IN TXT \"%02d%s\"", i, strings.Repeat("x", 198)))
	}
}

// Lab is the lab with the demo's servers and the dnstun it runs.
type Lab struct {
	*lab.Lab
	PrimaryServer   *dnstest.Server
	SecondaryServer *dnstest.Server
	PrimaryTCP      *dnstest.Server // TCP on the primary's address
	SecondaryTCP    *dnstest.Server // TCP on the secondary's address
	OffLink4Server  *dnstest.Server
	OffLink6Server  *dnstest.Server
	TCPServer       *dnstest.Server // TCP on the off-link IPv4 address
	Dnstun          *lab.Proc       // the latest `dnstun run`; nil before the first
	// ReadyRcode is the answer StartDnstun waits for (NOERROR by
	// default; SERVFAIL for a dnstun that cannot reach its upstream yet).
	ReadyRcode int
}

// NewLab builds the namespaces (named PREFIX-SFX-host and -up) and
// starts the upstream servers. On error, everything built so far is
// removed; otherwise Close removes it.
func NewLab(prefix string) (_ *Lab, err error) {
	l, err := lab.New(lab.Config{Prefix: prefix, IPv6: true, DefaultRoute: true,
		UpLoopback: []netip.Addr{OffLink4.Addr(), OffLink6.Addr()}})
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			l.Close()
		}
	}()
	d := &Lab{Lab: l}
	zone, err := dnstest.ParseZone(Zone...)
	if err != nil {
		return nil, err
	}
	for _, s := range []struct {
		network string
		addr    netip.AddrPort
		srv     **dnstest.Server
	}{
		{"udp", Primary, &d.PrimaryServer}, {"udp", Secondary, &d.SecondaryServer},
		{"udp", OffLink4, &d.OffLink4Server}, {"udp", OffLink6, &d.OffLink6Server},
		{"tcp", OffLink4, &d.TCPServer},
		{"tcp", Primary, &d.PrimaryTCP}, {"tcp", Secondary, &d.SecondaryTCP},
	} {
		if *s.srv, err = l.Serve(l.Up, s.network, s.addr, zone); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// StartDnstun runs `dnstun run` inside the host namespace as a subprocess
// and waits until its virtual resolver answers. exe is the command prefix
// that runs dnstun (the binary, or a test binary that behaves as dnstun),
// env its extra environment, lists the block lists to write into the lab's
// folder and pass with --blocklist.
func (l *Lab) StartDnstun(ctx context.Context, exe []string, env []string, lists map[string]string, args ...string) error {
	full := append([]string{}, exe...)
	full = append(full, "run")
	for _, name := range slices.Sorted(maps.Keys(lists)) {
		p := filepath.Join(l.Dir, name)
		if err := os.WriteFile(p, []byte(lists[name]), 0o644); err != nil {
			return err
		}
		full = append(full, "--blocklist", p)
	}
	// Each run gets its own control socket and persisted state, in the
	// lab's folder: never the machine's /run/dnstun or /var/lib/dnstun.
	if !slices.Contains(args, "--control") {
		full = append(full, "--control", l.ControlPath())
	}
	if !slices.Contains(args, "--state-file") {
		full = append(full, "--state-file", filepath.Join(l.Dir, "state.json"))
	}
	full = append(full, args...)
	p, err := l.Start(l.Host, lab.Cmd{Args: full, Env: env})
	if err != nil {
		return fmt.Errorf("start dnstun: %w", err)
	}
	l.Dnstun = p
	// Ready when the virtual resolver answers; one query at a time, each
	// given 200 ms, so that few probes are still in flight afterwards.
	if _, err := l.Host.FirstAnswer(ctx, lab.Probe{Target: Resolver4, Name: "ready.example.com", Rcode: l.ReadyRcode,
		Limit: 15 * time.Second, Every: 200 * time.Millisecond, Proc: p}); err != nil {
		return fmt.Errorf("dnstun: %w\n%s", err, p.Log())
	}
	return nil
}

// ControlPath is the control socket of dnstun in the lab.
func (l *Lab) ControlPath() string { return filepath.Join(l.Dir, "control.sock") }

// Log returns what the latest dnstun printed so far.
func (l *Lab) Log() string {
	if l.Dnstun == nil {
		return ""
	}
	return l.Dnstun.Log()
}

// StopDnstun sends SIGTERM to dnstun (by PID) and waits for it to exit,
// killing it after 5 s. It returns its exit error.
func (l *Lab) StopDnstun() error {
	if l.Dnstun == nil {
		return nil
	}
	return l.Dnstun.Stop()
}

// Query sends one query from the host namespace with miekg/dns, over UDP.
func (l *Lab) Query(server netip.AddrPort, name string, qtype uint16, timeout time.Duration) (*dns.Msg, time.Duration, error) {
	return l.QueryNet("udp", server, name, qtype, timeout)
}

// QueryNet sends one query from the host namespace over network ("udp"
// or "tcp"), without EDNS.
func (l *Lab) QueryNet(network string, server netip.AddrPort, name string, qtype uint16, timeout time.Duration) (*dns.Msg, time.Duration, error) {
	c, err := l.Host.Dial(network, server.String())
	if err != nil {
		return nil, 0, err
	}
	defer c.Close()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	cl := &dns.Client{Net: network, Timeout: timeout}
	r, rtt, err := cl.ExchangeWithConn(m, &dns.Conn{Conn: c})
	return r, rtt, err
}

// step is one query of the demo.
type step struct {
	name     string
	qtype    uint16
	via      string // "v4" or "v6" resolver address
	before   func(l *Lab)
	note     string // what before does
	expected string
	// net is how the client asks: "" over UDP, "tcp", or "udp+tcp": over
	// UDP, then again over TCP when the answer came back truncated, as a
	// resolver does.
	net string
}

var steps = []step{
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
	{name: "www.example.com", qtype: dns.TypeA, via: "v4", expected: "cached", net: "tcp", note: "over TCP, from the cache"},
	{name: "ads.example.com", qtype: dns.TypeAAAA, via: "v6", expected: "blocked", net: "tcp", note: "over TCP"},
	{name: "big.example.com", qtype: dns.TypeTXT, via: "v4", expected: "forwarded", net: "udp+tcp"},
	{name: "mail.example.com", qtype: dns.TypeA, via: "v4", expected: "forwarded",
		before: func(l *Lab) { l.PrimaryServer.Close() }, note: "primary upstream stopped first"},
}

// Row is one row of the demo's table: a query and what happened to it.
type Row struct {
	Name     string
	Type     uint16
	Resolver netip.AddrPort
	Expected string        // the decision the demo expects
	Decision string        // forwarded, blocked, local, cached, or "no answer"
	Upstream string        // primary or secondary for a forwarded query, else "-"
	Rcode    int           // the answer's rcode; -1 without an answer
	Answer   string        // AnswerText of the answer, or "error: ..."
	RTT      time.Duration // the client's round trip
	Note     string
}

// Run builds the lab, runs dnstun in it, sends steps, prints the
// table and returns its rows (those done so far, also with an error).
// Everything is removed when it returns, also on error or Ctrl-C (ctx).
func Run(ctx context.Context, exe, env []string, out io.Writer) (rows []Row, err error) {
	fmt.Fprintln(out, "dnstun demo: building two network namespaces (host, upstream) joined by a veth pair ...")
	l, err := NewLab("dnstun-demo")
	if err != nil {
		return nil, err
	}
	defer func() {
		l.Close()
		fmt.Fprintln(out, "dnstun demo: namespaces, TUN and processes removed.")
	}()
	fmt.Fprintf(out, "dnstun demo: upstream DNS servers %v (primary) and %v (secondary) in %s\n", Primary, Secondary, l.Up.Name)
	fmt.Fprintf(out, "dnstun demo: starting `dnstun run` in %s with the bundled block list ...\n", l.Host.Name)
	args := append([]string{"--upstream-timeout", "1s", "--timeout", "3s", "--log-level", "warn"}, UpstreamArgs...)
	if err := l.StartDnstun(ctx, exe, env, map[string]string{"demo-blocklist.txt": Blocklist}, args...); err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "dnstun demo: dnstun serves %v and %v on its TUN; querying them from %s\n\n", Resolver4.Addr(), Resolver6.Addr(), l.Host.Name)
	for _, st := range steps {
		if ctx.Err() != nil {
			return rows, ctx.Err()
		}
		if st.before != nil {
			st.before(l)
		}
		rows = append(rows, l.observe(st))
	}
	PrintTable(out, rows)
	fmt.Fprintln(out)
	if err := l.StopDnstun(); err != nil {
		return rows, fmt.Errorf("dnstun did not stop cleanly: %v\n%s", err, l.Log())
	}
	var failures []string
	for _, r := range rows {
		if r.Decision != r.Expected {
			failures = append(failures, fmt.Sprintf("%s %s: %s, expected %s", r.Name, dns.TypeToString[r.Type], r.Decision, r.Expected))
		}
	}
	if len(failures) > 0 {
		return rows, fmt.Errorf("unexpected decisions:\n  %s\ndnstun's log:\n%s", strings.Join(failures, "\n  "), l.Log())
	}
	fmt.Fprintln(out, "dnstun demo: every query got the expected decision; dnstun stopped cleanly on SIGTERM.")
	return rows, nil
}

// PrintTable prints rows as an aligned table, one line per row, with
// the columns NAME TYPE RESOLVER DECISION UPSTREAM ANSWER LATENCY NOTE.
func PrintTable(out io.Writer, rows []Row) {
	tw := tabwriter.NewWriter(out, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tTYPE\tRESOLVER\tDECISION\tUPSTREAM\tANSWER\tLATENCY\tNOTE")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, dns.TypeToString[r.Type], r.Resolver.Addr(), r.Decision, r.Upstream, r.Answer, r.RTT.Round(10*time.Microsecond), r.Note)
	}
	tw.Flush()
}

func resolverFor(via string) netip.AddrPort {
	if via == "v6" {
		return Resolver6
	}
	return Resolver4
}

// observe sends st's query and names the decision from what the upstream
// servers saw: a query they saw was forwarded (and which one answered);
// one they did not see was blocked or answered locally by dnstun.
func (l *Lab) observe(st step) Row {
	r := Row{Name: st.name, Type: st.qtype, Resolver: resolverFor(st.via), Expected: st.expected, Upstream: "-", Rcode: -1, Note: st.note}
	seen := func() (primary, secondary int) {
		return l.PrimaryServer.QueriesFor(st.name) + l.PrimaryTCP.QueriesFor(st.name), l.SecondaryServer.QueriesFor(st.name) + l.SecondaryTCP.QueriesFor(st.name)
	}
	p0, s0 := seen()
	network := "udp"
	if st.net == "tcp" {
		network = "tcp"
	}
	res, rtt, err := l.QueryNet(network, r.Resolver, st.name, st.qtype, 5*time.Second)
	if err == nil && st.net == "udp+tcp" {
		if !res.Truncated {
			r.Decision, r.Answer = "not truncated over UDP", AnswerText(res)
			return r
		}
		r.Note = fmt.Sprintf("UDP: TC, %d records; then TCP", len(res.Answer))
		var rtt2 time.Duration
		res, rtt2, err = l.QueryNet("tcp", r.Resolver, st.name, st.qtype, 5*time.Second)
		rtt += rtt2
	}
	r.RTT = rtt
	if err != nil {
		r.Decision, r.Answer = "no answer", "error: "+err.Error()
		return r
	}
	r.Rcode, r.Answer = res.Rcode, AnswerText(res)
	p1, s1 := seen()
	switch {
	case s1 > s0:
		r.Decision, r.Upstream = "forwarded", "secondary"
	case p1 > p0:
		r.Decision, r.Upstream = "forwarded", "primary"
	case l.lastDecision() == "cache":
		r.Decision = "cached"
	case res.Rcode == dns.RcodeSuccess && len(res.Answer) > 0 && !isNullAnswer(res):
		r.Decision = "local"
	default:
		r.Decision = "blocked"
	}
	return r
}

// lastDecision is the decision of the latest query in dnstun's query log
// ("" if it cannot be read): what tells a cache answer from a local one.
func (l *Lab) lastDecision() string {
	c, err := control.Dial(l.ControlPath())
	if err != nil {
		return ""
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	q, err := c.QueryLog(ctx, 1)
	if err != nil || len(q) == 0 {
		return ""
	}
	return q[len(q)-1].Decision
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

// AnswerText renders a response for the table: its rcode when not
// NOERROR, else its records (addresses, quoted TXT, other types by name).
func AnswerText(m *dns.Msg) string {
	if m == nil {
		return "-"
	}
	if m.Rcode != dns.RcodeSuccess {
		return dns.RcodeToString[m.Rcode]
	}
	var parts []string
	for _, rr := range m.Answer {
		switch rr := rr.(type) {
		case *dns.A:
			parts = append(parts, rr.A.String())
		case *dns.AAAA:
			parts = append(parts, rr.AAAA.String())
		case *dns.TXT:
			parts = append(parts, fmt.Sprintf("%q", strings.Join(rr.Txt, "")))
		default:
			parts = append(parts, dns.TypeToString[rr.Header().Rrtype])
		}
	}
	if len(parts) == 0 {
		return "NOERROR (no records)"
	}
	if len(parts) > 4 {
		return fmt.Sprintf("%d records, %d bytes", len(parts), m.Len())
	}
	return strings.Join(parts, " ")
}

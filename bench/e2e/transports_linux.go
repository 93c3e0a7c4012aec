// SPDX-License-Identifier: MIT

package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/dnstun/dnstun/bench/loadgen"
	"github.com/dnstun/dnstun/internal/lab"
	"github.com/dnstun/dnstun/internal/tlstest"
)

// The transports phase's upstreams, all on the upstream namespace's veth
// address (bench/cmd/upstream keeps port 53): unbound serves plain DNS
// (UDP and TCP), DoT and DoH; bench/cmd/quicupstream DoQ and DoH3.
var (
	unboundDNS   = netip.AddrPortFrom(upstreamAddr.Addr(), 5300)
	unboundDoT   = netip.AddrPortFrom(upstreamAddr.Addr(), 853)
	unboundDoH   = netip.AddrPortFrom(upstreamAddr.Addr(), 443)
	quicDoQ      = netip.AddrPortFrom(upstreamAddr.Addr(), 8853)
	quicDoH3     = netip.AddrPortFrom(upstreamAddr.Addr(), 8443)
	upstreamHost = "upstream.bench.example" // a DNS name of the certificate, beside its IP address
)

// transportURL is dnstun's --upstream for each transport: the server's IP
// address in the URL, so no bootstrap resolver is needed and the
// certificate is checked against the address (an IP SAN).
func transportURL(t string) string {
	switch t {
	case TransportUDP, TransportUDP64:
		return unboundDNS.String()
	case TransportTCP:
		return "tcp://" + unboundDNS.String()
	case TransportDoT:
		return "tls://" + unboundDoT.String()
	case TransportDoH:
		return "https://" + unboundDoH.String() + "/dns-query"
	case TransportDoQ:
		return "quic://" + quicDoQ.String()
	case TransportDoH3:
		return "h3://" + quicDoH3.String() + "/dns-query"
	}
	return ""
}

// socketQueries is dnstun's --upstream-socket-queries for t.
func socketQueries(t string) string {
	if t == TransportUDP64 {
		return "64"
	}
	return "1"
}

// transportServer names the process that serves t.
func transportServer(t string) string {
	if t == TransportDoQ || t == TransportDoH3 {
		return "quicupstream"
	}
	return "unbound"
}

// dnsdistServer is dnsdist's newServer table for t (dnsdist 1.7 added
// tls, subjectName, validateCertificates, caStore, dohPath and tcpOnly to
// it), or "" when dnsdist cannot forward over t. dnsdist 1.7 checks the
// certificate against subjectName as a DNS name (subjectAddr, for an IP
// address, came in 1.8), hence the certificate's DNS name. The health
// check asks a name the upstream answers (its default, a.root-servers.net,
// would need recursion).
func dnsdistServer(t, caFile, checkName string) string {
	tls := fmt.Sprintf(`, tls="openssl", subjectName=%q, validateCertificates=true, caStore=%q`, upstreamHost, caFile)
	common := fmt.Sprintf(`checkName=%q, checkInterval=3600`, checkName)
	switch t {
	case TransportUDP:
		return fmt.Sprintf(`{address=%q, %s}`, unboundDNS.String(), common)
	case TransportTCP:
		return fmt.Sprintf(`{address=%q, tcpOnly=true, maxInFlight=%d, %s}`, unboundDNS.String(), dnsdistMaxInFlight, common)
	case TransportDoT:
		return fmt.Sprintf(`{address=%q%s, maxInFlight=%d, %s}`, unboundDoT.String(), tls, dnsdistMaxInFlight, common)
	case TransportDoH:
		return fmt.Sprintf(`{address=%q%s, dohPath="/dns-query", %s}`, unboundDoH.String(), tls, common)
	}
	return ""
}

// transportsEnv is what the phase's runs share.
type transportsEnv struct {
	ca      *tlstest.CA
	unbound *lab.Proc
	quic    *lab.Proc
	dnsdist string // dnsdist's version ("dnsdist 1.7.3"), "" when not installed
}

// runTransports runs the upstream transports phase: unbound (UDP, TCP,
// DoT, DoH) and quicupstream (DoQ, DoH3) in the upstream namespace, then
// for each repetition, transport and system (dnstun, dnsdist; those of
// o.Systems) a start, a warm-up, a closed-loop run and an open-loop run
// with the forwarded-name mix. A run that fails is recorded in notes and
// the phase goes on.
func runTransports(ctx context.Context, e *env, o Options, forward []loadgen.Query, progress func(string, ...any)) (_ *TransportsReport, notes []string) {
	tr := &TransportsReport{}
	want := func(name string) bool { return len(o.Systems) == 0 || slices.Contains(o.Systems, name) }
	var systems []string
	for _, s := range []string{"dnstun", "dnsdist"} {
		if want(s) {
			systems = append(systems, s)
		}
	}
	if len(systems) == 0 {
		tr.Why = "not run: neither dnstun nor dnsdist selected (-systems)"
		return tr, nil
	}
	te, err := startTransportServers(ctx, e, forward[0].Name)
	if te != nil {
		defer func() {
			if te.quic != nil {
				te.quic.Stop()
			}
			if te.unbound != nil {
				te.unbound.Stop()
			}
		}()
	}
	tr.Unbound = unboundVersion()
	tr.UnboundAt = fmt.Sprintf("%v (UDP and TCP), %v (DoT) and %v (DoH, HTTP/2)", unboundDNS, unboundDoT, unboundDoH)
	tr.QUICAt = fmt.Sprintf("%v (DoQ) and %v (DoH3)", quicDoQ, quicDoH3)
	tr.QUIC = "bench/cmd/quicupstream (internal/quictest, " + firstLine(e.bins["quicupstream"], "-version") + ")"
	if err != nil {
		tr.Why = "not run: " + firstLines(err.Error(), 6)
		return tr, []string{"transports: " + firstLines(err.Error(), 6)}
	}
	if lookPeer("dnsdist") != "" {
		te.dnsdist = dnsdistVersion()
	}
	for _, t := range Transports {
		for _, s := range systems {
			run := &TransportRun{Transport: t, System: s, Server: transportServer(t)}
			switch {
			case s == "dnstun":
				run.Upstream = transportURL(t)
			case t == TransportUDP64:
				run.Why = "dnsdist 1.7 forwards from a fixed set of sockets per backend: its udp row"
			case te.dnsdist == "":
				run.Why = "not installed (Debian package dnsdist)"
			default:
				run.Upstream = dnsdistServer(t, te.ca.File, forward[0].Name)
				if run.Upstream == "" {
					run.Why = fmt.Sprintf("not supported by %s (it forwards over UDP, TCP, DoT and DoH only)", te.dnsdist)
				}
			}
			tr.Runs = append(tr.Runs, run)
		}
	}
	// Repetitions interleaved, as in the other phases.
	for r := range o.Reps {
		for _, run := range tr.Runs {
			if run.Why != "" {
				continue
			}
			progress("transports rep %d/%d: %s over %s", r+1, o.Reps, run.System, run.Transport)
			rep, err := runTransport(ctx, e, te, o, run, forward, progress)
			if err != nil {
				if ctx.Err() != nil {
					return tr, notes
				}
				progress("  %s over %s failed: %v", run.System, run.Transport, err)
				notes = append(notes, fmt.Sprintf("transports: %s over %s, rep %d: %v", run.System, run.Transport, r+1, firstLines(err.Error(), 6)))
				continue
			}
			run.Reps = append(run.Reps, rep)
		}
	}
	return tr, notes
}

// startTransportServers makes a CA and a certificate for the upstream
// (its DNS name upstreamHost and its address), and starts unbound and
// quicupstream in the upstream namespace on the client's core; both answer
// every name of the forwarded mix with A 192.0.2.80, TTL 0. It returns
// what it started also with an error, for the caller to stop.
func startTransportServers(ctx context.Context, e *env, probeName string) (*transportsEnv, error) {
	te := &transportsEnv{}
	dir := filepath.Join(e.dir, "transports")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	ca, err := tlstest.NewCA(dir, "bench-ca")
	if err != nil {
		return nil, err
	}
	te.ca = ca
	leaf, err := ca.Issue(dir, "upstream", []string{upstreamHost}, []netip.Addr{upstreamAddr.Addr()})
	if err != nil {
		return nil, err
	}
	unbound := lookPeer("unbound")
	if unbound == "" {
		return te, errors.New("unbound is not installed (Debian package unbound; scripts/bench.sh installs it)")
	}
	// A redirect zone answers every name below it with the apex's data,
	// from memory, before any cache: each of the 10,000 names costs the
	// same, and nothing is cached between runs.
	conf, err := tlstest.UnboundConfig{
		Dir: dir,
		DNS: []netip.AddrPort{unboundDNS}, TLS: []netip.AddrPort{unboundDoT}, HTTPS: []netip.AddrPort{unboundDoH},
		CertFile: leaf.CertFile, KeyFile: leaf.KeyFile,
		Zones: []string{forwardZone + ". redirect"},
		Data:  []string{forwardZone + ". 0 IN A 192.0.2.80"},
		Extra: []string{"num-queries-per-thread: 4096", "do-ip6: no"},
	}.Write()
	if err != nil {
		return te, err
	}
	if te.unbound, err = e.lab.Start(e.lab.Up, lab.Cmd{Args: []string{unbound, "-d", "-c", conf}, CPUs: cpuList(e.cpus.client), LogLimit: logLimit}); err != nil {
		return te, err
	}
	if _, err := e.firstAnswer(ctx, te.unbound, unboundDNS, probeName, lab.RcodeNoError, 10*time.Second); err != nil {
		return te, fmt.Errorf("unbound (DNS %v, DoT %v, DoH %v): %w\n%s", unboundDNS, unboundDoT, unboundDoH, err, te.unbound.Log())
	}
	te.quic, err = e.lab.Start(e.lab.Up, lab.Cmd{Args: []string{e.bins["quicupstream"],
		"-doq", quicDoQ.String(), "-doh3", quicDoH3.String(), "-cert", leaf.CertFile, "-key", leaf.KeyFile,
		"-names", filepath.Join(e.dir, "forward.txt")}, CPUs: cpuList(e.cpus.client), LogLimit: logLimit})
	if err != nil {
		return te, err
	}
	if err := waitLog(ctx, te.quic, "quicupstream: serving", 10*time.Second); err != nil {
		return te, err
	}
	return te, nil
}

// waitLog waits until p has written want, exited, or limit passed.
func waitLog(ctx context.Context, p *lab.Proc, want string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for !strings.Contains(p.Log(), want) {
		if p.Exited() {
			return fmt.Errorf("pid %d exited before %q: %v\n%s", p.Pid(), want, p.Err(), p.Log())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pid %d did not write %q within %v\n%s", p.Pid(), want, limit, p.Log())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

// runTransport runs one repetition of run: start the system, wait for a
// forwarded answer, warm up (connections, handshakes), then the closed
// and the open run, with the system's and the upstream server's CPU time
// read around the closed one.
func runTransport(ctx context.Context, e *env, te *transportsEnv, o Options, run *TransportRun, forward []loadgen.Query, progress func(string, ...any)) (*TransportRep, error) {
	var p *lab.Proc
	var err error
	s := &system{name: run.System}
	switch run.System {
	case "dnstun":
		s.target = tunResolver
		p, err = e.lab.Start(e.lab.Host, lab.Cmd{
			Args: append([]string{e.bins["dnstun"], "run",
				"--upstream", run.Upstream, "--upstream-socket-queries", socketQueries(run.Transport),
				"--cache", "0", // as dnsdist's: no packet cache (startDnstun)
				"--blocklist", e.lists[o.ListSize][fmtPlain],
				"--resolver", tunResolver.Addr().String(),
				"--control", "", "--state-file", filepath.Join(e.dir, "state.json"),
				"--log-level", "warn"}, clientRateOff(e)...),
			// Go's crypto/x509 adds this file to the system's roots.
			Env:  []string{"SSL_CERT_FILE=" + te.ca.File},
			CPUs: cpuList(e.cpus.sut), LogLimit: logLimit,
		})
	case "dnsdist":
		s.target = localAddr
		conf := filepath.Join(e.dir, "transports", "dnsdist-"+run.Transport+".lua")
		text := fmt.Sprintf(`-- dnstun benchmark, transports phase: blocking forwarder, no packet cache
setSecurityPollSuffix("")
setACL({"0.0.0.0/0"})
setLocal("%s")
newServer(%s)
setServerPolicy(firstAvailable)
local smn = newSuffixMatchNode()
for line in io.lines("%s") do smn:add(line) end
addAction(SuffixMatchNodeRule(smn, true), RCodeAction(DNSRCode.NXDOMAIN))
`, localAddr, run.Upstream, e.lists[o.ListSize][fmtPlain])
		if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
			return nil, err
		}
		p, err = e.start(e.cpus.sut, lookPeer("dnsdist"), "--supervised", "--disable-syslog", "-C", conf)
	default:
		return nil, fmt.Errorf("transports: unknown system %q", run.System)
	}
	if err != nil {
		return nil, err
	}
	defer p.Stop()
	if _, err := e.readyPinned(ctx, p, s.target, forward[0].Name, lab.RcodeNoError, 30*time.Second, o.SUTCPU); err != nil {
		return nil, err
	}
	server := te.unbound
	if run.Server == "quicupstream" {
		server = te.quic
	}
	if _, err := load(ctx, e, s, o, forward, loadgen.ClosedLoop, 300*time.Millisecond); err != nil {
		return nil, err
	}
	rep := &TransportRep{}
	for _, mode := range []loadgen.Mode{loadgen.ClosedLoop, loadgen.OpenLoop} {
		cpu0, _ := cpuTime(p.Pid())
		scpu0, _ := cpuTime(server.Pid())
		res, err := load(ctx, e, s, o, forward, mode, o.Transports)
		if err != nil {
			return nil, err
		}
		cpu1, _ := cpuTime(p.Pid())
		scpu1, _ := cpuTime(server.Pid())
		pr := &PhaseResult{
			Sent: res.Sent, Answered: res.Answered, Lost: res.Lost, Errors: res.Errors,
			Mismatched: res.Mismatched, Rcodes: res.Rcodes, QPS: res.QPS,
			Latency: res.Latency, SendLagP99: res.SendLag.P99,
		}
		if res.Answered > 0 {
			pr.CPUPerQuery = (cpu1 - cpu0) / time.Duration(res.Answered)
		}
		if mode == loadgen.ClosedLoop {
			rep.Closed = pr
			if res.Answered > 0 {
				rep.ServerCPUPerQuery = (scpu1 - scpu0) / time.Duration(res.Answered)
			}
		} else {
			rep.Open = pr
		}
		progress("  %-7s %-6s qps %9.0f  lost %5d  p50 %8v  p99 %8v  cpu/q %6v  server cpu/q %6v",
			map[loadgen.Mode]string{loadgen.ClosedLoop: "closed", loadgen.OpenLoop: "open"}[mode], run.Transport,
			pr.QPS, pr.Lost, pr.Latency.P50.Round(time.Microsecond/10), pr.Latency.P99.Round(time.Microsecond/10),
			pr.CPUPerQuery, (scpu1-scpu0)/time.Duration(max(res.Answered, 1)))
		if p.Exited() {
			return nil, fmt.Errorf("%s exited: %v\n%s", run.System, p.Err(), p.Log())
		}
	}
	return rep, nil
}

func unboundVersion() string {
	if lookPeer("unbound") == "" {
		return "unbound (not installed)"
	}
	for _, l := range strings.Split(firstLineAll(lookPeer("unbound"), "-V"), "\n") {
		if strings.HasPrefix(l, "Version") {
			return "unbound " + strings.TrimSpace(strings.TrimPrefix(l, "Version"))
		}
	}
	return "unbound"
}

// dnsdistVersion is "dnsdist X.Y.Z" from dnsdist --version.
func dnsdistVersion() string {
	f := strings.Fields(firstLine(lookPeer("dnsdist"), "--version"))
	if len(f) >= 2 {
		return f[0] + " " + f[1]
	}
	return "this dnsdist"
}

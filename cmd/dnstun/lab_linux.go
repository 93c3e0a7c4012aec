// SPDX-License-Identifier: MIT

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/dnstun/dnstun/internal/dnstest"
	"github.com/dnstun/dnstun/internal/netns"
	"github.com/miekg/dns"
)

// The lab is two throw-away network namespaces joined by a veth pair:
//
//	┌─ host ──────────────────────────────┐        ┌─ upstream ──────────────────────────┐
//	│ dnstun run (subprocess), dnstun0:   │        │ on-link (the gateway, dt-u):        │
//	│   198.19.53.53, fd64:6e73:7475::53  │  veth  │   primary   192.0.2.1:53 udp+tcp    │
//	│ clients (miekg, Go, glibc, dig)     ├────────┤   secondary [2001:db8:53::1]:53     │
//	│ dt-h 192.0.2.2/24 2001:db8:53::2/64 │        │ off-link (on lo, routed via dt-u):  │
//	│ default via 192.0.2.1 / ...53::1    │        │   198.51.100.53, 2001:db8:5353::53  │
//	└─────────────────────────────────────┘        └─────────────────────────────────────┘
//
// All servers are miekg/dns answering one zone; each counts what it saw.
//
// Addresses come from the documentation ranges (RFC 5737, RFC 3849) and
// exist only inside the namespaces; nothing is sent from the machine's own
// namespace.
var (
	labHostAddr4 = "192.0.2.2/24"
	labHostAddr6 = "2001:db8:53::2/64"
	labUpAddr4   = "192.0.2.1/24"
	labUpAddr6   = "2001:db8:53::1/64"
	labPrimary   = netip.MustParseAddrPort("192.0.2.1:53")
	labSecondary = netip.MustParseAddrPort("[2001:db8:53::1]:53")
	labResolver4 = netip.MustParseAddrPort("198.19.53.53:53")
	labResolver6 = netip.MustParseAddrPort("[fd64:6e73:7475::53]:53")
	labOffLink4  = netip.MustParseAddrPort("198.51.100.53:53")
	labOffLink6  = netip.MustParseAddrPort("[2001:db8:5353::53]:53")
)

// labUpstreamArgs point dnstun at the lab's on-link servers.
var labUpstreamArgs = []string{"--upstream", labPrimary.String(), "--upstream", labSecondary.String()}

// labZone is what the upstream servers hold; other names are NXDOMAIN.
var labZone = []string{
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

type lab struct {
	host, up  *netns.NS
	primary   *dnstest.Server
	secondary *dnstest.Server
	offlink4  *dnstest.Server
	offlink6  *dnstest.Server
	tcp       *dnstest.Server // TCP on the off-link IPv4 address
	dir       string

	mu      sync.Mutex
	proc    *exec.Cmd
	logBuf  *bytes.Buffer
	exited  chan struct{}
	exitErr error
}

// newLab builds the namespaces and starts the upstream servers. On error,
// everything built so far is removed.
func newLab(prefix string) (l *lab, err error) {
	l = &lab{}
	defer func() {
		if err != nil {
			l.close()
		}
	}()
	if l.dir, err = os.MkdirTemp("", "dnstun-lab-"); err != nil {
		return nil, err
	}
	sfx := netns.Suffix()
	if l.host, err = netns.New(prefix + "-" + sfx + "-host"); err != nil {
		return nil, err
	}
	if l.up, err = netns.New(prefix + "-" + sfx + "-up"); err != nil {
		return nil, err
	}
	if err = netns.Veth(l.host, "dt-h", l.up, "dt-u"); err != nil {
		return nil, err
	}
	for _, c := range [][]string{
		{"host", "addr", "add", labHostAddr4, "dev", "dt-h"},
		{"host", "addr", "add", labHostAddr6, "dev", "dt-h", "nodad"},
		{"up", "addr", "add", labUpAddr4, "dev", "dt-u"},
		{"up", "addr", "add", labUpAddr6, "dev", "dt-u", "nodad"},
		{"up", "addr", "add", labOffLink4.Addr().String() + "/32", "dev", "lo"},
		{"up", "addr", "add", labOffLink6.Addr().String() + "/128", "dev", "lo"},
		{"host", "route", "add", "default", "via", labPrimary.Addr().String()},
		{"host", "-6", "route", "add", "default", "via", labSecondary.Addr().String()},
	} {
		ns := l.host
		if c[0] == "up" {
			ns = l.up
		}
		if err = ns.IP(c[1:]...); err != nil {
			return nil, err
		}
	}
	// Let IPv6 duplicate address detection of the link-local addresses
	// finish, so the namespaces' state is settled (tests snapshot it).
	for _, ns := range []*netns.NS{l.host, l.up} {
		if err = waitNoTentative(ns); err != nil {
			return nil, err
		}
	}
	zone, err := dnstest.ParseZone(labZone...)
	if err != nil {
		return nil, err
	}
	for _, s := range []struct {
		addr netip.AddrPort
		srv  **dnstest.Server
	}{{labPrimary, &l.primary}, {labSecondary, &l.secondary}, {labOffLink4, &l.offlink4}, {labOffLink6, &l.offlink6}} {
		var pc net.PacketConn
		err = l.up.Do(func() (err error) {
			pc, err = net.ListenPacket("udp", s.addr.String())
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("upstream server on %v: %w", s.addr, err)
		}
		*s.srv = dnstest.Serve(pc, zone)
	}
	var ln net.Listener
	if err = l.up.Do(func() (err error) {
		ln, err = net.Listen("tcp", labOffLink4.String())
		return err
	}); err != nil {
		return nil, err
	}
	l.tcp = dnstest.ServeTCP(ln, zone)
	return l, nil
}

// startDnstun runs `dnstun run` inside the host namespace as a
// subprocess. exe is the command prefix that runs dnstun (the binary, or a
// test binary that behaves as dnstun), env its extra environment.
func (l *lab) startDnstun(ctx context.Context, exe []string, env []string, lists map[string]string, args ...string) error {
	full := append([]string{}, exe[1:]...)
	full = append(full, "run")
	for name, content := range lists {
		p := filepath.Join(l.dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return err
		}
		full = append(full, "--blocklist", p)
	}
	// Each run gets its own control socket and persisted state, in the
	// lab's folder: never the machine's /run/dnstun or /var/lib/dnstun.
	if !slices.Contains(args, "--control") {
		full = append(full, "--control", l.controlPath())
	}
	if !slices.Contains(args, "--state-file") {
		full = append(full, "--state-file", filepath.Join(l.dir, "state.json"))
	}
	full = append(full, args...)
	cmd := exec.Command("ip", append([]string{"netns", "exec", l.host.Name, exe[0]}, full...)...)
	cmd.Env = append(os.Environ(), env...)
	l.logBuf = &bytes.Buffer{}
	// One writer for both streams: exec then shares one pipe and one
	// copying goroutine, and every write takes l.mu.
	w := &lockedWriter{mu: &l.mu, w: l.logBuf}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start dnstun: %w", err)
	}
	l.proc = cmd
	l.exited = make(chan struct{})
	go func() {
		err := cmd.Wait()
		l.mu.Lock()
		l.exitErr = err
		l.mu.Unlock()
		close(l.exited)
	}()
	// Ready when the virtual resolver answers.
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-l.exited:
			return fmt.Errorf("dnstun exited during start-up (%v):\n%s", l.exitErr, l.Log())
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if _, _, err := l.query(labResolver4, "ready.example.com", dns.TypeA, 200*time.Millisecond); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("dnstun did not answer within 15 s:\n%s", l.Log())
		}
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

// controlPath is the control socket of dnstun in the lab.
func (l *lab) controlPath() string { return filepath.Join(l.dir, "control.sock") }

// Log returns what dnstun printed so far.
func (l *lab) Log() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.logBuf == nil {
		return ""
	}
	return l.logBuf.String()
}

// stopDnstun sends SIGTERM to dnstun (by PID) and waits for it to exit,
// killing it after 5 s. It returns its exit error.
func (l *lab) stopDnstun() error {
	if l.proc == nil {
		return nil
	}
	l.proc.Process.Signal(syscall.SIGTERM)
	select {
	case <-l.exited:
	case <-time.After(5 * time.Second):
		l.proc.Process.Kill()
		<-l.exited
		return errors.New("dnstun did not stop within 5 s of SIGTERM; killed")
	}
	l.proc = nil
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.exitErr
}

// dial opens a UDP socket inside the host namespace connected to addr.
func (l *lab) dial(addr netip.AddrPort) (net.Conn, error) {
	var c net.Conn
	err := l.host.Do(func() (err error) {
		c, err = net.Dial("udp", addr.String())
		return err
	})
	return c, err
}

// query sends one query from the host namespace with miekg/dns.
func (l *lab) query(server netip.AddrPort, name string, qtype uint16, timeout time.Duration) (*dns.Msg, time.Duration, error) {
	c, err := l.dial(server)
	if err != nil {
		return nil, 0, err
	}
	defer c.Close()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	cl := &dns.Client{Timeout: timeout}
	r, rtt, err := cl.ExchangeWithConn(m, &dns.Conn{Conn: c})
	return r, rtt, err
}

// close stops dnstun and the servers and removes the namespaces.
func (l *lab) close() {
	l.stopDnstun()
	for _, s := range []*dnstest.Server{l.primary, l.secondary, l.offlink4, l.offlink6, l.tcp} {
		if s != nil {
			s.Close()
		}
	}
	for _, ns := range []*netns.NS{l.host, l.up} {
		if ns != nil {
			ns.Delete()
		}
	}
	if l.dir != "" {
		os.RemoveAll(l.dir)
	}
}

// answerText renders a response for the table.
func answerText(m *dns.Msg) string {
	if m == nil {
		return "-"
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
	if m.Rcode != dns.RcodeSuccess {
		return dns.RcodeToString[m.Rcode]
	}
	if len(parts) == 0 {
		return "NOERROR (no records)"
	}
	return strings.Join(parts, " ")
}

// waitNoTentative waits up to 5 s until ns has no tentative IPv6 address.
func waitNoTentative(ns *netns.NS) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		out, err := exec.Command("ip", "-n", ns.Name, "-6", "addr", "show", "tentative").CombinedOutput()
		if err != nil {
			return fmt.Errorf("ip -6 addr show tentative in %s: %w: %s", ns.Name, err, out)
		}
		if len(bytes.TrimSpace(out)) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("IPv6 addresses in %s still tentative after 5 s: %s", ns.Name, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

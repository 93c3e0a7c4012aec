// SPDX-License-Identifier: MIT

package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dnstun/dnstun/internal/demo"
	"github.com/dnstun/dnstun/internal/pkttest"
	"github.com/dnstun/dnstun/internal/privtest"
	"github.com/miekg/dns"
	"golang.org/x/sys/unix"
)

// startLab builds the namespaces and runs the test binary as `dnstun run`
// in the host namespace with args; everything is removed at the end.
func startLab(t *testing.T, args ...string) *demo.Lab {
	t.Helper()
	privtest.RequirePriv(t)
	l, err := demo.NewLab("dnstun-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	startDnstun(t, l, args...)
	return l
}

// startDnstun starts dnstun (this test binary) in lab l with the demo's
// block list and upstreams and args, and waits until it answers.
func startDnstun(t *testing.T, l *demo.Lab, args ...string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if err := l.StartDnstun(context.Background(), []string{exe}, []string{"DNSTUN_TEST_MAIN=1"},
		map[string]string{"list.txt": demo.Blocklist}, append(append([]string{"--log-level", "info"}, demo.UpstreamArgs...), args...)...); err != nil {
		t.Fatal(err)
	}
}

// mustQuery sends one query through dnstun with miekg/dns.
func mustQuery(t *testing.T, l *demo.Lab, server netip.AddrPort, name string, qtype uint16) *dns.Msg {
	t.Helper()
	m, _, err := l.Query(server, name, qtype, 3*time.Second)
	if err != nil {
		t.Fatalf("query %s %s via %v: %v", name, dns.TypeToString[qtype], server, err)
	}
	return m
}

// TestDemo runs the demo and checks every row it reports against this
// table: the decision (from what the upstream servers saw), which upstream
// answered, the rcode and the records; and that the printed table has the
// same rows in the same order.
func TestDemo(t *testing.T) {
	privtest.RequirePriv(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	rows, err := demo.Run(context.Background(), []string{exe}, []string{"DNSTUN_TEST_MAIN=1"}, &out)
	t.Log("\n" + out.String())
	if err != nil {
		t.Errorf("demo: %v", err) // and the rows it got, below
	}
	want := []demo.Row{
		{Name: "www.example.com", Type: dns.TypeA, Resolver: demo.Resolver4, Decision: "forwarded", Upstream: "primary", Rcode: dns.RcodeSuccess, Answer: "192.0.2.80"},
		{Name: "www.example.com", Type: dns.TypeAAAA, Resolver: demo.Resolver6, Decision: "forwarded", Upstream: "primary", Rcode: dns.RcodeSuccess, Answer: "2001:db8::80"},
		{Name: "example.com", Type: dns.TypeTXT, Resolver: demo.Resolver4, Decision: "forwarded", Upstream: "primary", Rcode: dns.RcodeSuccess, Answer: `"dnstun demo zone"`},
		{Name: "ads.doubleclick.net", Type: dns.TypeA, Resolver: demo.Resolver4, Decision: "blocked", Upstream: "-", Rcode: dns.RcodeNameError, Answer: "NXDOMAIN"},
		{Name: "pixel.tracker.example", Type: dns.TypeAAAA, Resolver: demo.Resolver6, Decision: "blocked", Upstream: "-", Rcode: dns.RcodeNameError, Answer: "NXDOMAIN"},
		{Name: "ads.example.com", Type: dns.TypeA, Resolver: demo.Resolver4, Decision: "blocked", Upstream: "-", Rcode: dns.RcodeNameError, Answer: "NXDOMAIN"},
		{Name: "cdn.ads.example.com", Type: dns.TypeA, Resolver: demo.Resolver4, Decision: "forwarded", Upstream: "primary", Rcode: dns.RcodeSuccess, Answer: "192.0.2.67"},
		{Name: "printer.lan", Type: dns.TypeA, Resolver: demo.Resolver4, Decision: "local", Upstream: "-", Rcode: dns.RcodeSuccess, Answer: "192.0.2.10"},
		{Name: "printer.lan", Type: dns.TypeAAAA, Resolver: demo.Resolver6, Decision: "local", Upstream: "-", Rcode: dns.RcodeSuccess, Answer: "2001:db8::10"},
		{Name: "nonexistent.example.com", Type: dns.TypeA, Resolver: demo.Resolver4, Decision: "forwarded", Upstream: "primary", Rcode: dns.RcodeNameError, Answer: "NXDOMAIN"},
		{Name: "www.example.com", Type: dns.TypeA, Resolver: demo.Resolver4, Decision: "cached", Upstream: "-", Rcode: dns.RcodeSuccess, Answer: "192.0.2.80", Note: "over TCP, from the cache"},
		{Name: "ads.example.com", Type: dns.TypeAAAA, Resolver: demo.Resolver6, Decision: "blocked", Upstream: "-", Rcode: dns.RcodeNameError, Answer: "NXDOMAIN", Note: "over TCP"},
		// Over UDP without EDNS the 4.6 KB answer comes back cut to its
		// question with TC; the retry over TCP gets it whole.
		{Name: "big.example.com", Type: dns.TypeTXT, Resolver: demo.Resolver4, Decision: "forwarded", Upstream: "primary", Rcode: dns.RcodeSuccess, Answer: "20 records, 4593 bytes", Note: "UDP: TC, 0 records; then TCP"},
		{Name: "mail.example.com", Type: dns.TypeA, Resolver: demo.Resolver4, Decision: "forwarded", Upstream: "secondary", Rcode: dns.RcodeSuccess, Answer: "192.0.2.25"},
	}
	if len(rows) != len(want) {
		t.Fatalf("demo reported %d rows, want %d: %+v", len(rows), len(want), rows)
	}
	for i, w := range want {
		g := rows[i]
		if g.Name != w.Name || g.Type != w.Type || g.Resolver != w.Resolver || g.Decision != w.Decision ||
			g.Upstream != w.Upstream || g.Rcode != w.Rcode || g.Answer != w.Answer || w.Note != "" && g.Note != w.Note {
			t.Errorf("row %d: %s %s via %v: %s by %s, %s %q; want %s by %s, %s %q", i+1,
				g.Name, dns.TypeToString[g.Type], g.Resolver, g.Decision, g.Upstream, dns.RcodeToString[g.Rcode], g.Answer,
				w.Decision, w.Upstream, dns.RcodeToString[w.Rcode], w.Answer)
		}
		if g.Expected != g.Decision {
			t.Errorf("row %d: the demo expected %s but reported %s without failing", i+1, g.Expected, g.Decision)
		}
	}
	// The printed table: a header, then one line per row in order, each
	// starting with the row's name, type, resolver and decision.
	lines := strings.Split(out.String(), "\n")
	h := slices.IndexFunc(lines, func(s string) bool { return strings.HasPrefix(s, "NAME ") })
	if h < 0 || len(lines) < h+1+len(want) {
		t.Fatalf("no table in the output:\n%s", out.String())
	}
	for i, w := range want {
		f := strings.Fields(lines[h+1+i])
		if len(f) < 4 || f[0] != w.Name || f[1] != dns.TypeToString[w.Type] || f[2] != w.Resolver.Addr().String() || f[3] != w.Decision {
			t.Errorf("table line %d: %q, want %s %s %v %s ...", i+1, lines[h+1+i], w.Name, dns.TypeToString[w.Type], w.Resolver.Addr(), w.Decision)
		}
	}
	if next := lines[h+1+len(want)]; next != "" {
		t.Errorf("table has more lines than rows: %q", next)
	}
	if !strings.Contains(out.String(), "namespaces, TUN and processes removed.") {
		t.Errorf("the demo did not report its clean-up:\n%s", out.String())
	}
}

func TestE2EMiekgClientsV4V6(t *testing.T) {
	l := startLab(t)
	for _, tc := range []struct {
		server  netip.AddrPort
		name    string
		qtype   uint16
		rcode   int
		answers string
		fwd     bool
	}{
		{demo.Resolver4, "www.example.com", dns.TypeA, dns.RcodeSuccess, "192.0.2.80", true},
		{demo.Resolver6, "www.example.com", dns.TypeAAAA, dns.RcodeSuccess, "2001:db8::80", true},
		{demo.Resolver6, "mail.example.com", dns.TypeA, dns.RcodeSuccess, "192.0.2.25", true},
		{demo.Resolver4, "nonexistent.example.com", dns.TypeA, dns.RcodeNameError, "NXDOMAIN", true},
		{demo.Resolver4, "ads.doubleclick.net", dns.TypeA, dns.RcodeNameError, "NXDOMAIN", false},
		{demo.Resolver6, "deep.pixel.tracker.example", dns.TypeAAAA, dns.RcodeNameError, "NXDOMAIN", false},
		{demo.Resolver4, "ADS.Example.COM", dns.TypeA, dns.RcodeNameError, "NXDOMAIN", false},
		{demo.Resolver4, "printer.lan", dns.TypeA, dns.RcodeSuccess, "192.0.2.10", false},
		{demo.Resolver6, "printer.lan", dns.TypeAAAA, dns.RcodeSuccess, "2001:db8::10", false},
	} {
		before := l.PrimaryServer.QueriesFor(tc.name)
		m := mustQuery(t, l, tc.server, tc.name, tc.qtype)
		got := demo.AnswerText(m)
		if m.Rcode != tc.rcode || got != tc.answers {
			t.Errorf("%s %s via %v: %s, want %s", tc.name, dns.TypeToString[tc.qtype], tc.server, got, tc.answers)
		}
		// No loop and no duplicate: exactly one upstream query per
		// forwarded client query, none for decided ones.
		want := 0
		if tc.fwd {
			want = 1
		}
		if n := l.PrimaryServer.QueriesFor(tc.name) - before; n != want {
			t.Errorf("%s: upstream saw %d queries, want %d", tc.name, n, want)
		}
	}
}

func TestE2EGoAndGlibcResolvers(t *testing.T) {
	l := startLab(t)
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, address string) (net.Conn, error) {
		return l.Host.Dial("udp", demo.Resolver4.String())
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addrs, err := r.LookupHost(ctx, "www.example.com")
	slices.Sort(addrs)
	if err != nil || strings.Join(addrs, ",") != "192.0.2.80,2001:db8::80" {
		t.Errorf("Go resolver www.example.com = %v, %v", addrs, err)
	}
	_, err = r.LookupHost(ctx, "ads.doubleclick.net")
	var dnsErr *net.DNSError
	if !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
		t.Errorf("Go resolver blocked name: err = %v, want not found", err)
	}

	// glibc through `ip netns exec`, which mounts /etc/netns/NAME/resolv.conf
	// over /etc/resolv.conf for the command only.
	dir := "/etc/netns/" + l.Host.Name
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir+"/resolv.conf", []byte("nameserver 198.19.53.53\noptions timeout:2 attempts:1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := l.Host.Command(ctx, "getent", "ahostsv4", "www.example.com").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "192.0.2.80") {
		t.Errorf("getent www.example.com: %v %s", err, out)
	}
	out, err = l.Host.Command(ctx, "getent", "ahostsv4", "ads.doubleclick.net").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Errorf("getent blocked name: %v %s, want exit status 2 (not found)", err, out)
	}
	if _, err := exec.LookPath("dig"); err != nil {
		t.Log("dig not installed (Debian package dnsutils): dig check not run")
		return
	}
	out, err = l.Host.Command(ctx, "dig", "+short", "+time=2", "+tries=1", "@fd64:6e73:7475::53", "www.example.com", "AAAA").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "2001:db8::80" {
		t.Errorf("dig AAAA: %v %q", err, out)
	}
	out, err = l.Host.Command(ctx, "dig", "+time=2", "+tries=1", "@198.19.53.53", "pixel.tracker.example").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "status: NXDOMAIN") || !strings.Contains(string(out), "EDE: 15 (Blocked)") {
		t.Errorf("dig blocked: %v\n%s", err, out)
	}
}

func TestE2EBlockModeNull(t *testing.T) {
	l := startLab(t, "--block-mode", "null")
	if got := demo.AnswerText(mustQuery(t, l, demo.Resolver4, "ads.doubleclick.net", dns.TypeA)); got != "0.0.0.0" {
		t.Errorf("A = %s, want 0.0.0.0", got)
	}
	if got := demo.AnswerText(mustQuery(t, l, demo.Resolver6, "ads.doubleclick.net", dns.TypeAAAA)); got != "::" {
		t.Errorf("AAAA = %s, want ::", got)
	}
	if got := demo.AnswerText(mustQuery(t, l, demo.Resolver4, "ads.doubleclick.net", dns.TypeMX)); got != "NOERROR (no records)" {
		t.Errorf("MX = %s, want NODATA", got)
	}
}

func TestE2EBlockModeRefused(t *testing.T) {
	l := startLab(t, "--block-mode", "refused")
	if m := mustQuery(t, l, demo.Resolver4, "ads.doubleclick.net", dns.TypeA); m.Rcode != dns.RcodeRefused {
		t.Errorf("rcode %s, want REFUSED", dns.RcodeToString[m.Rcode])
	}
}

func TestE2EServfailWhenUpstreamsDoNotAnswer(t *testing.T) {
	l := startLab(t, "--upstream-timeout", "300ms", "--timeout", "1s")
	l.PrimaryServer.SetSilent(true)
	l.SecondaryServer.SetSilent(true)
	start := time.Now()
	m := mustQuery(t, l, demo.Resolver4, "www.example.com", dns.TypeA)
	took := time.Since(start)
	if m.Rcode != dns.RcodeServerFailure {
		t.Fatalf("rcode %s, want SERVFAIL", dns.RcodeToString[m.Rcode])
	}
	if took < time.Second || took > 2*time.Second {
		t.Errorf("SERVFAIL after %v, want about the 1 s timeout", took)
	}
	if p, s := l.PrimaryServer.QueriesFor("www.example.com"), l.SecondaryServer.QueriesFor("www.example.com"); p < 1 || s < 1 {
		t.Errorf("attempts: primary %d, secondary %d; both should have been tried", p, s)
	}
}

func TestE2ESecondUpstreamTakesOver(t *testing.T) {
	l := startLab(t, "--upstream-timeout", "300ms", "--timeout", "3s")
	// A primary that is up but silent: the secondary answers after the
	// per-upstream timeout.
	l.PrimaryServer.SetSilent(true)
	start := time.Now()
	m := mustQuery(t, l, demo.Resolver4, "www.example.com", dns.TypeA)
	took := time.Since(start)
	if demo.AnswerText(m) != "192.0.2.80" || l.SecondaryServer.QueriesFor("www.example.com") != 1 {
		t.Fatalf("answer %s, secondary saw %d", demo.AnswerText(m), l.SecondaryServer.QueriesFor("www.example.com"))
	}
	if took < 300*time.Millisecond {
		t.Errorf("answered after %v, before the primary's timeout", took)
	}
	// A primary that is gone (ICMP port unreachable): failover at once.
	l.PrimaryServer.Close()
	start = time.Now()
	m = mustQuery(t, l, demo.Resolver6, "mail.example.com", dns.TypeA)
	if demo.AnswerText(m) != "192.0.2.25" {
		t.Fatalf("answer %s", demo.AnswerText(m))
	}
	if took := time.Since(start); took > 250*time.Millisecond {
		t.Errorf("failover from a refusing upstream took %v", took)
	}
}

// TestE2EMalformedPacketsAreDroppedAndCounted writes bad packets into the
// TUN through the host's stack (garbage DNS over UDP, a datagram larger
// than the TUN's MTU, which arrives as IP fragments) and as raw IP packets
// (a lying UDP length, TCP), and checks through the control socket's stats
// verb that every counter moved by exactly what was sent: each drop
// reason by its packets, nothing else, and that dnstun keeps serving.
func TestE2EMalformedPacketsAreDroppedAndCounted(t *testing.T) {
	l := startLab(t)
	stats := func() map[string]uint64 {
		t.Helper()
		m := labStats(t, l)
		delete(m, "pending") // a gauge, not a counter
		for k := range m {
			if strings.HasPrefix(k, "upstream.") || strings.HasPrefix(k, "udp_sockets_") || strings.HasPrefix(k, "cache_") || strings.HasPrefix(k, "tun_queue.") {
				delete(m, k) // per upstream and per TUN queue: checked by their own tests
			}
		}
		return m
	}
	// The datagram of 3000 bytes leaves in fragments of the TUN's MTU
	// (RFC 791: each but the last carries a multiple of 8 bytes).
	out, err := l.Host.Command(context.Background(), "ip", "-j", "link", "show", "dnstun0").Output()
	if err != nil {
		t.Fatal(err)
	}
	var links []struct{ MTU int }
	if err := json.Unmarshal(out, &links); err != nil || len(links) != 1 || links[0].MTU < 576 {
		t.Fatalf("dnstun0's MTU: %v %s", err, out)
	}
	const big = 3000
	perFrag := (links[0].MTU - 20) / 8 * 8
	frags := uint64((big + 8 + perFrag - 1) / perFrag)

	before := stats()
	c, err := l.Host.Dial("udp", demo.Resolver4.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	bad := pkttest.Pack(pkttest.Msg(77, "x.example", dns.TypeA))
	bad[12] = 0xC0 // a compression pointer in the question: FORMERR
	resp := pkttest.Pack(pkttest.Msg(78, "x.example", dns.TypeA))
	resp[2] |= 0x80 // QR=1: a response sent to a resolver is never answered
	for _, payload := range [][]byte{
		{}, {1, 2, 3}, // short_dns: under the 12-byte header
		bytes.Repeat([]byte{0xff}, 12), resp, // response: QR=1
		bad,               // formerr, answered
		make([]byte, big), // fragment, each one
	} {
		if _, err := c.Write(payload); err != nil {
			t.Fatal(err)
		}
	}
	// The FORMERR answer to the bad question.
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 512)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no FORMERR answer: %v", err)
	}
	m := pkttest.Unpack(t, buf[:n])
	if m.Id != 77 || m.Rcode != dns.RcodeFormatError {
		t.Errorf("answer to the bad question: %v", m)
	}
	// Raw packets: UDP with a lying length field, the same bytes as an
	// ICMP packet (neither UDP nor TCP), and as a TCP segment to port 53
	// (handed to the TCP stack, which drops its bad checksum).
	err = l.Host.Do(func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_RAW)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		dst := &unix.SockaddrInet4{Addr: demo.Resolver4.Addr().As4()}
		src := netip.MustParseAddrPort("198.19.53.1:4000")
		udp := pkttest.UDP4(src, demo.Resolver4, pkttest.Pack(pkttest.Msg(1, "a.example", dns.TypeA)), nil)
		liar := bytes.Clone(udp)
		binary.BigEndian.PutUint16(liar[24:], 200) // UDP length beyond the packet: bad_header
		icmp := bytes.Clone(udp)
		icmp[9] = unix.IPPROTO_ICMP // not_udp
		tcp := bytes.Clone(udp)
		tcp[9] = unix.IPPROTO_TCP // tcp_segments
		for _, p := range [][]byte{liar, icmp, tcp} {
			if err := unix.Sendto(fd, p, 0, dst); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("raw send: %v", err)
	}
	// Still serving.
	if got := demo.AnswerText(mustQuery(t, l, demo.Resolver4, "www.example.com", dns.TypeA)); got != "192.0.2.80" {
		t.Errorf("after garbage: %s", got)
	}
	sent := 6 - 1 + frags + 3 + 1 // the UDP payloads (the big one as frags), raw packets, the query
	want := map[string]uint64{
		"packets":         sent,
		"drop_short_dns":  2,
		"drop_response":   2,
		"drop_formerr":    1,
		"drop_fragment":   frags,
		"drop_bad_header": 1,
		"drop_not_udp":    1,
		"tcp_segments":    1,
		"forwarded":       1, // the query after the garbage
		"replied":         1,
	}
	diff := func(after map[string]uint64) []string {
		var bad []string
		keys := map[string]bool{}
		for _, m := range []map[string]uint64{before, after, want} {
			for k := range m {
				keys[k] = true
			}
		}
		for _, k := range slices.Sorted(maps.Keys(keys)) {
			if got := after[k] - before[k]; got != want[k] {
				bad = append(bad, fmt.Sprintf("%s %+d, want %+d", k, int64(got), int64(want[k])))
			}
		}
		return bad
	}
	// Packets are counted as they are read: wait until every one is.
	var after map[string]uint64
	deadline := time.Now().Add(3 * time.Second)
	for {
		after = stats()
		if diff(after) == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if d := diff(after); d != nil {
		t.Errorf("counters moved by other than what was sent (%d fragments of %d bytes at MTU %d):\n  %s\nbefore: %v\nafter:  %v",
			frags, big, links[0].MTU, strings.Join(d, "\n  "), before, after)
	}
	if err := l.StopDnstun(); err != nil {
		t.Fatalf("stop: %v\n%s", err, l.Log())
	}
	// The final stats in the log carry the same values.
	log := l.Log()
	for k := range want {
		if !strings.HasPrefix(k, "drop_") {
			continue
		}
		if s := fmt.Sprintf("%s:%d", k, after[k]); !strings.Contains(log, s) {
			t.Errorf("dnstun's final stats lack %s:\n%s", s, log)
		}
	}
	if strings.Contains(log, "panic") {
		t.Errorf("dnstun panicked:\n%s", log)
	}
}

// TestE2EStopRemovesTUN checks that SIGTERM ends dnstun with status 0 and
// that its TUN, addresses and routes are gone with it.
func TestE2EStopRemovesTUN(t *testing.T) {
	l := startLab(t)
	if out, err := l.Host.Command(context.Background(), "ip", "-o", "link", "show", "dnstun0").CombinedOutput(); err != nil {
		t.Fatalf("dnstun0 missing while running: %v %s", err, out)
	}
	if err := l.StopDnstun(); err != nil {
		t.Fatalf("stop: %v\n%s", err, l.Log())
	}
	if out, err := l.Host.Command(context.Background(), "ip", "-o", "link", "show", "dnstun0").CombinedOutput(); err == nil {
		t.Errorf("dnstun0 still exists after stop: %s", out)
	}
	out, _ := l.Host.Command(context.Background(), "ip", "route", "get", "198.19.53.53").CombinedOutput()
	if strings.Contains(string(out), "dnstun0") {
		t.Errorf("route to the resolver still points at dnstun0: %s", out)
	}
	if !strings.Contains(l.Log(), "dnstun stopped") {
		t.Errorf("no clean-stop log line:\n%s", l.Log())
	}
}

// TestUnreachableUpstreamAtStart (from issue 12): dnstun started while its
// only upstream has no route serves from the start, with SERVFAIL, says
// why in the log and the status, and answers for real once the route is
// added, without a restart.
func TestUnreachableUpstreamAtStart(t *testing.T) {
	privtest.RequirePriv(t)
	l, err := demo.NewLab("dnstun-noroute")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	// The off-link upstream is reachable only through the default route.
	if err := l.Host.IP("route", "del", "default"); err != nil {
		t.Fatal(err)
	}
	exe, _ := os.Executable()
	l.ReadyRcode = dns.RcodeServerFailure
	if err := l.StartDnstun(context.Background(), []string{exe}, []string{"DNSTUN_TEST_MAIN=1"}, nil,
		"--upstream", demo.OffLink4.String(), "--timeout", "1s", "--upstream-timeout", "500ms", "--log-level", "info"); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(2 * time.Second); !strings.Contains(l.Log(), "upstream cannot be reached now"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Errorf("the log does not say why:\n%s", l.Log())
			break
		}
	}
	st, err := client(t, l).Status(context.Background())
	if err != nil || len(st.Upstreams) != 1 || st.Upstreams[0].Healthy {
		t.Errorf("status while unreachable: %+v %v", st.Upstreams, err)
	}
	if m := mustQuery(t, l, demo.Resolver4, "www.example.com", dns.TypeA); m.Rcode != dns.RcodeServerFailure {
		t.Errorf("while unreachable: %s, want SERVFAIL", dns.RcodeToString[m.Rcode])
	}
	if err := l.Host.IP("route", "add", "default", "via", demo.Primary.Addr().String()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		m, _, err := l.Query(demo.Resolver4, "www.example.com", dns.TypeA, 2*time.Second)
		if err == nil && demo.AnswerText(m) == "192.0.2.80" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no real answer 10 s after the route came: %v %v\n%s", m, err, l.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The log is read from the process's stderr as it comes.
	for deadline := time.Now().Add(2 * time.Second); !strings.Contains(l.Log(), "upstream reachable now"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Errorf("the log does not say the upstream came back:\n%s", l.Log())
			break
		}
	}
}

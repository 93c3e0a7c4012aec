// SPDX-License-Identifier: MIT

package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dnstun/dnstun/engine"
	"github.com/dnstun/dnstun/internal/demo"
	"github.com/dnstun/dnstun/internal/lab"
	"github.com/dnstun/dnstun/internal/pkttest"
	"github.com/miekg/dns"
	"golang.org/x/sys/unix"
)

// DNS over TCP through the TUN (issue 11), with real clients: dig where
// installed, miekg/dns, and raw sockets for what clients misbehaving do.

// digAnswer runs dig in the host namespace and returns its short output.
func digAnswer(t *testing.T, l *demo.Lab, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath("dig"); err != nil {
		if os.Getenv("DNSTUN_REQUIRE_PRIV") == "1" {
			t.Fatal("dig (Debian package dnsutils) is needed and DNSTUN_REQUIRE_PRIV=1 forbids skipping")
		}
		t.Skip("dig not installed (Debian package dnsutils)")
	}
	out, err := l.Host.Command(context.Background(), "dig", append([]string{"+time=3", "+tries=1"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("dig %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func TestTCPDigBlockedLocalForwarded(t *testing.T) {
	l := startLab(t)
	for _, r := range []netip.AddrPort{demo.Resolver4, demo.Resolver6} {
		for _, tc := range []struct {
			name, qtype, status, answer string
		}{
			{"ads.doubleclick.net", "A", "NXDOMAIN", ""},
			{"printer.lan", "A", "NOERROR", "192.0.2.10"},
			{"printer.lan", "AAAA", "NOERROR", "2001:db8::10"},
			{"www.example.com", "A", "NOERROR", "192.0.2.80"},
			{"www.example.com", "AAAA", "NOERROR", "2001:db8::80"},
		} {
			out := digAnswer(t, l, "+tcp", "@"+r.Addr().String(), tc.name, tc.qtype)
			if !strings.Contains(out, "status: "+tc.status) || !strings.Contains(out, "(TCP)") {
				t.Errorf("dig +tcp @%v %s %s: want %s over TCP:\n%s", r.Addr(), tc.name, tc.qtype, tc.status, out)
			}
			if tc.answer != "" && !strings.Contains(out, "\t"+tc.answer+"\n") {
				t.Errorf("dig +tcp @%v %s %s: no %s in the answer:\n%s", r.Addr(), tc.name, tc.qtype, tc.answer, out)
			}
		}
	}
	// dig ANY: dig asks it over TCP, and gets the upstream's answer (the
	// lab's test servers answer ANY with no records).
	if out := digAnswer(t, l, "@"+demo.Resolver4.Addr().String(), "www.example.com", "ANY"); !strings.Contains(out, "status: NOERROR") || !strings.Contains(out, "(TCP)") {
		t.Errorf("dig ANY:\n%s", out)
	}
	// A truncated answer: dig without EDNS gets TC over UDP and retries
	// over TCP by itself, printing the whole answer.
	out := digAnswer(t, l, "+noedns", "@"+demo.Resolver4.Addr().String(), "big.example.com", "TXT")
	if !strings.Contains(out, "Truncated, retrying in TCP mode") || strings.Count(out, "\tTXT\t") != 20 {
		t.Errorf("dig +noedns big TXT: want the TC retry and 20 records:\n%s", out)
	}
	// Counters and query log say TCP happened, through the same path.
	st, err := client(t, l).Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Counters["tcp_queries"] < 11 || st.Counters["tcp_conns"] < 11 || st.Counters["truncated"] < 1 || st.Counters["blocked"] < 2 || st.Counters["local"] < 4 {
		t.Errorf("counters after the TCP queries: %v", st.Counters)
	}
	entries, err := client(t, l).QueryLog(context.Background(), 100)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range entries {
		found = found || e.Name == "ads.doubleclick.net" && e.Decision == "block" && e.Rcode == "NXDOMAIN"
	}
	if !found {
		t.Errorf("no query log entry for the blocked TCP query: %+v", entries)
	}
}

// TestTCPTruncatedThenWhole: a client without EDNS asks for a 4.6 KB
// answer: over UDP it gets the question with TC, over TCP the whole
// answer, forwarded over TCP to the upstream.
func TestTCPTruncatedThenWhole(t *testing.T) {
	l := startLab(t)
	m, _, err := l.QueryNet("udp", demo.Resolver4, "big.example.com", dns.TypeTXT, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !m.Truncated || len(m.Answer) != 0 || m.Rcode != dns.RcodeSuccess || len(m.Question) != 1 {
		t.Fatalf("over UDP: want TC with the question only, got %v", m)
	}
	before := l.PrimaryTCP.QueriesFor("big.example.com")
	m, _, err = l.QueryNet("tcp", demo.Resolver4, "big.example.com", dns.TypeTXT, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if m.Truncated || len(m.Answer) != 20 || m.Len() < 4000 {
		t.Errorf("over TCP: %d records, %d bytes, TC %v", len(m.Answer), m.Len(), m.Truncated)
	}
	if n := l.PrimaryTCP.QueriesFor("big.example.com") - before; n != 1 {
		t.Errorf("the upstream saw %d queries over TCP, want 1 (forwarded over TCP)", n)
	}
	// With EDNS and a size that fits, UDP gets it whole.
	c := &dns.Client{Net: "udp", UDPSize: 8192, Timeout: 3 * time.Second}
	q := new(dns.Msg)
	q.SetQuestion("big.example.com.", dns.TypeTXT)
	q.SetEdns0(8192, false)
	conn, err := l.Host.Dial("udp", demo.Resolver4.String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	m, _, err = c.ExchangeWithConn(q, &dns.Conn{Conn: conn, UDPSize: 8192})
	if err != nil || m.Truncated || len(m.Answer) != 20 {
		t.Errorf("over UDP with EDNS 8192: %v %v", m, err)
	}
}

// TestTCPPipelined: 100 queries written back to back on one connection
// (blocked, local and forwarded mixed) are all answered, each correctly,
// matched by ID (answers may come in any order, RFC 7766 §6.2.1.1).
func TestTCPPipelined(t *testing.T) {
	l := startLab(t)
	c, err := l.Host.Dial("tcp", demo.Resolver4.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	names := []struct{ name, want string }{
		{"www.example.com", "192.0.2.80"}, {"ads.doubleclick.net", "NXDOMAIN"}, {"printer.lan", "192.0.2.10"}, {"mail.example.com", "192.0.2.25"},
	}
	want := map[uint16]string{}
	go func() {
		w := bufio.NewWriter(c)
		for i := range 100 {
			n := names[i%len(names)]
			m := new(dns.Msg)
			m.SetQuestion(n.name+".", dns.TypeA)
			m.Id = uint16(1000 + i)
			if err := pkttest.WriteFrame(w, m); err != nil {
				return
			}
		}
		w.Flush()
	}()
	for i := range 100 {
		n := names[i%len(names)]
		want[uint16(1000+i)] = n.name + " " + n.want
	}
	r := bufio.NewReader(c)
	for range 100 {
		m, err := pkttest.ReadFrame(r)
		if err != nil {
			t.Fatalf("after %d answers: %v", 100-len(want), err)
		}
		exp, ok := want[m.Id]
		if !ok {
			t.Fatalf("answer with unknown or repeated ID %d", m.Id)
		}
		delete(want, m.Id)
		if got := m.Question[0].Name[:len(m.Question[0].Name)-1] + " " + demo.AnswerText(m); got != exp {
			t.Errorf("ID %d: %q, want %q", m.Id, got, exp)
		}
	}
}

// TestTCPRefusedPortAndIdleClients: port 80 of the virtual resolver is
// reset at once; a client that sends a length prefix and stops, or nothing
// at all, is cut off after the idle timeout.
func TestTCPRefusedPortAndIdleClients(t *testing.T) {
	l := startLab(t, "--tcp-idle-timeout", "1s")
	start := time.Now()
	_, err := l.Host.Dial("tcp", netip.AddrPortFrom(demo.Resolver4.Addr(), 80).String())
	if err == nil || !errors.Is(err, syscall.ECONNREFUSED) || time.Since(start) > time.Second {
		t.Errorf("port 80: %v after %v, want connection refused within a second", err, time.Since(start))
	}
	for _, prefix := range [][]byte{{0x00, 0x20}, nil} {
		c, err := l.Host.Dial("tcp", demo.Resolver6.String())
		if err != nil {
			t.Fatal(err)
		}
		c.Write(prefix)
		start := time.Now()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = c.Read(make([]byte, 1))
		c.Close()
		if err == nil || time.Since(start) > 3*time.Second {
			t.Errorf("a client sending %x then nothing: read %v after %v, want the connection closed within about 1 s", prefix, err, time.Since(start))
		}
	}
}

// TestTCPSlowloris: 1,000 connections that only hold a length prefix,
// from 20 addresses, and 1,000 half-open ones (a SYN and nothing more)
// neither exhaust memory nor stop a new client from being served; 100
// more from one address are cut at the per-client bound.
func TestTCPSlowloris(t *testing.T) {
	l := startLab(t, "--tcp-idle-timeout", "30s")
	pid := l.Dnstun.Pid()
	rss0 := rssKiB(t, pid)
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range 20 {
		a := fmt.Sprintf("192.0.2.%d", 100+i)
		if err := l.Host.IP("addr", "add", a+"/32", "dev", lab.HostIf); err != nil {
			t.Fatal(err)
		}
		for range 50 {
			c, err := dialFrom(l, a, demo.Resolver4)
			if err != nil {
				t.Fatalf("connection %d: %v", len(conns), err)
			}
			c.Write([]byte{0x00, 0x40})
			conns = append(conns, c)
		}
	}
	// 1,000 half-open connections: SYNs from an address the host does not
	// have (the SYN-ACKs go nowhere), sent with a raw socket.
	err := l.Host.Do(func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_RAW)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		dst := &unix.SockaddrInet4{Addr: demo.Resolver4.Addr().As4()}
		for i := range 1000 {
			src := netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(200 + i%4)}), uint16(20000+i))
			if err := unix.Sendto(fd, pkttest.SYN4(src, demo.Resolver4, uint32(i)*7919), 0, dst); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("SYN flood: %v", err)
	}
	// A new client, from the host's own address, is served at once.
	m, rtt, err := l.QueryNet("tcp", demo.Resolver4, "www.example.com", dns.TypeA, 3*time.Second)
	if err != nil || demo.AnswerText(m) != "192.0.2.80" {
		t.Fatalf("a new client during the flood: %v %v", m, err)
	}
	rss1 := rssKiB(t, pid)
	t.Logf("1,000 held and 1,000 half-open connections: RSS %d -> %d KiB; a new client answered in %v", rss0, rss1, rtt)
	if bound := 64 << 10 * memoryScale; rss1-rss0 > bound {
		t.Errorf("1,000 idle connections cost %d KiB, want < %d KiB", rss1-rss0, bound)
	}
	// One address over the per-client bound: 192.0.2.100 holds 50, so 14
	// more are accepted and the other 86 reset.
	refused := 0
	for range 100 {
		c, err := dialFrom(l, "192.0.2.100", demo.Resolver4)
		if err != nil {
			refused++
			continue
		}
		conns = append(conns, c)
		c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); err != nil && !isTimeout(err) {
			refused++
		}
	}
	if refused != 100-(engine.MaxTCPConnsPerClient-50) {
		t.Errorf("%d of 100 connections from an address holding 50 were refused, want %d", refused, 100-(engine.MaxTCPConnsPerClient-50))
	}
	st, err := client(t, l).Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Counters["tcp_refused"] != uint64(refused) || st.Counters["tcp_conns"] < 1000+uint64(engine.MaxTCPConnsPerClient-50) {
		t.Errorf("tcp_refused %d (want %d), tcp_conns %d", st.Counters["tcp_refused"], refused, st.Counters["tcp_conns"])
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// dialFrom opens a TCP connection from the host namespace's address src.
func dialFrom(l *demo.Lab, src string, to netip.AddrPort) (net.Conn, error) {
	var c net.Conn
	err := l.Host.Do(func() (err error) {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 3 * time.Second}
		c, err = d.Dial("tcp", to.String())
		return err
	})
	return c, err
}

func rssKiB(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// TestBadVers: a query with EDNS version 1 that dnstun answers itself
// (blocked, local) gets BADVERS with an OPT of version 0, over UDP and
// TCP; a forwarded one gets its upstream's answer.
func TestBadVers(t *testing.T) {
	l := startLab(t)
	for _, network := range []string{"udp", "tcp"} {
		for _, name := range []string{"ads.doubleclick.net", "printer.lan"} {
			q := new(dns.Msg)
			q.SetQuestion(name+".", dns.TypeA)
			q.SetEdns0(1232, false)
			q.IsEdns0().SetVersion(1)
			c, err := l.Host.Dial(network, demo.Resolver4.String())
			if err != nil {
				t.Fatal(err)
			}
			m, _, err := (&dns.Client{Net: network, Timeout: 3 * time.Second}).ExchangeWithConn(q, &dns.Conn{Conn: c})
			c.Close()
			if err != nil {
				t.Fatalf("%s %s: %v", network, name, err)
			}
			opt := m.IsEdns0()
			if m.Rcode != dns.RcodeBadVers || opt == nil || opt.Version() != 0 || len(m.Answer) != 0 {
				t.Errorf("%s %s: rcode %s, OPT %v; want BADVERS with an OPT of version 0", network, name, dns.RcodeToString[m.Rcode], opt)
			}
		}
	}
	st, err := client(t, l).Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Counters["badvers"] != 4 {
		t.Errorf("badvers counter %d, want 4", st.Counters["badvers"])
	}
}

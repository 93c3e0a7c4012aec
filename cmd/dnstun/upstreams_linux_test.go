// SPDX-License-Identifier: MIT

package main

import (
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dnstun/dnstun/internal/demo"
	"github.com/dnstun/dnstun/internal/dnstest"
	"github.com/dnstun/dnstun/internal/lab"
	"github.com/dnstun/dnstun/internal/privtest"
	"github.com/dnstun/dnstun/internal/tlstest"
	"github.com/miekg/dns"
)

// encLab is the demo lab plus Debian's unbound in the upstream namespace,
// serving DoT on the primary's address, port 853, and DoH on port 443,
// with a certificate for dns.test from a CA made here, and a bootstrap
// server that resolves dns.test to the primary's address.
type encLab struct {
	*demo.Lab
	ca   *tlstest.CA
	boot netip.AddrPort
}

const encServerName = "dns.test"

// encZone is what unbound answers; every other name is refused, so it never
// tries to recurse.
var encZone = struct{ zones, data []string }{
	zones: []string{". refuse", "enc.test. static", "corp.example. static", "example.com. static"},
	data: []string{
		"www.enc.test. 300 IN A 192.0.2.201",
		"www.enc.test. 300 IN AAAA 2001:db8::201",
		`txt.enc.test. 300 IN TXT "through an encrypted upstream"`,
		"x.corp.example. 300 IN A 192.0.2.202",
		"ready.example.com. 300 IN A 192.0.2.203", // the lab's readiness probe
	},
}

func newEncLab(t *testing.T) *encLab {
	t.Helper()
	privtest.RequirePriv(t)
	unbound := privtest.RequireTool(t, "unbound", "unbound")
	l, err := demo.NewLab("dnstun-enc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	ca, err := tlstest.NewCA(l.Dir, "dnstun test CA")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue(l.Dir, "server", []string{encServerName}, []netip.Addr{demo.Primary.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	// A large TXT set (> 4 KB): it reaches a UDP client truncated, and a
	// TCP client whole.
	data := append([]string(nil), encZone.data...)
	for i := range 24 {
		data = append(data, `big.enc.test. 300 IN TXT "`+strings.Repeat(string(rune('a'+i)), 200)+`"`)
	}
	dir := filepath.Join(l.Dir, "unbound")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	plain := netip.AddrPortFrom(demo.Primary.Addr(), 5353)
	conf, err := tlstest.UnboundConfig{
		Dir:      dir,
		DNS:      []netip.AddrPort{plain},
		TLS:      []netip.AddrPort{netip.AddrPortFrom(demo.Primary.Addr(), 853)},
		HTTPS:    []netip.AddrPort{netip.AddrPortFrom(demo.Primary.Addr(), 443)},
		CertFile: leaf.CertFile, KeyFile: leaf.KeyFile,
		Zones: encZone.zones, Data: data,
	}.Write()
	if err != nil {
		t.Fatal(err)
	}
	p, err := l.Start(l.Up, lab.Cmd{Args: []string{unbound, "-d", "-c", conf}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dial := func(ctx context.Context, network, address string) (net.Conn, error) {
		return l.Up.Dial(network, address)
	}
	if err := tlstest.Ready(ctx, dial, plain); err != nil {
		t.Fatalf("unbound did not answer: %v\n%s", err, p.Log())
	}
	boot := netip.AddrPortFrom(demo.Primary.Addr(), 5300)
	z, err := dnstest.ParseZone(encServerName + ". 300 IN A " + demo.Primary.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Serve(l.Up, "udp", boot, z); err != nil {
		t.Fatal(err)
	}
	return &encLab{Lab: l, ca: ca, boot: boot}
}

// start runs dnstun with args, trusting the lab's CA when trust is set.
func (l *encLab) start(t *testing.T, trust bool, args ...string) {
	t.Helper()
	exe, _ := os.Executable()
	env := []string{"DNSTUN_TEST_MAIN=1"}
	if trust {
		env = append(env, "SSL_CERT_FILE="+l.ca.File)
	}
	args = append(args, "--bootstrap", l.boot.String(), "--log-level", "info")
	if err := l.StartDnstun(context.Background(), []string{exe}, env, nil, args...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.StopDnstun() })
}

// TestE2EEncryptedUpstreams: DoT and DoH to Debian's unbound in the
// upstream namespace, the server's name resolved through --bootstrap and
// its certificate verified against SSL_CERT_FILE: A, AAAA, TXT, and a
// large answer (TC over UDP, whole over TCP); status shows the upstream.
func TestE2EEncryptedUpstreams(t *testing.T) {
	l := newEncLab(t)
	for _, url := range []string{"tls://" + encServerName, "https://" + encServerName + "/dns-query"} {
		t.Run(strings.Split(url, ":")[0], func(t *testing.T) {
			l.start(t, true, "--upstream", url)
			if m := mustQuery(t, l.Lab, demo.Resolver4, "www.enc.test", dns.TypeA); demo.AnswerText(m) != "192.0.2.201" {
				t.Errorf("A: %v", m)
			}
			if m := mustQuery(t, l.Lab, demo.Resolver6, "www.enc.test", dns.TypeAAAA); demo.AnswerText(m) != "2001:db8::201" {
				t.Errorf("AAAA: %v", m)
			}
			if m := mustQuery(t, l.Lab, demo.Resolver4, "txt.enc.test", dns.TypeTXT); len(m.Answer) != 1 || m.Answer[0].(*dns.TXT).Txt[0] != "through an encrypted upstream" {
				t.Errorf("TXT: %v", m)
			}
			if m := mustQuery(t, l.Lab, demo.Resolver4, "big.enc.test", dns.TypeTXT); !m.Truncated {
				t.Errorf("large answer over UDP not truncated: %d records", len(m.Answer))
			}
			m, _, err := l.QueryNet("tcp", demo.Resolver4, "big.enc.test", dns.TypeTXT, 3*time.Second)
			if err != nil || len(m.Answer) != 24 {
				t.Errorf("large answer over TCP: %v %v", m, err)
			}
			st, err := client(t, l.Lab).Status(context.Background())
			if err != nil || len(st.Upstreams) != 1 || !st.Upstreams[0].Healthy || st.Upstreams[0].Answers < 5 || !strings.HasPrefix(st.Upstreams[0].Addr, url[:5]) {
				t.Errorf("status: %+v %v", st.Upstreams, err)
			}
			if err := l.StopDnstun(); err != nil {
				t.Fatalf("stop: %v\n%s", err, l.Log())
			}
		})
	}
}

// TestE2EWrongCertificateRefused: without the test CA the server's
// certificate does not verify: clients get SERVFAIL and the log says why.
func TestE2EWrongCertificateRefused(t *testing.T) {
	l := newEncLab(t)
	l.ReadyRcode = dns.RcodeServerFailure
	l.start(t, false, "--upstream", "tls://"+encServerName, "--timeout", "1s", "--upstream-timeout", "500ms")
	if m := mustQuery(t, l.Lab, demo.Resolver4, "www.enc.test", dns.TypeA); m.Rcode != dns.RcodeServerFailure {
		t.Errorf("answer through an unverified server: %v", m)
	}
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if log := l.Log(); strings.Contains(log, "certificate") && strings.Contains(log, encServerName) && strings.Contains(log, "SSL_CERT_FILE") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the log does not say the certificate was refused, for which name, and what to do:\n%s", l.Log())
		}
	}
}

// TestE2ESplitDNS: names under corp.example go to the DoT upstream and
// nowhere else; the rest to the plain default upstream.
func TestE2ESplitDNS(t *testing.T) {
	l := newEncLab(t)
	l.start(t, true, "--upstream", demo.Primary.String(), "--upstream", "[/corp.example/]tls://"+encServerName)
	if m := mustQuery(t, l.Lab, demo.Resolver4, "x.corp.example", dns.TypeA); demo.AnswerText(m) != "192.0.2.202" {
		t.Errorf("x.corp.example: %v", m)
	}
	if n := l.PrimaryServer.QueriesFor("x.corp.example"); n != 0 {
		t.Errorf("the default upstream saw %d queries for x.corp.example", n)
	}
	if m := mustQuery(t, l.Lab, demo.Resolver4, "www.example.com", dns.TypeA); demo.AnswerText(m) != "192.0.2.80" {
		t.Errorf("www.example.com: %v", m)
	}
	if n := l.PrimaryServer.QueriesFor("www.example.com"); n != 1 {
		t.Errorf("the default upstream saw %d queries for www.example.com, want 1", n)
	}
	st, err := client(t, l.Lab).Status(context.Background())
	if err != nil || len(st.Upstreams) != 2 || len(st.Upstreams[1].Domains) != 1 || st.Upstreams[1].Domains[0] != "corp.example" {
		t.Errorf("status: %+v %v", st.Upstreams, err)
	}
}

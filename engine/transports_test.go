// SPDX-License-Identifier: MIT

package engine

import (
	"net"
	"testing"
	"time"

	"github.com/dnstun/dnstun/internal/pkttest"
	"github.com/dnstun/dnstun/internal/quictest"
	"github.com/dnstun/dnstun/internal/tlstest"
	"github.com/dnstun/dnstun/upstream"
	"github.com/miekg/dns"
)

func mustSpec(t testing.TB, s string) upstream.Spec {
	t.Helper()
	spec, err := upstream.ParseSpec(s)
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

// TestEncryptedUpstreams forwards through the engine over every transport
// but plain UDP: TCP, DoT and DoH to Debian's unbound, DoQ and DoH3 to our
// quic-go server (no packaged server speaks them here). The client asks
// over UDP in each case.
func TestEncryptedUpstreams(t *testing.T) {
	ub := tlstest.StartLoopback(t, "dns.test", []string{"test. static"},
		[]string{"www.enc.test. 60 IN A 192.0.2.201", "www.enc.test. 60 IN AAAA 2001:db8::201", `txt.enc.test. 60 IN TXT "over an encrypted upstream"`})
	ca, err := quictest.NewCA("quic test CA")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.IssueDefault()
	if err != nil {
		t.Fatal(err)
	}
	doq, err := quictest.ServeDoQ(quictest.Config{Cert: cert})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { doq.Close() })
	doh3, err := quictest.ServeDoH3(quictest.Config{Cert: cert})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { doh3.Close() })
	ub.CA.Pool.AppendCertsFromPEM(ca.PEM) // one pool verifies both servers

	rows := []struct {
		url   string
		name  string
		qtype uint16
		want  string
	}{
		{"tcp://" + ub.DNS.String(), "www.enc.test", dns.TypeA, "192.0.2.201"},
		{"tls://" + ub.TLS.String(), "www.enc.test", dns.TypeAAAA, "2001:db8::201"},
		{"https://" + ub.HTTPS.String() + "/dns-query", "www.enc.test", dns.TypeA, "192.0.2.201"},
		{"quic://" + doq.Addr().String(), quictest.NameA, dns.TypeA, "192.0.2.1"},
		{"h3://" + doh3.Addr().String() + "/dns-query", quictest.NameA, dns.TypeAAAA, "2001:db8::1"},
	}
	for _, r := range rows {
		t.Run(r.url, func(t *testing.T) {
			h := startEngine(t, Config{Upstreams: []upstream.Spec{mustSpec(t, r.url)}, RootCAs: ub.CA.Pool}, testList)
			for i := range 3 { // the first dials, the others reuse
				m := h.ask(t, uint16(i+1), r.name, r.qtype)
				if answerText(m) != r.want {
					t.Fatalf("query %d: %v, want %s", i, m, r.want)
				}
			}
			st := h.e.UpstreamStates()
			if len(st) != 1 || st[0].Answers != 3 || !st[0].Healthy || st[0].RTT <= 0 {
				t.Errorf("states %+v", st)
			}
		})
	}
	t.Run("txt", func(t *testing.T) {
		h := startEngine(t, Config{Upstreams: []upstream.Spec{mustSpec(t, "tls://"+ub.TLS.String())}, RootCAs: ub.CA.Pool}, testList)
		m := h.ask(t, 9, "txt.enc.test", dns.TypeTXT)
		if len(m.Answer) != 1 || m.Answer[0].(*dns.TXT).Txt[0] != "over an encrypted upstream" {
			t.Fatalf("answer %v", m)
		}
	})
}

// TestStallingUpstreamFailsOver: a DoT upstream that accepts connections
// but never completes the handshake, first in the list; queries are
// answered by the next upstream within the upstream timeout.
func TestStallingUpstreamFailsOver(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c) // held open, never answered
		}
	}()
	good := startUpstream(t)
	const perTry = 300 * time.Millisecond
	h := startEngine(t, Config{
		Upstreams:       []upstream.Spec{mustSpec(t, "tls://"+ln.Addr().String()), udp(good)[0]},
		UpstreamTimeout: perTry,
		TotalTimeout:    2 * time.Second,
	}, testList)
	start := time.Now()
	m, _ := h.exchange(t, pkttest.Query(client4, resolver4, pkttest.Msg(1, "www.example.com", dns.TypeA)), 3*time.Second)
	if answerText(m) != "192.0.2.80" {
		t.Fatalf("answer %v", m)
	}
	if took := time.Since(start); took > perTry+400*time.Millisecond {
		t.Errorf("answered after %v: the stalled upstream held the query past its turn", took)
	}
	if good.Queries() != 1 {
		t.Errorf("good upstream saw %d queries", good.Queries())
	}
}

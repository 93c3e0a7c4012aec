// SPDX-License-Identifier: MIT

package engine

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/dnstun/dnstun/filter"
	"github.com/dnstun/dnstun/upstream"
	"github.com/miekg/dns"
)

// startFlow runs a flow-mode engine on a loopback socket.
func startFlow(t testing.TB, cfg Config) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	e, err := NewFlow(cfg, pc, filter.NewLive(buildSet(t, testList)))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- e.Run(context.Background()) }()
	t.Cleanup(func() {
		e.Close()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return pc.LocalAddr().(*net.UDPAddr).AddrPort()
}

func TestFlowMode(t *testing.T) {
	up := startUpstream(t)
	silent := startUpstream(t)
	silent.SetSilent(true)
	addr := startFlow(t, Config{Upstreams: upstream.UDPSpecs([]netip.AddrPort{up.Addr()})})
	c := &dns.Client{Timeout: 3 * time.Second}
	for _, tc := range []struct {
		name  string
		qtype uint16
		rcode int
		n     int
	}{
		{"www.example.com.", dns.TypeA, dns.RcodeSuccess, 1},
		{"ads.example.", dns.TypeA, dns.RcodeNameError, 0},
		{"printer.lan.", dns.TypeAAAA, dns.RcodeSuccess, 1},
		{"nope.example.com.", dns.TypeA, dns.RcodeNameError, 0},
	} {
		m := new(dns.Msg)
		m.SetQuestion(tc.name, tc.qtype)
		r, _, err := c.Exchange(m, addr.String())
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if r.Id != m.Id || r.Rcode != tc.rcode || len(r.Answer) != tc.n {
			t.Errorf("%s: %v", tc.name, r)
		}
	}
	// SERVFAIL through the flow socket when the upstream is silent.
	addr2 := startFlow(t, Config{Upstreams: upstream.UDPSpecs([]netip.AddrPort{silent.Addr()}), UpstreamTimeout: 50 * time.Millisecond, TotalTimeout: 150 * time.Millisecond})
	m := new(dns.Msg)
	m.SetQuestion("www.example.com.", dns.TypeA)
	r, _, err := c.Exchange(m, addr2.String())
	if err != nil || r.Rcode != dns.RcodeServerFailure {
		t.Fatalf("silent upstream: %v %v", r, err)
	}
}

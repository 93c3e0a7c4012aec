// SPDX-License-Identifier: MIT

package engine

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/dnstun/dnstun/filter"
	"github.com/dnstun/dnstun/internal/pkttest"
	"github.com/dnstun/dnstun/tun/tuntest"
	"github.com/dnstun/dnstun/upstream"
	"github.com/miekg/dns"
)

// countingFilter counts the decisions asked of it.
type countingFilter struct {
	filter.Filter
	decisions int
}

func (c *countingFilter) DecideQuery(q *filter.Query) filter.Decision {
	c.decisions++
	return c.Filter.DecideQuery(q)
}

// TestOrderOfProcessing holds worker.handle's order: IP/UDP decode, then
// the question, then the health name, then the filter, then the forward.
// Each row is a packet that a different order would treat differently.
func TestOrderOfProcessing(t *testing.T) {
	sink, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	f := &countingFilter{Filter: filter.NewLive(buildSet(t, testList))}
	e, err := New(Config{
		Upstreams: upstream.UDPSpecs([]netip.AddrPort{netip.MustParseAddrPort(sink.LocalAddr().String())}),
		// The health name is one the list blocks: it must still be
		// answered, before the filter is asked.
		HealthName: "ads.example",
	}, tuntest.NewPipe(1, 1), f)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	w := newWorker(e)

	badQuestion := pkttest.Pack(pkttest.Msg(9, "x.example", dns.TypeA))
	badQuestion = badQuestion[:len(badQuestion)-3] // the question cut short
	for _, tc := range []struct {
		name          string
		pkt           []byte
		wantRcode     int // -1: no answer now
		wantDecisions int
		wantUpstream  int
	}{
		{"not port 53: dropped before anything", pkttest.UDP4(client4, netip.AddrPortFrom(resolver4.Addr(), 54), pkttest.Pack(pkttest.Msg(1, "www.example.com", dns.TypeA)), nil), -1, 0, 0},
		{"bad question: FORMERR before the filter", pkttest.UDP4(client4, resolver4, badQuestion, nil), dns.RcodeFormatError, 0, 0},
		{"health name: answered before the filter", pkttest.Query(client4, resolver4, pkttest.Msg(2, "ads.example", dns.TypeA)), dns.RcodeSuccess, 0, 0},
		{"blocked: the filter, never the upstream", pkttest.Query(client4, resolver4, pkttest.Msg(3, "x.tracker.example", dns.TypeA)), dns.RcodeNameError, 1, 0},
		{"allowed: the filter, then the upstream", pkttest.Query(client4, resolver4, pkttest.Msg(4, "www.example.com", dns.TypeA)), -1, 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.decisions = 0
			buf := make([]byte, 2048)
			n := runStep(w, buf, tc.pkt)
			switch {
			case tc.wantRcode < 0 && n != 0:
				t.Errorf("answered (%d bytes), want no answer now", n)
			case tc.wantRcode >= 0 && n == 0:
				t.Errorf("no answer, want rcode %d", tc.wantRcode)
			case tc.wantRcode >= 0:
				if m := pkttest.Unpack(t, pkttest.VerifyUDP(t, buf[:n])); m.Rcode != tc.wantRcode {
					t.Errorf("rcode %d, want %d", m.Rcode, tc.wantRcode)
				}
			}
			if f.decisions != tc.wantDecisions {
				t.Errorf("filter asked %d times, want %d", f.decisions, tc.wantDecisions)
			}
			got := 0
			sink.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			for b := make([]byte, 512); ; got++ {
				if _, _, err := sink.ReadFrom(b); err != nil {
					break
				}
			}
			if got != tc.wantUpstream {
				t.Errorf("upstream received %d queries, want %d", got, tc.wantUpstream)
			}
		})
	}
}

// SPDX-License-Identifier: MIT

package upstream

import (
	"net"
	"sync"
	"testing"

	"github.com/dnstun/dnstun/internal/privtest"

	"github.com/miekg/dns"

	"github.com/dnstun/dnstun/internal/quictest"
)

// TestQUICMark: the UDP socket under a QUIC connection carries the mark
// that keeps it out of dnstun's steering.
func TestQUICMark(t *testing.T) {
	privtest.RequirePriv(t) // SO_MARK needs CAP_NET_ADMIN
	const mark = 0x4242
	forQUIC(t, func(t *testing.T, p Proto) {
		r := newQUICRig(t, p, quictest.Config{})
		opt := r.opt()
		opt.Mark = mark
		c := dialQUICTest(t, r.spec(p), opt)
		x := c.Exchanger.(*quicExchanger)
		var mu sync.Mutex
		var socks []*net.UDPConn
		x.listen = func(opt DialOptions, v6 bool) (*net.UDPConn, error) {
			u, err := listenUDP(opt, v6)
			mu.Lock()
			socks = append(socks, u)
			mu.Unlock()
			return u, err
		}
		c.exchange(t, 1, quictest.NameA, dns.TypeA)
		mu.Lock()
		defer mu.Unlock()
		if len(socks) != 1 {
			t.Fatalf("%d sockets opened, want 1", len(socks))
		}
		if got := markOf(t, socks[0]); got != mark {
			t.Errorf("SO_MARK %#x, want %#x", got, mark)
		}
	})
}

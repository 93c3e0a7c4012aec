// SPDX-License-Identifier: MIT

package engine

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/dnstun/dnstun/internal/pkttest"
	"github.com/dnstun/dnstun/upstream"
	"github.com/miekg/dns"
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
)

// clientStack is a second userspace TCP/IP stack playing the host's
// kernel: its packets go into the engine's in-memory TUN, and what the
// engine writes comes back into it. It lets DNS over TCP be tested
// without root.
func clientStack(t *testing.T, h *harness, addr netip.Addr) *stack.Stack {
	t.Helper()
	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol},
	})
	ep := channel.New(256, 1500, "")
	if err := s.CreateNIC(1, ep); err != nil {
		t.Fatal(err)
	}
	pa := tcpip.ProtocolAddress{Protocol: ipv4.ProtocolNumber, AddressWithPrefix: tcpip.AddrFromSlice(addr.AsSlice()).WithPrefix()}
	if err := s.AddProtocolAddress(1, pa, stack.AddressProperties{}); err != nil {
		t.Fatal(err)
	}
	s.SetRouteTable([]tcpip.Route{{Destination: header.IPv4EmptySubnet, NIC: 1}})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); ep.Close(); s.Close() })
	go func() { // client -> engine
		for {
			pkb := ep.ReadContext(ctx)
			if pkb == nil {
				return
			}
			v := pkb.ToView()
			h.pipe.Inject(v.AsSlice())
			v.Release()
			pkb.DecRef()
		}
	}()
	go func() { // engine -> client
		for {
			select {
			case pkt := <-h.pipe.Written():
				pkb := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(pkt)})
				ep.InjectInbound(header.IPv4ProtocolNumber, pkb)
				pkb.DecRef()
			case <-ctx.Done():
				return
			}
		}
	}()
	return s
}

func dialTCP(s *stack.Stack, to netip.AddrPort) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return gonet.DialContextTCP(ctx, s, tcpip.FullAddress{NIC: 1, Addr: tcpip.AddrFromSlice(to.Addr().AsSlice()), Port: to.Port()}, ipv4.ProtocolNumber)
}

// TestTCPFrontEnd: over one connection, pipelined, a blocked, a local
// and a forwarded query (forwarded over TCP to the upstream) are answered
// as a UDP query would be, with the counters a UDP query moves; another
// port is refused.
func TestTCPFrontEnd(t *testing.T) {
	up := startUpstream(t)
	upTCP := startUpstreamTCP(t, up.Addr())
	h := startEngine(t, Config{Upstreams: upstream.UDPSpecs([]netip.AddrPort{up.Addr()}), TCP: true}, testList)
	s := clientStack(t, h, client4.Addr())

	c, err := dialTCP(s, resolver4)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	var q bytes.Buffer
	for i, name := range []string{"x.tracker.example", "printer.lan", "www.example.com"} {
		pkttest.WriteFrame(&q, pkttest.Msg(uint16(i+1), name, dns.TypeA))
	}
	if _, err := c.Write(q.Bytes()); err != nil {
		t.Fatal(err)
	}
	want := map[uint16]string{1: "NXDOMAIN", 2: "NOERROR 192.0.2.7", 3: "NOERROR 192.0.2.80"}
	for range 3 {
		m, err := pkttest.ReadFrame(c)
		if err != nil {
			t.Fatal(err)
		}
		got := dns.RcodeToString[m.Rcode]
		for _, rr := range m.Answer {
			if a, ok := rr.(*dns.A); ok {
				got += " " + a.A.String()
			}
		}
		if got != want[m.Id] {
			t.Errorf("ID %d: %s, want %s", m.Id, got, want[m.Id])
		}
		delete(want, m.Id)
	}
	if n := upTCP.QueriesFor("www.example.com"); n != 1 {
		t.Errorf("the upstream saw %d queries over TCP, want 1", n)
	}
	if n := up.QueriesFor("www.example.com"); n != 0 {
		t.Errorf("the upstream saw %d queries over UDP, want 0", n)
	}
	st := h.e.Stats()
	for c, want := range map[Counter]uint64{Blocked: 1, Local: 1, Forwarded: 1, Replied: 1, TCPConns: 1, TCPQueries: 3} {
		if st.Counters[c] != want {
			t.Errorf("%s = %d, want %d", c, st.Counters[c], want)
		}
	}
	if _, err := dialTCP(s, netip.AddrPortFrom(resolver4.Addr(), 80)); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("port 80: %v, want connection refused", err)
	}
}

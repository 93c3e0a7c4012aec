// SPDX-License-Identifier: MIT

package engine

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/dnstun/dnstun/attrib"
	"github.com/dnstun/dnstun/packet"
	"github.com/dnstun/dnstun/tap"
	"github.com/dnstun/dnstun/tun"
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// Bounds of DNS over TCP (RFC 7766 §6.2: servers must bound what clients
// can hold).
const (
	// DefaultTCPIdleTimeout closes a client connection with no query for
	// this long (RFC 7766 §6.2.3 suggests seconds, not minutes).
	DefaultTCPIdleTimeout = 10 * time.Second
	// MaxTCPConns bounds the client connections open at once, and
	// MaxTCPConnsPerClient those of one client address; a connection over
	// either bound is reset at once.
	MaxTCPConns          = 1024
	MaxTCPConnsPerClient = 64
	// MaxTCPInFlight bounds the queries of one connection being answered
	// at once; the connection is not read further until one completes.
	MaxTCPInFlight = 64
	// tcpBufSize is a connection's read buffer: queries are far smaller
	// (and larger than MaxQuery are refused), local answers too.
	tcpBufSize = 4096
	// tcpBacklog bounds the connections being set up (SYN received,
	// handshake not done) and not yet accepted; beyond it the stack
	// answers with SYN cookies, keeping no state.
	tcpBacklog = 256
	// upstreamStreamIdle closes an upstream TCP connection after this long
	// without a query.
	upstreamStreamIdle = 30 * time.Second
)

// tcpFront is DNS over TCP on the TUN: TCP segments the reader hands over
// go into gVisor's userspace TCP stack (netstack), which listens on port 53
// of any address; each connection is served by its own goroutine, which
// reads length-framed queries and passes each to the engine's one decision
// path (worker.handle), like a UDP packet; other ports are reset at once.
// Segments the stack sends are written back into the TUN.
type tcpFront struct {
	e      *Engine
	s      *stack.Stack
	ep     *channel.Endpoint
	idle   time.Duration
	ctx    context.Context // ends with close
	cancel context.CancelFunc

	mu       sync.Mutex
	lns      []*gonet.TCPListener
	conns    map[connKey]*tcpConn
	byClient map[netip.Addr]int
}

// connKey identifies a client connection: the client and the resolver
// address it connected to.
type connKey struct{ client, resolver netip.AddrPort }

const tcpNIC tcpip.NICID = 1

func newTCPFront(e *Engine, mtu int) (_ *tcpFront, err error) {
	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, ipv6.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol},
	})
	t := &tcpFront{e: e, s: s, ep: channel.New(512, uint32(mtu), ""), idle: e.cfg.TCPIdleTimeout,
		conns: map[connKey]*tcpConn{}, byClient: map[netip.Addr]int{}}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			t.cancel()
			s.Close()
		}
	}()
	// Small buffers: a DNS connection carries a few kilobytes, and a
	// thousand idle ones must not cost megabytes each.
	rcv := tcpip.TCPReceiveBufferSizeRangeOption{Min: 4 << 10, Default: 16 << 10, Max: 128 << 10}
	snd := tcpip.TCPSendBufferSizeRangeOption{Min: 4 << 10, Default: 16 << 10, Max: 256 << 10}
	sack := tcpip.TCPSACKEnabled(true)
	for _, opt := range []tcpip.SettableTransportProtocolOption{&rcv, &snd, &sack} {
		if terr := s.SetTransportProtocolOption(tcp.ProtocolNumber, opt); terr != nil {
			return nil, tcpErr("set TCP option", terr)
		}
	}
	if terr := s.CreateNIC(tcpNIC, t.ep); terr != nil {
		return nil, tcpErr("create NIC", terr)
	}
	// Accept connections to any address: the virtual resolvers, and with
	// capture whatever resolver the client chose.
	if terr := s.SetPromiscuousMode(tcpNIC, true); terr != nil {
		return nil, tcpErr("promiscuous mode", terr)
	}
	if terr := s.SetSpoofing(tcpNIC, true); terr != nil {
		return nil, tcpErr("spoofing", terr)
	}
	s.SetRouteTable([]tcpip.Route{{Destination: header.IPv4EmptySubnet, NIC: tcpNIC}, {Destination: header.IPv6EmptySubnet, NIC: tcpNIC}})
	// One listener per family on port 53 of any address. A listener, not
	// a forwarder of each SYN: beyond its backlog the stack answers SYNs
	// with SYN cookies and keeps no state, so a flood of half-open
	// connections costs nothing and blocks no one. Any other port has no
	// listener: the stack resets it.
	for _, proto := range []tcpip.NetworkProtocolNumber{ipv4.ProtocolNumber, ipv6.ProtocolNumber} {
		ln, err := listen53(s, proto)
		if err != nil {
			return nil, err
		}
		t.lns = append(t.lns, ln)
	}
	return t, nil
}

func listen53(s *stack.Stack, proto tcpip.NetworkProtocolNumber) (*gonet.TCPListener, error) {
	var wq waiter.Queue
	ep, err := s.NewEndpoint(tcp.ProtocolNumber, proto, &wq)
	if err != nil {
		return nil, tcpErr("TCP endpoint", err)
	}
	if proto == ipv6.ProtocolNumber {
		ep.SocketOptions().SetV6Only(true)
	}
	if err := ep.Bind(tcpip.FullAddress{NIC: tcpNIC, Port: 53}); err != nil {
		ep.Close()
		return nil, tcpErr("bind port 53", err)
	}
	if err := ep.Listen(tcpBacklog); err != nil {
		ep.Close()
		return nil, tcpErr("listen on port 53", err)
	}
	return gonet.NewTCPListener(s, &wq, ep), nil
}

// routineAccept serves the connections of one listener until it closes.
func (t *tcpFront) routineAccept(ln *gonet.TCPListener) {
	defer t.e.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		t.accept(c.(*gonet.TCPConn))
	}
}

func tcpErr(what string, err tcpip.Error) error {
	return fmt.Errorf("netstack: %s: %s", what, err)
}

// inject hands one IP packet carrying TCP to the stack. It copies pkt.
func (t *tcpFront) inject(pkt []byte) {
	proto := header.IPv4ProtocolNumber
	if pkt[0]>>4 == 6 {
		proto = header.IPv6ProtocolNumber
	}
	pkb := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(pkt)})
	t.ep.InjectInbound(proto, pkb)
	pkb.DecRef()
}

// routineOut writes the segments the stack sends into the TUN until the
// front-end closes.
func (t *tcpFront) routineOut() {
	defer t.e.wg.Done()
	buf := make([]byte, tun.BufSize)
	bufs := [1][]byte{}
	for {
		pkb := t.ep.ReadContext(t.ctx)
		if pkb == nil {
			return
		}
		v := pkb.ToView()
		n, _ := v.Read(buf[tun.Headroom:])
		v.Release()
		pkb.DecRef()
		bufs[0] = buf[:tun.Headroom+n]
		if _, err := t.e.dev.Write(bufs[:], tun.Headroom); err != nil {
			t.e.count(WriteErrors)
		}
	}
}

// accept serves a new connection, or closes it at once when it is over
// the bounds.
func (t *tcpFront) accept(nc *gonet.TCPConn) {
	client := addrPortOf(nc.RemoteAddr())
	resolver := addrPortOf(nc.LocalAddr())
	key := connKey{client, resolver}
	t.mu.Lock()
	_, dup := t.conns[key]
	full := dup || len(t.conns) >= MaxTCPConns || t.byClient[client.Addr()] >= MaxTCPConnsPerClient
	c := &tcpConn{t: t, key: key, c: nc, slots: make(chan struct{}, MaxTCPInFlight), out: make(chan []byte, MaxTCPInFlight)}
	if !full {
		t.conns[key] = c
		t.byClient[client.Addr()]++
	}
	t.mu.Unlock()
	if full {
		t.e.count(TCPRefused)
		nc.Close()
		return
	}
	t.e.count(TCPConns)
	go c.serve()
}

func addrPortOf(a net.Addr) netip.AddrPort {
	ta, _ := a.(*net.TCPAddr)
	if ta == nil {
		return netip.AddrPort{}
	}
	ap := ta.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

func (t *tcpFront) forget(k connKey) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.conns[k]; !ok {
		return
	}
	delete(t.conns, k)
	if t.byClient[k.client.Addr()]--; t.byClient[k.client.Addr()] <= 0 {
		delete(t.byClient, k.client.Addr())
	}
}

// deliver queues the answer msg for the client connection it belongs to;
// it is dropped when that connection has gone. It never blocks: a query
// holds a slot from when it is read until its answer is written, and the
// queue has room for every slot.
func (t *tcpFront) deliver(client, resolver netip.AddrPort, msg []byte) {
	t.mu.Lock()
	c := t.conns[connKey{client, resolver}]
	t.mu.Unlock()
	if c == nil {
		t.e.count(TCPOrphans)
		return
	}
	c.enqueue(msg)
}

// close resets every connection and stops the stack.
func (t *tcpFront) close() {
	for _, ln := range t.lns {
		ln.Close()
	}
	t.mu.Lock()
	conns := make([]*tcpConn, 0, len(t.conns))
	for _, c := range t.conns {
		conns = append(conns, c)
	}
	t.mu.Unlock()
	// The SERVFAILs Close just delivered get a moment to be written.
	for deadline := time.Now().Add(200 * time.Millisecond); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		queued := 0
		for _, c := range conns {
			queued += len(c.out)
		}
		if queued == 0 {
			break
		}
	}
	for _, c := range conns {
		c.close()
	}
	t.cancel()
	t.ep.Close()
	t.s.Close()
}

// tcpConn is one client connection.
type tcpConn struct {
	t     *tcpFront
	key   connKey
	c     *gonet.TCPConn
	slots chan struct{} // one per query being answered
	out   chan []byte   // framed answers for the writer
}

// serve reads queries until the client closes, idles out or breaks the
// framing, answering local decisions at once and forwarding the rest; a
// writer goroutine sends the answers in the order they complete.
func (c *tcpConn) serve() {
	e := c.t.e
	defer c.t.forget(c.key)
	done := make(chan struct{})
	defer close(done)
	go c.write(done)
	w := newWorker(e)
	var owner *attrib.Owner
	ownerKnown := false
	small := make([]byte, 2+tcpBufSize)
	for {
		buf := small
		c.c.SetReadDeadline(time.Now().Add(c.t.idle))
		if _, err := io.ReadFull(c.c, buf[:2]); err != nil {
			break // closed, idle, or a length prefix and nothing more
		}
		n := int(binary.BigEndian.Uint16(buf))
		if n > tcpBufSize {
			buf = make([]byte, 2+n) // a query this large is refused, but read whole
		}
		if _, err := io.ReadFull(c.c, buf[2:2+n]); err != nil {
			break
		}
		select {
		case c.slots <- struct{}{}:
		case <-e.closed:
			return
		}
		e.count(TCPQueries)
		msg := buf[2 : 2+n]
		if e.cfg.Attrib != nil && e.usesProcess() {
			// The connection's own goroutine may wait for its owner
			// (once per connection: the socket does not change hands).
			if !ownerKnown {
				owner, ownerKnown = c.t.owner(c.key), true
			}
			w.preset, w.presetOwner = true, owner
		}
		switch w.handle(msg, c.key.client, c.key.resolver, viaTCP) {
		case outAnswer:
			// The answer grows in place past the query, within the
			// buffer: local answers are small (a block, a few records).
			if m := packet.AnswerDNSTo(buf[2:], &w.q, &w.r, packet.StreamLimit); m > 0 {
				e.tapClient(tap.ClientResponse, viaTCP, c.key.client, c.key.resolver, buf[2:2+m])
				c.enqueue(buf[2 : 2+m])
			} else {
				<-c.slots
			}
		case outCached:
			e.tapClient(tap.ClientResponse, viaTCP, c.key.client, c.key.resolver, buf[2:2+w.cn])
			c.enqueue(buf[2 : 2+w.cn])
		case outForward:
			// The answer comes back through deliver.
		default:
			// Not a query we can answer (a response, garbage): over a
			// stream there is no resynchronising, so the connection ends
			// (RFC 7766 §8 leaves it to the server).
			<-c.slots
			c.close()
			return
		}
	}
	// Let the answers still due be written before closing: every slot
	// comes back once its answer (or SERVFAIL, at the latest after the
	// total timeout) is written.
	deadline := time.After(e.cfg.TotalTimeout + time.Second)
	for range MaxTCPInFlight {
		select {
		case c.slots <- struct{}{}:
		case <-deadline:
			c.close()
			return
		}
	}
	c.close()
}

// owner looks up the process behind a connection, waiting at most
// holdFor.
func (t *tcpFront) owner(k connKey) *attrib.Owner {
	ctx, cancel := context.WithTimeout(context.Background(), holdFor)
	defer cancel()
	o, _ := t.e.cfg.Attrib.Resolve(ctx, keyOf(viaTCP, k.client, k.resolver))
	return o
}

// close closes the connection after stopping its deadline timers: each
// SetReadDeadline of the netstack adapter arms a timer that would keep
// the connection's memory alive until it fires (up to the idle timeout
// after the close), which under connection churn adds up.
func (c *tcpConn) close() {
	c.c.SetDeadline(time.Time{})
	c.c.Close()
}

// enqueue frames msg (copied) for the writer.
func (c *tcpConn) enqueue(msg []byte) {
	f := make([]byte, 2+len(msg))
	binary.BigEndian.PutUint16(f, uint16(len(msg)))
	copy(f[2:], msg)
	c.out <- f
}

// write sends queued answers until done; a client that does not read
// within the idle timeout is cut off.
func (c *tcpConn) write(done <-chan struct{}) {
	for {
		select {
		case f := <-c.out:
			c.c.SetWriteDeadline(time.Now().Add(c.t.idle))
			_, err := c.c.Write(f)
			<-c.slots
			if err != nil {
				c.close()
			}
		case <-done:
			return
		}
	}
}

// SPDX-License-Identifier: MIT

package engine

import (
	"net/netip"

	"github.com/dnstun/dnstun/packet"
	"github.com/dnstun/dnstun/tap"
	"github.com/dnstun/dnstun/upstream"
)

// dnstap: the engine hands each message to Config.Tap, which copies it into
// a bounded queue and returns; with no Tap nothing is read or copied.

// wall is the wall clock in Unix nanoseconds, from one monotonic read.
func (e *Engine) wall() int64 { return e.epochUnix + e.now() }

// tapProto is the dnstap transport of a client's message.
func tapProto(from via) tap.Proto {
	if from == viaTCP {
		return tap.TCP
	}
	return tap.UDP
}

// tapClient logs a message between a client and dnstun (a query read, or
// the answer written).
func (e *Engine) tapClient(kind tap.Kind, from via, client, resolver netip.AddrPort, msg []byte) {
	if t := e.cfg.Tap; t != nil && from != viaNone {
		now := e.wall()
		if kind == tap.ClientQuery {
			t.Log(kind, tapProto(from), client, resolver, msg, now, 0)
		} else {
			t.Log(kind, tapProto(from), client, resolver, msg, 0, now)
		}
	}
}

// tapUpstream logs a message between dnstun and upstream s.
func (e *Engine) tapUpstream(kind tap.Kind, s *slot, from via, msg []byte) {
	t := e.cfg.Tap
	if t == nil || s == nil {
		return
	}
	proto := tap.UDP
	switch s.spec.Proto {
	case upstream.ProtoTCP:
		proto = tap.TCP
	case upstream.ProtoTLS:
		proto = tap.DoT
	case upstream.ProtoHTTPS:
		proto = tap.DoH
	case upstream.ProtoH3:
		proto = tap.DoH3
	case upstream.ProtoQUIC:
		proto = tap.DoQ
	default:
		if from == viaTCP {
			proto = tap.TCP // a TCP client's query goes over TCP
		}
	}
	server, _ := s.spec.AddrPort()
	now := e.wall()
	if kind == tap.ForwarderQuery {
		t.Log(kind, proto, netip.AddrPort{}, server, msg, now, 0)
	} else {
		t.Log(kind, proto, netip.AddrPort{}, server, msg, 0, now)
	}
}

// udpHeaderLen is the IP and UDP header length of an answer written in
// place for a packet of family (4 or 6).
func udpHeaderLen(family uint8) int {
	if family == 4 {
		return packet.IPv4HeaderLen + packet.UDPHeaderLen
	}
	return packet.IPv6HeaderLen + packet.UDPHeaderLen
}

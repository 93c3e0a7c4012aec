// SPDX-License-Identifier: MIT

package engine

import (
	"errors"
	"net"
	"net/netip"

	"github.com/dnstun/dnstun/filter"
	"github.com/dnstun/dnstun/packet"
	"github.com/dnstun/dnstun/tap"
)

// NewFlow makes an engine whose front-end is a plain UDP socket instead of
// a TUN: the model Apple's NEDNSProxyProvider gives a DNS proxy (the system
// hands it the datagrams of a flow, not packets). The filter, the pending
// table, the upstreams and the answers are the same; only the reads and
// writes differ. It exists so that the packet path can be measured against
// the flow model on the same machine. The engine owns pc.
func NewFlow(cfg Config, pc *net.UDPConn, f filter.Filter) (*Engine, error) {
	e, err := newEngine(cfg, f, 1) // one reader: the flow socket's
	if err != nil {
		return nil, err
	}
	e.flow = pc
	return e, nil
}

// routineFlowRead reads datagrams from the flow socket and answers them
// (or forwards them) through the same handle as the TUN path.
func (e *Engine) routineFlowRead() error {
	w := newWorker(e)
	buf := make([]byte, replyOff+packet.MaxHeaderLen+65535)
	msg := buf[replyOff:]
	local, _ := netip.ParseAddrPort(e.flow.LocalAddr().String())
	for {
		n, from, err := e.flow.ReadFromUDPAddrPort(msg)
		if err != nil {
			if e.closing.Load() || errors.Is(err, net.ErrClosed) {
				return err
			}
			e.count(ReadErrors)
			continue
		}
		e.count(Packets)
		var start int64
		if e.cfg.Metrics {
			start = e.now()
		}
		m := 0
		out := w.handle(msg[:n], from, local, viaFlow)
		switch out {
		case outAnswer:
			m = packet.AnswerDNS(msg, &w.q, &w.r)
		case outCached:
			m = w.cn
		}
		if m > 0 {
			if _, err := e.flow.WriteToUDPAddrPort(msg[:m], from); err != nil {
				e.count(WriteErrors)
			}
			if e.cfg.Tap != nil {
				e.tapClient(tap.ClientResponse, viaFlow, from, local, msg[:m])
			}
			if e.cfg.Metrics {
				if out == outCached {
					e.observeBatch(e.now()-start, 0, 1)
				} else {
					e.observeBatch(e.now()-start, 1, 0)
				}
			}
		}
	}
}

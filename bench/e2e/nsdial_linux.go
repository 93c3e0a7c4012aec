// SPDX-License-Identifier: MIT

package e2e

import (
	"context"
	"errors"
	"net"
	"sync"

	"github.com/dnstun/dnstun/internal/lab"
)

// nsDialer opens TCP connections from inside a namespace for loadgen's
// Config.DialContext. A socket belongs to the namespace of the thread that
// creates it, so a fixed pool of goroutines, each on an OS thread switched
// into the namespace once (lab.NS.Do), takes dial requests from a channel:
// a dial costs a channel round trip instead of two setns(2) calls and a
// fresh locked thread. A connection, once open, is used from any
// goroutine.
type nsDialer struct {
	reqs chan dialReq
	wg   sync.WaitGroup
	once sync.Once
}

type dialReq struct {
	ctx              context.Context
	network, address string
	reply            chan dialRes
}

type dialRes struct {
	c   net.Conn
	err error
}

// newNSDialer starts workers dialers in ns; each serves one dial at a
// time (a connect that hangs occupies it until the request's context
// ends).
func newNSDialer(ns *lab.NS, workers int) *nsDialer {
	d := &nsDialer{reqs: make(chan dialReq)}
	for range workers {
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			ns.Do(func() error {
				var nd net.Dialer
				for r := range d.reqs {
					c, err := nd.DialContext(r.ctx, r.network, r.address)
					r.reply <- dialRes{c, err}
				}
				return nil
			})
		}()
	}
	return d
}

var errDialerClosed = errors.New("e2e: namespace dialer closed")

// DialContext dials address from inside the namespace; ctx bounds the
// wait for a free worker and the connect.
func (d *nsDialer) DialContext(ctx context.Context, network, address string) (c net.Conn, err error) {
	reply := make(chan dialRes, 1)
	defer func() {
		if recover() != nil { // d.reqs closed
			c, err = nil, errDialerClosed
		}
	}()
	select {
	case d.reqs <- dialReq{ctx, network, address, reply}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	r := <-reply // the worker's dial honours ctx
	return r.c, r.err
}

// Close stops the workers once their dials are done.
func (d *nsDialer) Close() {
	d.once.Do(func() { close(d.reqs) })
	d.wg.Wait()
}

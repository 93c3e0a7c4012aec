// SPDX-License-Identifier: MIT

// Package tuntest provides an in-memory tun.Device for tests.
//
// Pipe behaves like dnstun's real devices where it matters to callers: it
// rejects any offset other than tun.Headroom (catching darwin's 4-byte AF
// header and Linux's virtio header bugs on any OS), and it scribbles over the
// headroom of every buffer handed to Write, as Linux GRO does, so code that
// keeps using a written buffer is caught.
package tuntest

import (
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/dnstun/dnstun/tun"
	wgtun "golang.zx2c4.com/wireguard/tun"
)

// Pipe is an in-memory TUN: Inject feeds packets to Read, and packets the
// code under test writes come out of Written.
type Pipe struct {
	in      chan []byte
	out     chan []byte
	events  chan wgtun.Event
	closed  chan struct{}
	once    sync.Once
	batch   int
	mu      sync.Mutex
	errs    []error
	written int
	dropped int
	most    int // the most packets one Write call carried
}

// NewPipe returns a Pipe reporting BatchSize batch, buffering up to queue
// packets in each direction.
func NewPipe(batch, queue int) *Pipe {
	p := &Pipe{
		in:     make(chan []byte, queue),
		out:    make(chan []byte, queue),
		events: make(chan wgtun.Event, 1),
		closed: make(chan struct{}),
		batch:  batch,
	}
	p.events <- wgtun.EventUp
	return p
}

// Inject queues a copy of pkt (an IP packet) for Read. It reports false if
// the pipe is closed or its inbound queue is full.
func (p *Pipe) Inject(pkt []byte) bool {
	select {
	case <-p.closed:
		return false
	default:
	}
	select {
	case p.in <- append([]byte(nil), pkt...):
		return true
	default:
		return false
	}
}

// MostPerWrite returns the most packets one Write call carried.
func (p *Pipe) MostPerWrite() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.most
}

// Counts returns how many packets were written and how many were dropped
// because the outbound queue was full.
func (p *Pipe) Counts() (written, dropped int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.written, p.dropped
}

// Written delivers copies of the packets written to the pipe.
func (p *Pipe) Written() <-chan []byte { return p.out }

// Err returns the contract violations seen so far (wrong offsets, short
// buffers), joined.
func (p *Pipe) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return errors.Join(p.errs...)
}

func (p *Pipe) fail(err error) error {
	p.mu.Lock()
	p.errs = append(p.errs, err)
	p.mu.Unlock()
	return err
}

// Read implements tun.Device. It blocks until a packet is injected or the
// pipe is closed, then fills as many bufs as packets are queued.
func (p *Pipe) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	if offset != tun.Headroom {
		return 0, p.fail(fmt.Errorf("tuntest: Read with offset %d, want tun.Headroom (%d)", offset, tun.Headroom))
	}
	var pkt []byte
	select {
	case pkt = <-p.in:
	case <-p.closed:
		return 0, os.ErrClosed
	}
	n := 0
	for {
		if len(bufs[n]) < offset+len(pkt) {
			return n, p.fail(fmt.Errorf("tuntest: Read buffer %d holds %d bytes, packet needs %d", n, len(bufs[n]), offset+len(pkt)))
		}
		sizes[n] = copy(bufs[n][offset:], pkt)
		n++
		if n == len(bufs) || n == p.batch {
			return n, nil
		}
		select {
		case pkt = <-p.in:
		default:
			return n, nil
		}
	}
}

// Write implements tun.Device: it copies each packet out, then overwrites
// the headroom of the caller's buffer.
func (p *Pipe) Write(bufs [][]byte, offset int) (int, error) {
	if offset != tun.Headroom {
		return 0, p.fail(fmt.Errorf("tuntest: Write with offset %d, want tun.Headroom (%d)", offset, tun.Headroom))
	}
	p.mu.Lock()
	p.most = max(p.most, len(bufs))
	p.mu.Unlock()
	for i, b := range bufs {
		if len(b) < offset {
			return i, p.fail(fmt.Errorf("tuntest: Write buffer %d shorter (%d) than the headroom", i, len(b)))
		}
		pkt := append([]byte(nil), b[offset:]...)
		for j := range offset {
			b[j] = 0xA5
		}
		p.mu.Lock()
		select {
		case p.out <- pkt:
			p.written++
		default:
			// A full queue drops, as the kernel does when the
			// TUN's backlog is full; Write never blocks.
			p.dropped++
		}
		p.mu.Unlock()
	}
	return len(bufs), nil
}

// File implements tun.Device; a Pipe has no file.
func (p *Pipe) File() *os.File { return nil }

// MTU implements tun.Device.
func (p *Pipe) MTU() (int, error) { return tun.DefaultMTU, nil }

// Name implements tun.Device.
func (p *Pipe) Name() (string, error) { return "tuntest0", nil }

// Events implements tun.Device.
func (p *Pipe) Events() <-chan wgtun.Event { return p.events }

// BatchSize implements tun.Device.
func (p *Pipe) BatchSize() int { return p.batch }

// Close implements tun.Device; it is idempotent.
func (p *Pipe) Close() error {
	p.once.Do(func() {
		close(p.closed)
		close(p.events)
	})
	return nil
}

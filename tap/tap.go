// SPDX-License-Identifier: MIT

// Package tap emits dnstap (https://dnstap.info) messages off the hot
// path: a DNS message seen by the data path is copied into a preallocated
// slot and handed to one writer goroutine, which encodes it as a dnstap
// protobuf and writes it as a Frame Streams data frame to a file or to a
// collector listening on a unix socket.
//
// The data path calls Log, which never blocks and does not allocate: when
// every slot is in use (the writer is behind, or blocked on a collector
// that does not read) the message is dropped and counted. A collector that
// is absent or goes away never stops dnstun: the writer reconnects with
// backoff and discards (and counts) the messages that arrive meanwhile.
//
//	t, err := tap.Open("unix:/run/dnstap.sock", tap.Config{Version: "1.2.3"})
//	...
//	if t != nil {
//		t.Log(tap.ClientQuery, tap.UDP, client, resolver, msg, now, 0)
//	}
//	...
//	t.Close()
package tap

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Kind is what a logged message is, from dnstun's point of view. dnstun is
// a forwarder: it answers clients (Client*) and asks upstream resolvers
// (Forwarder*).
type Kind uint8

// The kinds of message Log accepts; they are dnstap's message types of
// the same names.
const (
	// ClientQuery is a query dnstun received from a client.
	ClientQuery Kind = iota + 1
	// ClientResponse is a response dnstun sent to a client.
	ClientResponse
	// ForwarderQuery is a query dnstun sent to an upstream resolver.
	ForwarderQuery
	// ForwarderResponse is a response dnstun received from an upstream.
	ForwarderResponse
)

// String returns dnstap's name of k, e.g. "CLIENT_QUERY".
func (k Kind) String() string {
	switch k {
	case ClientQuery:
		return "CLIENT_QUERY"
	case ClientResponse:
		return "CLIENT_RESPONSE"
	case ForwarderQuery:
		return "FORWARDER_QUERY"
	case ForwarderResponse:
		return "FORWARDER_RESPONSE"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// isQuery reports whether the message of kind k is a query (it goes into
// dnstap's query_message) rather than a response.
func (k Kind) isQuery() bool { return k == ClientQuery || k == ForwarderQuery }

// Proto is the transport a message travelled on.
type Proto uint8

// The transports. dnstap (as golang-dnstap v0.4.0's dnstap.proto has it)
// knows UDP, TCP, DOT and DOH; DoH3 is written as DOH and DoQ as TCP,
// because that proto has no value for DNS over QUIC.
const (
	UDP  Proto = iota + 1 // plain DNS over UDP
	TCP                   // plain DNS over TCP
	DoT                   // DNS over TLS (RFC 7858): dnstap DOT
	DoH                   // DNS over HTTPS (RFC 8484), HTTP/1.1 or HTTP/2: dnstap DOH
	DoH3                  // DNS over HTTPS over HTTP/3: dnstap DOH
	DoQ                   // DNS over QUIC (RFC 9250): dnstap TCP (no DOQ value in v0.4.0)
)

// String returns the transport's usual name, e.g. "DoT".
func (p Proto) String() string {
	switch p {
	case UDP:
		return "UDP"
	case TCP:
		return "TCP"
	case DoT:
		return "DoT"
	case DoH:
		return "DoH"
	case DoH3:
		return "DoH3"
	case DoQ:
		return "DoQ"
	}
	return fmt.Sprintf("Proto(%d)", uint8(p))
}

// Defaults and bounds of Config's fields.
const (
	DefaultQueueLen      = 1024
	DefaultSlotSize      = 4096
	DefaultFlushInterval = time.Second
	DefaultTimeout       = 5 * time.Second
	DefaultReconnectMin  = 500 * time.Millisecond
	DefaultReconnectMax  = 30 * time.Second

	// MaxQueueLen bounds Config.QueueLen (with 4 KiB slots, 256 MiB).
	MaxQueueLen = 1 << 16
	// MinSlotSize and MaxSlotSize bound Config.SlotSize. MaxSlotSize is
	// also the longest message Log accepts: no DNS message is longer.
	MinSlotSize = 512
	MaxSlotSize = 65535
)

// Config tunes a Tap. The zero value is valid: every zero field takes its
// default.
type Config struct {
	// Identity is the dnstap identity of this server. Default: the host
	// name.
	Identity string
	// Version is dnstun's version; messages carry "dnstun <Version>" as
	// their dnstap version ("dnstun" when empty).
	Version string
	// QueueLen is the number of message slots, and so the number of
	// messages that may wait for the writer. Default DefaultQueueLen.
	QueueLen int
	// SlotSize is each slot's buffer, allocated once at Open. A longer
	// message (up to MaxSlotSize) grows its slot's buffer once, which
	// then keeps that size. Default DefaultSlotSize.
	SlotSize int
	// FlushInterval is the longest a written message waits in the
	// writer's buffer before it is flushed to the output. Default
	// DefaultFlushInterval.
	FlushInterval time.Duration
	// Timeout bounds connecting to a collector, its handshake and each
	// write to it; a collector that does not read for this long is
	// disconnected. Default DefaultTimeout.
	Timeout time.Duration
	// ReconnectMin and ReconnectMax bound the wait between attempts to
	// reach a collector; it doubles after each failed attempt. Defaults
	// DefaultReconnectMin and DefaultReconnectMax.
	ReconnectMin, ReconnectMax time.Duration
	// Logger receives the tap's events (connections, failures, drops,
	// each at most about once a minute). Default slog.Default().
	Logger *slog.Logger
}

// withDefaults returns c with its zero fields set to their defaults, or
// an error naming the first field out of range.
func (c Config) withDefaults() (Config, error) {
	if c.Identity == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "dnstun"
		}
		c.Identity = h
	}
	if c.QueueLen == 0 {
		c.QueueLen = DefaultQueueLen
	}
	if c.QueueLen < 1 || c.QueueLen > MaxQueueLen {
		return c, fmt.Errorf("tap: queue length %d out of range: want 1 to %d (0 for the default %d)", c.QueueLen, MaxQueueLen, DefaultQueueLen)
	}
	if c.SlotSize == 0 {
		c.SlotSize = DefaultSlotSize
	}
	if c.SlotSize < MinSlotSize || c.SlotSize > MaxSlotSize {
		return c, fmt.Errorf("tap: slot size %d out of range: want %d to %d bytes (0 for the default %d)", c.SlotSize, MinSlotSize, MaxSlotSize, DefaultSlotSize)
	}
	durations := []struct {
		name string
		d    *time.Duration
		def  time.Duration
	}{
		{"flush interval", &c.FlushInterval, DefaultFlushInterval},
		{"timeout", &c.Timeout, DefaultTimeout},
		{"minimum reconnect wait", &c.ReconnectMin, DefaultReconnectMin},
		{"maximum reconnect wait", &c.ReconnectMax, DefaultReconnectMax},
	}
	for _, f := range durations {
		if *f.d == 0 {
			*f.d = f.def
		}
		if *f.d < 0 {
			return c, fmt.Errorf("tap: %s %v is negative: want a positive duration (0 for the default %v)", f.name, *f.d, f.def)
		}
	}
	if c.ReconnectMax < c.ReconnectMin {
		c.ReconnectMax = c.ReconnectMin
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}

// Spec is a parsed output specification.
type Spec struct {
	// Network is "unix" (a collector's socket) or "file".
	Network string
	// Path is the socket's or the file's path.
	Path string
}

// String returns s in the form ParseSpec accepts.
func (s Spec) String() string { return s.Network + ":" + s.Path }

// specForms says which specifications ParseSpec accepts, for its errors.
const specForms = "want unix:PATH (a dnstap collector's Frame Streams socket, e.g. fstrm_capture's or `dnstap -u PATH`) or file:PATH (a Frame Streams file, readable with dnstap-read)"

// ParseSpec parses an output specification: "unix:PATH" or "file:PATH".
func ParseSpec(spec string) (Spec, error) {
	network, path, ok := strings.Cut(spec, ":")
	if !ok {
		return Spec{}, fmt.Errorf("tap: bad dnstap output %q: %s", spec, specForms)
	}
	switch network {
	case "unix", "file":
	default:
		return Spec{}, fmt.Errorf("tap: bad dnstap output %q: unknown kind %q; %s", spec, network, specForms)
	}
	if path == "" {
		return Spec{}, fmt.Errorf("tap: bad dnstap output %q: empty path; %s", spec, specForms)
	}
	return Spec{Network: network, Path: path}, nil
}

// slot holds one message on its way to the writer.
type slot struct {
	kind           Kind
	proto          Proto
	client, server netip.AddrPort
	qtime, rtime   int64
	msg            []byte // the message: buf[:n]
	buf            []byte
}

// Tap emits dnstap messages to one output. Its methods are safe for
// concurrent use; a nil *Tap is a valid, disabled tap.
type Tap struct {
	spec Spec
	cfg  Config

	// free holds the slots not in use, queue the slots waiting for the
	// writer. Both have room for every slot, so neither send can block.
	free  chan *slot
	queue chan *slot

	stop      chan struct{} // closed by Close
	done      chan struct{} // closed by the writer when it has finished
	closeOnce sync.Once
	closeErr  error
	closed    atomic.Bool

	sent, dropped, discarded, writeErrors, reconnects atomic.Uint64
	connected                                         atomic.Bool

	w writer // the writer goroutine's own state
}

// Stats counts what a Tap did since Open.
type Stats struct {
	// Sent is the number of messages written to the output's buffer. A
	// write error may still lose the ones not yet flushed (WriteErrors).
	Sent uint64
	// Dropped is the number of messages Log dropped because no slot was
	// free: the queue was full, the writer behind or blocked.
	Dropped uint64
	// Discarded is the number of messages the writer took from the queue
	// but had no output for: no collector connected, or the file failed.
	Discarded uint64
	// WriteErrors is the number of failed writes, flushes and closes of
	// an established output; each one loses the output (a collector is
	// then reconnected).
	WriteErrors uint64
	// Reconnects is the number of connections to a collector made after
	// the first.
	Reconnects uint64
	// Connected says whether the output is usable now: a file that has
	// not failed, or a collector connected.
	Connected bool
}

// Open starts a tap writing to spec, "unix:PATH" or "file:PATH".
//
// A file is created (mode 0600, since it holds users' queries) or
// truncated at once, and an error to do so is returned. A collector's
// socket need not exist yet: the tap connects in the background and keeps
// reconnecting; until then messages are discarded and counted.
func Open(spec string, cfg Config) (*Tap, error) {
	s, err := ParseSpec(spec)
	if err != nil {
		return nil, err
	}
	if cfg, err = cfg.withDefaults(); err != nil {
		return nil, err
	}
	t := newTap(s, cfg)
	if s.Network == "file" {
		if err := t.openFile(); err != nil {
			return nil, err
		}
	}
	go t.run()
	return t, nil
}

// newTap returns a tap with its slots allocated and its writer not yet
// started.
func newTap(s Spec, cfg Config) *Tap {
	t := &Tap{
		spec:  s,
		cfg:   cfg,
		free:  make(chan *slot, cfg.QueueLen),
		queue: make(chan *slot, cfg.QueueLen),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	// One allocation for every slot's buffer; each buffer's capacity is
	// capped so that growing one cannot overwrite its neighbour.
	bufs := make([]byte, cfg.QueueLen*cfg.SlotSize)
	slots := make([]slot, cfg.QueueLen)
	for i := range slots {
		slots[i].buf = bufs[i*cfg.SlotSize : (i+1)*cfg.SlotSize : (i+1)*cfg.SlotSize]
		t.free <- &slots[i]
	}
	t.w.init(cfg)
	return t
}

// Enabled reports whether t emits messages: false for a nil *Tap.
func (t *Tap) Enabled() bool { return t != nil }

// Spec returns the output t writes to.
func (t *Tap) Spec() Spec { return t.spec }

// Log emits a message of kind kind that travelled over proto between
// client (the side that sent the query) and server (the side that
// answers it), and returns at once: it never blocks and, in steady state,
// never allocates. msg is copied; the caller keeps it.
//
// For client messages, client is the DNS client and server the address it
// sent its query to; for forwarder messages, client is dnstun's own
// socket (the zero AddrPort when unknown: it is then left out) and server
// the upstream resolver. qtime and rtime are the times, in Unix
// nanoseconds, the query was sent and the response was sent or received;
// a zero time is left out (a query needs qtime, a response rtime, and may
// give its query's qtime too).
//
// When no slot is free the message is dropped and counted (Stats.Dropped).
// A message longer than MaxSlotSize, an unknown kind, a nil or closed Tap:
// Log does nothing.
func (t *Tap) Log(kind Kind, proto Proto, client, server netip.AddrPort, msg []byte, qtime, rtime int64) {
	if t == nil || kind < ClientQuery || kind > ForwarderResponse || len(msg) > MaxSlotSize || t.closed.Load() {
		return
	}
	var s *slot
	select {
	case s = <-t.free:
	default:
		t.dropped.Add(1)
		return
	}
	s.kind, s.proto, s.client, s.server, s.qtime, s.rtime = kind, proto, client, server, qtime, rtime
	if len(msg) > cap(s.buf) {
		s.buf = make([]byte, MaxSlotSize) // once per slot: it keeps the larger buffer
	}
	s.msg = s.buf[:copy(s.buf[:len(msg)], msg)]
	// The queue has room for every slot, so this never waits.
	t.queue <- s
}

// Stats returns t's counters; the zero Stats for a nil *Tap.
func (t *Tap) Stats() Stats {
	if t == nil {
		return Stats{}
	}
	return Stats{
		Sent:        t.sent.Load(),
		Dropped:     t.dropped.Load(),
		Discarded:   t.discarded.Load(),
		WriteErrors: t.writeErrors.Load(),
		Reconnects:  t.reconnects.Load(),
		Connected:   t.connected.Load(),
	}
}

// ErrClosed is returned by a second Close.
var ErrClosed = errors.New("tap: already closed")

// Close stops t: the messages already queued are written, the output is
// flushed and closed (a file is then complete, ending with Frame Streams'
// STOP frame). A collector that does not read delays it by at most a few
// times Config.Timeout. Log calls made during or after Close do
// nothing. Close returns the error of flushing or closing the output.
func (t *Tap) Close() error {
	if t == nil {
		return nil
	}
	err := ErrClosed
	t.closeOnce.Do(func() {
		t.closed.Store(true)
		close(t.stop)
		<-t.done
		err = t.closeErr
	})
	return err
}

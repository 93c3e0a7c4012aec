// SPDX-License-Identifier: MIT

package tap

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"time"

	dnstap "github.com/dnstap/golang-dnstap"
	framestream "github.com/farsightsec/golang-framestream"
	"google.golang.org/protobuf/proto"
)

// logEvery is the shortest interval between two log lines about the same
// recurring event (connection failures, drops).
const logEvery = time.Minute

// Why our own writer rather than golang-dnstap's FrameStreamSockOutput:
// its write retries forever (so its Close never returns while the
// collector is away), it counts nothing, and proto.Marshal allocates a
// buffer per message. The framestream library still does the control
// frames: the handshake (READY, ACCEPT, START, each flushed when written),
// STOP and FINISH. Data frames (a 4-byte big-endian length, then the
// message) go through our own buffer on the same output: framestream's
// WriteFrame allocates the length prefix (binary.Write) on every message.

// writer is the state of the writer goroutine (Tap.run); nothing else
// touches it after Open.
type writer struct {
	out   *framestream.Writer // nil: no output now
	bw    *bufio.Writer       // data frames, onto the output
	hdr   [4]byte             // a data frame's length
	conn  net.Conn            // the collector's connection (nil for a file): write deadlines
	close io.Closer           // the output's file or connection
	up    time.Time           // when the output was opened
	dirty bool                // written to since the last flush

	// The message, reused for every slot: its optional fields point to
	// the fields below it, or are nil when absent.
	frame        dnstap.Dnstap
	msg          dnstap.Message
	frameType    dnstap.Dnstap_Type
	msgType      dnstap.Message_Type
	family       dnstap.SocketFamily
	protocol     dnstap.SocketProtocol
	qaddr, raddr [16]byte
	qport, rport uint32
	qsec, rsec   uint64
	qnsec, rnsec uint32
	buf          []byte // the marshalled message
	marshal      proto.MarshalOptions

	backoff   time.Duration // the wait before the next connection attempt
	failures  int           // connection attempts failed since the last success
	lastFail  time.Time     // the last log line about failures
	lastDrop  time.Time     // the last log line about drops
	dropsSeen uint64        // Tap.dropped when it was last logged
}

// init prepares the reused message.
func (w *writer) init(cfg Config) {
	w.bw = bufio.NewWriterSize(io.Discard, 64<<10)
	w.frameType = dnstap.Dnstap_MESSAGE
	w.frame = dnstap.Dnstap{
		Identity: []byte(cfg.Identity),
		Version:  []byte("dnstun " + cfg.Version),
		Type:     &w.frameType,
		Message:  &w.msg,
	}
	if cfg.Version == "" {
		w.frame.Version = []byte("dnstun")
	}
	w.msg.Type = &w.msgType
	w.buf = make([]byte, 0, cfg.SlotSize+256)
	w.backoff = cfg.ReconnectMin
}

// messageTypes and protocols map Log's kinds and transports to dnstap's.
var (
	messageTypes = [...]dnstap.Message_Type{
		ClientQuery:       dnstap.Message_CLIENT_QUERY,
		ClientResponse:    dnstap.Message_CLIENT_RESPONSE,
		ForwarderQuery:    dnstap.Message_FORWARDER_QUERY,
		ForwarderResponse: dnstap.Message_FORWARDER_RESPONSE,
	}
	protocols = [...]dnstap.SocketProtocol{
		UDP:  dnstap.SocketProtocol_UDP,
		TCP:  dnstap.SocketProtocol_TCP,
		DoT:  dnstap.SocketProtocol_DOT,
		DoH:  dnstap.SocketProtocol_DOH,
		DoH3: dnstap.SocketProtocol_DOH,
		DoQ:  dnstap.SocketProtocol_TCP, // v0.4.0's dnstap.proto has no DOQ
	}
)

// encode builds s's dnstap message and returns it marshalled, in a buffer
// reused by the next call.
func (w *writer) encode(s *slot) ([]byte, error) {
	m := &w.msg
	w.msgType = messageTypes[s.kind]
	m.SocketProtocol = nil
	if int(s.proto) < len(protocols) && s.proto != 0 {
		w.protocol = protocols[s.proto]
		m.SocketProtocol = &w.protocol
	}

	// Both addresses in one family: IPv6 (IPv4 ones mapped) if either is.
	client, server := s.client.Addr().Unmap(), s.server.Addr().Unmap()
	v6 := client.Is6() || server.Is6()
	w.family = dnstap.SocketFamily_INET
	if v6 {
		w.family = dnstap.SocketFamily_INET6
	}
	m.SocketFamily = nil
	if client.IsValid() || server.IsValid() {
		m.SocketFamily = &w.family
	}
	m.QueryAddress, m.QueryPort = endpoint(&w.qaddr, &w.qport, client, s.client.Port(), v6)
	m.ResponseAddress, m.ResponsePort = endpoint(&w.raddr, &w.rport, server, s.server.Port(), v6)

	m.QueryTimeSec, m.QueryTimeNsec = timestamp(&w.qsec, &w.qnsec, s.qtime)
	m.ResponseTimeSec, m.ResponseTimeNsec = timestamp(&w.rsec, &w.rnsec, s.rtime)

	m.QueryMessage, m.ResponseMessage = nil, s.msg
	if s.kind.isQuery() {
		m.QueryMessage, m.ResponseMessage = s.msg, nil
	}
	b, err := w.marshal.MarshalAppend(w.buf[:0], &w.frame)
	m.QueryMessage, m.ResponseMessage = nil, nil // keep no reference to the slot
	if err != nil {
		return nil, err
	}
	w.buf = b
	return b, nil
}

// endpoint stores a's bytes (16 when v6, else 4) in buf and port in p and
// returns them as dnstap's fields; nil ones when a is not valid.
func endpoint(buf *[16]byte, p *uint32, a netip.Addr, port uint16, v6 bool) ([]byte, *uint32) {
	if !a.IsValid() {
		return nil, nil
	}
	*p = uint32(port)
	if v6 {
		*buf = a.As16()
		return buf[:], p
	}
	v4 := a.As4()
	return buf[:copy(buf[:], v4[:])], p
}

// timestamp stores the Unix time ns as seconds and nanoseconds in sec
// and nsec and returns them as dnstap's fields; nil ones when ns is 0.
func timestamp(sec *uint64, nsec *uint32, ns int64) (*uint64, *uint32) {
	if ns <= 0 {
		return nil, nil
	}
	*sec, *nsec = uint64(ns/1e9), uint32(ns%1e9)
	return sec, nsec
}

// run is the writer goroutine: it writes the queued messages, flushes
// every FlushInterval, keeps a collector connected, and on Close writes
// what is left and closes the output.
func (t *Tap) run() {
	defer close(t.done)
	flush := time.NewTicker(t.cfg.FlushInterval)
	defer flush.Stop()
	redial := time.NewTimer(0) // a collector: the first attempt at once
	if t.spec.Network != "unix" {
		redial.Stop()
	}
	defer redial.Stop()
	for {
		lost := false
		select {
		case s := <-t.queue:
			lost = t.send(s)
		case <-flush.C:
			lost = t.flush()
			t.reportDrops()
		case <-redial.C:
			if !t.connect() {
				redial.Reset(t.nextBackoff())
			}
		case <-t.stop:
			t.drain()
			t.closeErr = t.closeOutput()
			t.reportDrops()
			st := t.Stats()
			t.cfg.Logger.Info("tap: dnstap output closed", "output", t.spec.String(),
				"sent", st.Sent, "dropped", st.Dropped, "discarded", st.Discarded,
				"write_errors", st.WriteErrors, "reconnects", st.Reconnects)
			return
		}
		if lost && t.spec.Network == "unix" {
			if time.Since(t.w.up) > t.cfg.ReconnectMax {
				t.w.backoff = t.cfg.ReconnectMin // it had worked for a while
			}
			redial.Reset(t.nextBackoff())
		}
	}
}

// drain writes the messages left in the queue.
func (t *Tap) drain() {
	for {
		select {
		case s := <-t.queue:
			t.send(s)
		default:
			return
		}
	}
}

// nextBackoff returns the wait before the next connection attempt and
// doubles the one after it, up to ReconnectMax.
func (t *Tap) nextBackoff() time.Duration {
	d := t.w.backoff
	t.w.backoff = min(2*d, t.cfg.ReconnectMax)
	return d
}

// send writes s's message to the output and returns s to the free list.
// It reports whether the output was lost.
func (t *Tap) send(s *slot) (lost bool) {
	if t.w.out == nil {
		t.free <- s
		t.discarded.Add(1)
		return false
	}
	b, err := t.w.encode(s)
	t.free <- s // encode copied the message
	if err != nil {
		// Only a bug can get here: every required field is set.
		t.discarded.Add(1)
		if time.Since(t.w.lastFail) >= logEvery {
			t.w.lastFail = time.Now()
			t.cfg.Logger.Error("tap: cannot encode a dnstap message; discarded", "kind", s.kind, "err", err)
		}
		return false
	}
	if err := t.w.writeFrame(b, t.cfg.Timeout); err != nil {
		t.lose("write", err)
		return true
	}
	t.sent.Add(1)
	t.w.dirty = true
	return false
}

// writeFrame buffers one data frame: its length, then b. A full buffer is
// written out within timeout (a collector that stops reading).
func (w *writer) writeFrame(b []byte, timeout time.Duration) error {
	binary.BigEndian.PutUint32(w.hdr[:], uint32(len(b)))
	if w.conn != nil && w.bw.Available() < len(w.hdr)+len(b) {
		w.conn.SetWriteDeadline(time.Now().Add(timeout))
	}
	if _, err := w.bw.Write(w.hdr[:]); err != nil {
		return err
	}
	_, err := w.bw.Write(b)
	return err
}

// flushFrames writes the buffered data frames out, within timeout.
func (w *writer) flushFrames(timeout time.Duration) error {
	if w.conn != nil {
		w.conn.SetWriteDeadline(time.Now().Add(timeout))
	}
	return w.bw.Flush()
}

// flush flushes the output's buffer if anything was written since the
// last flush, and reports whether the output was lost.
func (t *Tap) flush() (lost bool) {
	if t.w.out == nil || !t.w.dirty {
		return false
	}
	if err := t.w.flushFrames(t.cfg.Timeout); err != nil {
		t.lose("flush", err)
		return true
	}
	t.w.dirty = false
	return false
}

// lose drops the output after a failed op (write, flush): a collector is
// reconnected by run, a file stays failed.
func (t *Tap) lose(op string, err error) {
	t.writeErrors.Add(1)
	t.connected.Store(false)
	t.w.close.Close()
	t.w.out, t.w.close, t.w.conn, t.w.dirty = nil, nil, nil, false
	if t.spec.Network == "file" {
		t.cfg.Logger.Error("tap: dnstap file failed; further messages are discarded (fix the cause, then restart dnstun or reopen the tap)",
			"file", t.spec.Path, "op", op, "err", err)
		return
	}
	t.cfg.Logger.Warn("tap: lost the dnstap collector; reconnecting, messages are discarded meanwhile",
		"socket", t.spec.Path, "op", op, "err", err)
}

// openFile creates (or truncates) the output file and starts its frame
// stream.
func (t *Tap) openFile() error {
	f, err := os.OpenFile(t.spec.Path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("tap: cannot create the dnstap file: %w (check the directory exists and dnstun may write there)", err)
	}
	out, err := framestream.NewWriter(f, &framestream.WriterOptions{ContentTypes: [][]byte{dnstap.FSContentType}})
	if err != nil {
		f.Close()
		return fmt.Errorf("tap: cannot write the dnstap file %s: %w", t.spec.Path, err)
	}
	t.w.out, t.w.close, t.w.up = out, f, time.Now()
	t.w.conn = nil
	t.w.bw.Reset(f)
	t.connected.Store(true)
	return nil
}

// connect dials the collector's socket and does the Frame Streams
// handshake. It reports whether the collector is now connected; failures
// are logged at most once a logEvery.
func (t *Tap) connect() bool {
	conn, err := net.DialTimeout("unix", t.spec.Path, t.cfg.Timeout)
	if err == nil {
		var out *framestream.Writer
		out, err = framestream.NewWriter(conn, &framestream.WriterOptions{
			ContentTypes:  [][]byte{dnstap.FSContentType},
			Bidirectional: true,
			Timeout:       t.cfg.Timeout,
		})
		if err == nil {
			if !t.w.up.IsZero() {
				t.reconnects.Add(1)
			}
			t.cfg.Logger.Info("tap: connected to the dnstap collector", "socket", t.spec.Path,
				"failed_attempts", t.w.failures)
			t.w.out, t.w.close, t.w.up, t.w.failures = out, conn, time.Now(), 0
			t.w.conn = conn
			t.w.bw.Reset(conn)
			t.connected.Store(true)
			return true
		}
		conn.Close()
		err = fmt.Errorf("frame streams handshake: %w", err)
	}
	t.w.failures++
	if t.w.failures == 1 || time.Since(t.w.lastFail) >= logEvery {
		t.w.lastFail = time.Now()
		t.cfg.Logger.Warn("tap: cannot reach the dnstap collector; retrying, messages are discarded meanwhile (is the collector running and listening on this socket?)",
			"socket", t.spec.Path, "attempts", t.w.failures, "err", err)
	}
	return false
}

// closeOutput flushes and ends the frame stream (a collector acknowledges
// the STOP frame) and closes the output.
func (t *Tap) closeOutput() error {
	if t.w.out == nil {
		return nil
	}
	err := t.w.flushFrames(t.cfg.Timeout)
	if err == nil {
		err = t.w.out.Close()
	}
	if cerr := t.w.close.Close(); err == nil {
		err = cerr
	}
	t.w.out, t.w.close, t.w.conn = nil, nil, nil
	t.connected.Store(false)
	if err != nil {
		t.writeErrors.Add(1)
		return fmt.Errorf("tap: closing the dnstap output %s: %w", t.spec, err)
	}
	return nil
}

// reportDrops logs, at most once a logEvery, how many messages Log
// dropped since the last report.
func (t *Tap) reportDrops() {
	d := t.dropped.Load()
	if d == t.w.dropsSeen || time.Since(t.w.lastDrop) < logEvery {
		return
	}
	t.cfg.Logger.Warn("tap: dnstap messages dropped, the writer cannot keep up; consider a larger queue or a faster collector",
		"output", t.spec.String(), "dropped", d-t.w.dropsSeen, "dropped_total", d)
	t.w.dropsSeen, t.w.lastDrop = d, time.Now()
}

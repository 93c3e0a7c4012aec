// SPDX-License-Identifier: MIT

package tap

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	dnstap "github.com/dnstap/golang-dnstap"
	"github.com/dnstun/dnstun/internal/privtest"
	framestream "github.com/farsightsec/golang-framestream"
	"github.com/miekg/dns"
	"google.golang.org/protobuf/proto"
)

// quietLogger discards the tap's log lines; the tests check counters.
var quietLogger = slog.New(slog.DiscardHandler)

// entry is one Log call.
type entry struct {
	kind           Kind
	proto          Proto
	client, server netip.AddrPort
	msg            []byte
	qtime, rtime   int64
}

func (e entry) log(tp *Tap) {
	tp.Log(e.kind, e.proto, e.client, e.server, e.msg, e.qtime, e.rtime)
}

// pack returns a query for name (type A) and its response, in wire form.
func pack(t testing.TB, name string, id uint16) (query, response []byte) {
	t.Helper()
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), dns.TypeA)
	q.Id = id
	r := new(dns.Msg)
	r.SetReply(q)
	rr, err := dns.NewRR(dns.Fqdn(name) + " 300 IN A 192.0.2.7")
	if err != nil {
		t.Fatal(err)
	}
	r.Answer = append(r.Answer, rr)
	qb, err := q.Pack()
	if err != nil {
		t.Fatal(err)
	}
	rb, err := r.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return qb, rb
}

// pairs returns n query/response pairs: client pairs alternating IPv4 and
// IPv6, UDP and TCP, and every fourth pair a forwarder pair over DoT, DoH
// or DoQ. The names are q<i>.example.
func pairs(t testing.TB, n int) []entry {
	t.Helper()
	base := time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.UTC).UnixNano()
	var out []entry
	for i := range n {
		qb, rb := pack(t, fmt.Sprintf("q%d.example", i), uint16(i+1))
		client := netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), uint16(40000+i))
		server := netip.MustParseAddrPort("198.51.100.53:53")
		if i%2 == 1 {
			client = netip.AddrPortFrom(netip.MustParseAddr(fmt.Sprintf("2001:db8::%x", i)), uint16(40000+i))
			server = netip.MustParseAddrPort("[2001:db8:53::1]:53")
		}
		proto := UDP
		if i%4 >= 2 {
			proto = TCP
		}
		qkind, rkind := ClientQuery, ClientResponse
		if i%4 == 3 {
			qkind, rkind = ForwarderQuery, ForwarderResponse
			proto = []Proto{DoT, DoH, DoQ}[i%3]
			server = netip.AddrPortFrom(server.Addr(), 853)
		}
		qt := base + int64(i)*1_000_000_007
		rt := qt + 1_234_567
		out = append(out,
			entry{qkind, proto, client, server, qb, qt, 0},
			entry{rkind, proto, client, server, rb, qt, rt})
	}
	return out
}

// readFrames decodes every dnstap message of a Frame Streams stream: a
// file (bidirectional false) or a collector's connection.
func readFrames(t testing.TB, r io.Reader, bidirectional bool, each func(*dnstap.Dnstap)) error {
	fr, err := framestream.NewReader(r, &framestream.ReaderOptions{
		ContentTypes:  [][]byte{dnstap.FSContentType},
		Bidirectional: bidirectional,
		Timeout:       5 * time.Second,
	})
	if err != nil {
		return fmt.Errorf("frame streams reader: %w", err)
	}
	buf := make([]byte, 1<<17)
	for {
		n, err := fr.ReadFrame(buf)
		if errors.Is(err, framestream.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		m := new(dnstap.Dnstap)
		if err := proto.Unmarshal(buf[:n], m); err != nil {
			t.Errorf("frame does not decode as dnstap: %v", err)
			continue
		}
		each(m)
	}
}

// check compares a decoded message with the Log call that made it, field
// by field.
func check(t testing.TB, i int, got *dnstap.Dnstap, want entry, identity string) {
	t.Helper()
	fail := func(field string, g, w any) {
		t.Helper()
		t.Errorf("message %d (%v): %s = %v, want %v", i, want.kind, field, g, w)
	}
	if got.GetType() != dnstap.Dnstap_MESSAGE {
		fail("type", got.GetType(), dnstap.Dnstap_MESSAGE)
	}
	if string(got.GetIdentity()) != identity {
		fail("identity", string(got.GetIdentity()), identity)
	}
	if v := string(got.GetVersion()); v != "dnstun 0.test" {
		fail("version", v, "dnstun 0.test")
	}
	m := got.GetMessage()
	if m == nil {
		t.Fatalf("message %d has no Message", i)
	}
	if g, w := m.GetType(), messageTypes[want.kind]; g != w || m.Type == nil {
		fail("message type", g, w)
	}
	wantProto := map[Proto]dnstap.SocketProtocol{UDP: dnstap.SocketProtocol_UDP, TCP: dnstap.SocketProtocol_TCP,
		DoT: dnstap.SocketProtocol_DOT, DoH: dnstap.SocketProtocol_DOH, DoH3: dnstap.SocketProtocol_DOH, DoQ: dnstap.SocketProtocol_TCP}[want.proto]
	if m.SocketProtocol == nil || m.GetSocketProtocol() != wantProto {
		fail("socket protocol", m.GetSocketProtocol(), wantProto)
	}
	family := dnstap.SocketFamily_INET
	if want.client.Addr().Is6() {
		family = dnstap.SocketFamily_INET6
	}
	if m.SocketFamily == nil || m.GetSocketFamily() != family {
		fail("socket family", m.GetSocketFamily(), family)
	}
	if a, _ := netip.AddrFromSlice(m.GetQueryAddress()); a != want.client.Addr() {
		fail("query address", a, want.client.Addr())
	}
	if a, _ := netip.AddrFromSlice(m.GetResponseAddress()); a != want.server.Addr() {
		fail("response address", a, want.server.Addr())
	}
	if p := m.GetQueryPort(); p != uint32(want.client.Port()) {
		fail("query port", p, want.client.Port())
	}
	if p := m.GetResponsePort(); p != uint32(want.server.Port()) {
		fail("response port", p, want.server.Port())
	}
	times := []struct {
		name      string
		sec       *uint64
		nsec      *uint32
		want      int64
		wantField bool
	}{
		{"query time", m.QueryTimeSec, m.QueryTimeNsec, want.qtime, want.qtime != 0},
		{"response time", m.ResponseTimeSec, m.ResponseTimeNsec, want.rtime, want.rtime != 0},
	}
	for _, tm := range times {
		if (tm.sec != nil) != tm.wantField || (tm.nsec != nil) != tm.wantField {
			fail(tm.name+" present", tm.sec != nil, tm.wantField)
			continue
		}
		if tm.wantField {
			if g := int64(*tm.sec)*1e9 + int64(*tm.nsec); g != tm.want {
				fail(tm.name, time.Unix(0, g).UTC(), time.Unix(0, tm.want).UTC())
			}
		}
	}
	qm, rm := m.GetQueryMessage(), m.GetResponseMessage()
	if want.kind.isQuery() {
		qm, rm = rm, qm
	}
	if !bytes.Equal(rm, want.msg) {
		fail("message bytes", rm, want.msg)
	}
	if qm != nil {
		fail("other message", qm, "absent")
	}
}

// TestFileRoundTrip writes query/response pairs to a file and reads them
// back with golang-dnstap's decoder and with BIND's dnstap-read.
func TestFileRoundTrip(t *testing.T) {
	const n = 40
	path := filepath.Join(t.TempDir(), "out.dnstap")
	tp, err := Open("file:"+path, Config{Identity: "tap-test", Version: "0.test", QueueLen: 4 * n, Logger: quietLogger})
	if err != nil {
		t.Fatal(err)
	}
	want := pairs(t, n)
	for _, e := range want {
		e.log(tp)
	}
	if err := tp.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if st := tp.Stats(); st.Sent != 2*n || st.Dropped != 0 || st.Discarded != 0 || st.WriteErrors != 0 {
		t.Errorf("stats %+v, want %d sent and nothing lost", st, 2*n)
	}

	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	i := 0
	err = readFrames(t, f, false, func(m *dnstap.Dnstap) {
		if i < len(want) {
			check(t, i, m, want[i], "tap-test")
		}
		i++
	})
	if err != nil {
		t.Fatalf("reading %s back: %v", path, err)
	}
	if i != len(want) {
		t.Fatalf("read %d messages back, want %d", i, len(want))
	}

	t.Run("dnstap-read", func(t *testing.T) {
		bin := privtest.RequireTool(t, "dnstap-read", "bind9-dnsutils")
		out, err := exec.Command(bin, path).CombinedOutput()
		if err != nil {
			t.Fatalf("dnstap-read %s: %v\n%s", path, err, out)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if len(lines) != len(want) {
			t.Fatalf("dnstap-read printed %d lines, want %d:\n%s", len(lines), len(want), out)
		}
		short := map[Kind]string{ClientQuery: " CQ ", ClientResponse: " CR ", ForwarderQuery: " FQ ", ForwarderResponse: " FR "}
		for i, l := range lines {
			e := want[i]
			name := fmt.Sprintf("q%d.example/IN/A", i/2)
			if !strings.Contains(l, short[e.kind]) || !strings.Contains(l, name) {
				t.Errorf("dnstap-read line %d = %q, want %q and %q", i, l, strings.TrimSpace(short[e.kind]), name)
			}
			// BIND 9.18's dnstap.proto knows only UDP and TCP: it shows
			// DOT and DOH as UDP, so only plain transports are checked.
			if (e.proto == UDP || e.proto == TCP) && !strings.Contains(l, " "+e.proto.String()+" ") {
				t.Errorf("dnstap-read line %d = %q, want transport %v", i, l, e.proto)
			}
		}
		t.Logf("dnstap-read, first lines:\n%s", strings.Join(lines[:8], "\n"))

		out, err = exec.Command(bin, "-y", path).CombinedOutput()
		if err != nil {
			t.Fatalf("dnstap-read -y %s: %v\n%s", path, err, out)
		}
		y := string(out)
		for k, c := range map[string]int{
			"type: MESSAGE":                       len(want),
			"identity: tap-test":                  len(want),
			"version: dnstun 0.test":              len(want),
			"  type: CLIENT_QUERY\n":              3 * n / 4,
			"  type: CLIENT_RESPONSE\n":           3 * n / 4,
			"  type: FORWARDER_QUERY\n":           n / 4,
			"  type: FORWARDER_RESPONSE\n":        n / 4,
			"socket_family: INET6":                n,
			`query_address: "2001:db8::1"` + "\n": 2,
			`response_address: "198.51.100.53"`:   n,
		} {
			if got := strings.Count(y, k); got != c {
				t.Errorf("dnstap-read -y: %q appears %d times, want %d", strings.TrimSpace(k), got, c)
			}
		}
		if t.Failed() {
			t.Logf("dnstap-read -y output begins:\n%s", y[:min(len(y), 3000)])
		}
	})
}

// TestLongMessage grows a slot's buffer for a message longer than it.
func TestLongMessage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "long.dnstap")
	tp, err := Open("file:"+path, Config{SlotSize: MinSlotSize, QueueLen: 2, Version: "0.test", Identity: "x", Logger: quietLogger})
	if err != nil {
		t.Fatal(err)
	}
	long := bytes.Repeat([]byte{0xab}, 10_000)
	e := entry{ClientResponse, TCP, netip.MustParseAddrPort("192.0.2.1:5353"), netip.MustParseAddrPort("192.0.2.53:53"), long, 0, 1}
	e.log(tp)
	tp.Log(ClientResponse, TCP, e.client, e.server, make([]byte, MaxSlotSize+1), 0, 1) // ignored
	if err := tp.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	if err := readFrames(t, f, false, func(m *dnstap.Dnstap) { check(t, n, m, e, "x"); n++ }); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("read %d messages, want 1", n)
	}
}

// collector is a dnstap collector on a unix socket: it accepts
// connections and decodes their frames into msgs.
type collector struct {
	t    testing.TB
	ln   net.Listener
	msgs chan *dnstap.Dnstap

	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

// startCollector listens on path. With stall, it completes each
// connection's handshake and then never reads again.
func startCollector(t testing.TB, path string, stall bool) *collector {
	t.Helper()
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	c := &collector{t: t, ln: ln, msgs: make(chan *dnstap.Dnstap, 100_000)}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			c.mu.Lock()
			c.conns = append(c.conns, conn)
			c.mu.Unlock()
			c.wg.Add(1)
			go func() {
				defer c.wg.Done()
				if stall {
					_, err := framestream.NewReader(conn, &framestream.ReaderOptions{
						ContentTypes: [][]byte{dnstap.FSContentType}, Bidirectional: true, Timeout: 5 * time.Second})
					if err != nil {
						t.Errorf("collector handshake: %v", err)
					}
					return // the connection stays open, unread, until kill
				}
				readFrames(t, conn, true, func(m *dnstap.Dnstap) { c.msgs <- m })
				conn.Close()
			}()
		}
	}()
	return c
}

// kill closes the listener (removing the socket) and every connection.
func (c *collector) kill() {
	c.ln.Close()
	c.mu.Lock()
	for _, conn := range c.conns {
		conn.Close()
	}
	c.mu.Unlock()
	c.wg.Wait()
}

// receive waits for n messages and returns them.
func (c *collector) receive(n int) []*dnstap.Dnstap {
	c.t.Helper()
	var got []*dnstap.Dnstap
	deadline := time.After(10 * time.Second)
	for len(got) < n {
		select {
		case m := <-c.msgs:
			got = append(got, m)
		case <-deadline:
			c.t.Fatalf("collector received %d messages, want %d", len(got), n)
		}
	}
	return got
}

// socketPath returns a short path for a unix socket (sun_path holds 104
// bytes on darwin, 108 on Linux; t.TempDir can be longer).
func socketPath(t testing.TB) string {
	dir, err := os.MkdirTemp("", "tap")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "c.sock")
}

// fastConfig reconnects and flushes quickly, for the collector tests.
func fastConfig() Config {
	return Config{
		Identity: "tap-test", Version: "0.test", Logger: quietLogger,
		FlushInterval: 10 * time.Millisecond, Timeout: 2 * time.Second,
		ReconnectMin: 10 * time.Millisecond, ReconnectMax: 50 * time.Millisecond,
	}
}

// waitFor polls cond for up to 10 s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func TestUnixCollector(t *testing.T) {
	path := socketPath(t)
	c := startCollector(t, path, false)
	defer c.kill()
	tp, err := Open("unix:"+path, fastConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Close()
	waitFor(t, "the connection", func() bool { return tp.Stats().Connected })
	want := pairs(t, 100)
	for _, e := range want {
		e.log(tp)
	}
	for i, m := range c.receive(len(want)) {
		check(t, i, m, want[i], "tap-test")
	}
	if err := tp.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if st := tp.Stats(); st.Sent != uint64(len(want)) || st.Dropped+st.Discarded+st.WriteErrors+st.Reconnects != 0 || st.Connected {
		t.Errorf("stats %+v, want %d sent, nothing else", st, len(want))
	}
}

// TestUnixCollectorLate starts without a collector: messages are
// discarded and counted, Log does not block; then the collector appears
// and messages flow.
func TestUnixCollectorLate(t *testing.T) {
	path := socketPath(t)
	tp, err := Open("unix:"+path, fastConfig())
	if err != nil {
		t.Fatalf("Open without a collector: %v", err)
	}
	defer tp.Close()
	early := pairs(t, 50)
	start := time.Now()
	for _, e := range early {
		e.log(tp)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("100 Log calls without a collector took %v", d)
	}
	waitFor(t, "the early messages to be discarded", func() bool {
		st := tp.Stats()
		return st.Discarded+st.Dropped == uint64(len(early))
	})
	if st := tp.Stats(); st.Sent != 0 || st.Connected {
		t.Fatalf("stats %+v without a collector", st)
	}

	c := startCollector(t, path, false)
	defer c.kill()
	waitFor(t, "the connection", func() bool { return tp.Stats().Connected })
	late := pairs(t, 50)
	for _, e := range late {
		e.log(tp)
	}
	for i, m := range c.receive(len(late)) {
		check(t, i, m, late[i], "tap-test")
	}
	if err := tp.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if st := tp.Stats(); st.Sent != uint64(len(late)) {
		t.Errorf("stats %+v, want %d sent", st, len(late))
	}
}

// TestUnixCollectorRestart kills the collector mid-stream and starts a
// new one on the same socket: the tap reconnects.
func TestUnixCollectorRestart(t *testing.T) {
	path := socketPath(t)
	c := startCollector(t, path, false)
	tp, err := Open("unix:"+path, fastConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Close()
	waitFor(t, "the connection", func() bool { return tp.Stats().Connected })
	msgs := pairs(t, 20)
	for _, e := range msgs {
		e.log(tp)
	}
	c.receive(len(msgs))
	c.kill()

	// The writer notices at its next write or flush.
	waitFor(t, "the write error", func() bool {
		msgs[0].log(tp)
		time.Sleep(5 * time.Millisecond)
		return tp.Stats().WriteErrors > 0
	})
	c = startCollector(t, path, false)
	defer c.kill()
	waitFor(t, "the reconnection", func() bool { return tp.Stats().Reconnects == 1 && tp.Stats().Connected })
	for _, e := range msgs {
		e.log(tp)
	}
	for i, m := range c.receive(len(msgs)) {
		check(t, i, m, msgs[i], "tap-test")
	}
	if err := tp.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	t.Logf("stats %+v", tp.Stats())
}

// TestOverload: a collector that stops reading blocks the writer; Log
// keeps returning at once and counts its drops.
func TestOverload(t *testing.T) {
	path := socketPath(t)
	c := startCollector(t, path, true)
	cfg := fastConfig()
	cfg.QueueLen = 256
	cfg.Timeout = 30 * time.Second // the writer stays blocked for the whole test
	tp, err := Open("unix:"+path, cfg)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the connection", func() bool { return tp.Stats().Connected })
	qb, _ := pack(t, "overload.example", 1)
	client, server := netip.MustParseAddrPort("192.0.2.1:40000"), netip.MustParseAddrPort("192.0.2.53:53")
	const calls = 100_000
	var slowest time.Duration
	start := time.Now()
	for i := range calls {
		t0 := time.Now()
		tp.Log(ClientQuery, UDP, client, server, qb, int64(i)+1, 0)
		slowest = max(slowest, time.Since(t0))
	}
	elapsed := time.Since(start)
	st := tp.Stats()
	t.Logf("%d Log calls in %v (%v each), slowest %v; stats %+v", calls, elapsed, elapsed/calls, slowest, st)
	if elapsed > 2*time.Second {
		t.Errorf("%d Log calls took %v, want < 2 s", calls, elapsed)
	}
	if st.Dropped == 0 || st.Dropped > calls {
		t.Errorf("dropped %d of %d with the writer blocked", st.Dropped, calls)
	}
	// Unblock the writer: its write fails once the collector goes.
	c.kill()
	start = time.Now()
	tp.Close()
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Close took %v", d)
	}
	st = tp.Stats()
	if st.Sent+st.Dropped+st.Discarded+st.WriteErrors < calls {
		// Sent counts buffered messages a write error then lost; every
		// call is accounted for at least once.
		t.Errorf("stats %+v do not account for %d calls", st, calls)
	}
}

func TestParseSpec(t *testing.T) {
	for _, tc := range []struct {
		spec, want string // want: the Spec's String, or a part of the error
		ok         bool
	}{
		{"unix:/run/dnstap.sock", "unix:/run/dnstap.sock", true},
		{"file:/var/log/dns.tap", "file:/var/log/dns.tap", true},
		{"file:rel/a:b", "file:rel/a:b", true},
		{"/run/dnstap.sock", "want unix:PATH", false},
		{"tcp:127.0.0.1:6000", `unknown kind "tcp"`, false},
		{"unix:", "empty path", false},
		{"", "want unix:PATH", false},
	} {
		s, err := ParseSpec(tc.spec)
		switch {
		case tc.ok && err != nil:
			t.Errorf("ParseSpec(%q): %v", tc.spec, err)
		case tc.ok && s.String() != tc.want:
			t.Errorf("ParseSpec(%q) = %v, want %v", tc.spec, s, tc.want)
		case !tc.ok && (err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "file:PATH")):
			t.Errorf("ParseSpec(%q) error %v, want one containing %q and the accepted forms", tc.spec, err, tc.want)
		}
	}
	if _, err := Open("udp:x", Config{}); err == nil {
		t.Error("Open accepted a bad spec")
	}
}

func TestOpenErrors(t *testing.T) {
	if _, err := Open("file:"+filepath.Join(t.TempDir(), "missing", "x.tap"), Config{}); err == nil || !strings.Contains(err.Error(), "dnstap file") {
		t.Errorf("Open of a file in a missing directory: %v", err)
	}
	for _, cfg := range []Config{{QueueLen: -1}, {QueueLen: MaxQueueLen + 1}, {SlotSize: 100}, {SlotSize: 1 << 20}, {Timeout: -time.Second}} {
		if _, err := Open("unix:/nonexistent/x.sock", cfg); err == nil {
			t.Errorf("Open accepted config %+v", cfg)
		}
	}
}

func TestNilTap(t *testing.T) {
	var tp *Tap
	if tp.Enabled() {
		t.Error("nil tap enabled")
	}
	tp.Log(ClientQuery, UDP, netip.AddrPort{}, netip.AddrPort{}, []byte{1}, 1, 0)
	if tp.Stats() != (Stats{}) || tp.Close() != nil {
		t.Error("nil tap not a no-op")
	}
}

func TestCloseTwiceAndLogAfterClose(t *testing.T) {
	tp, err := Open("file:"+filepath.Join(t.TempDir(), "x.tap"), Config{Logger: quietLogger})
	if err != nil {
		t.Fatal(err)
	}
	if err := tp.Close(); err != nil {
		t.Fatal(err)
	}
	if err := tp.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("second Close: %v, want ErrClosed", err)
	}
	tp.Log(ClientQuery, UDP, netip.AddrPort{}, netip.AddrPort{}, []byte{1}, 1, 0)
	if st := tp.Stats(); st.Sent != 0 || st.Dropped != 0 {
		t.Errorf("Log after Close: stats %+v", st)
	}
}

// TestMissingAddresses: a forwarder query whose local address is unknown
// leaves query_address and query_port out.
func TestMissingAddresses(t *testing.T) {
	tp := newTap(Spec{"file", "-"}, mustDefaults(t, Config{}))
	s := &slot{kind: ForwarderQuery, proto: DoQ, server: netip.MustParseAddrPort("[2001:db8::53]:853"), msg: []byte{1, 2}, qtime: 5}
	b, err := tp.w.encode(s)
	if err != nil {
		t.Fatal(err)
	}
	m := new(dnstap.Dnstap)
	if err := proto.Unmarshal(b, m); err != nil {
		t.Fatal(err)
	}
	msg := m.GetMessage()
	if msg.QueryAddress != nil || msg.QueryPort != nil || msg.GetSocketFamily() != dnstap.SocketFamily_INET6 ||
		msg.GetResponsePort() != 853 || msg.GetSocketProtocol() != dnstap.SocketProtocol_TCP || msg.ResponseTimeSec != nil {
		t.Errorf("encoded %v", msg)
	}
}

func mustDefaults(t testing.TB, cfg Config) Config {
	t.Helper()
	cfg, err := cfg.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Logger = quietLogger
	return cfg
}

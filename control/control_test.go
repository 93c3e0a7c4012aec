// SPDX-License-Identifier: MIT

package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeHandler records the verbs it was asked.
type fakeHandler struct {
	mu        sync.Mutex
	calls     []string
	enabled   bool
	lastN     int
	lastAfter *uint64
	flushed   string // the name of the last cache-flush
	fail      error
}

func (h *fakeHandler) record(v string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls = append(h.calls, v)
	return h.fail
}

var fakeTime = time.Date(2026, 11, 25, 12, 0, 0, 123456000, time.UTC)

func (h *fakeHandler) Status() (Status, error) {
	if err := h.record("status"); err != nil {
		return Status{}, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return Status{Enabled: h.enabled, Steering: "virtual", Tun: "dnstun0",
		Upstreams:     []UpstreamStatus{{Addr: "192.0.2.1:53", Healthy: true, Sent: 3, Answers: 3, RTTMillis: 1.5}, {Addr: "tls://dns.example:853", Healthy: false, Domains: []string{"corp.example"}}},
		UptimeSeconds: 12.5, PID: 4242, Version: "test", Counters: map[string]uint64{"queries": 7}}, nil
}
func (h *fakeHandler) Enable() error {
	err := h.record("enable")
	h.mu.Lock()
	h.enabled = true
	h.mu.Unlock()
	return err
}
func (h *fakeHandler) Disable() error {
	err := h.record("disable")
	h.mu.Lock()
	h.enabled = false
	h.mu.Unlock()
	return err
}
func (h *fakeHandler) Reload() error { return h.record("reload") }
func (h *fakeHandler) Stats() (map[string]uint64, error) {
	return map[string]uint64{"queries": 7, "blocked": 2}, h.record("stats")
}
func (h *fakeHandler) QueryLog(a QueryLogArgs) (QueryLogData, error) {
	h.mu.Lock()
	h.lastN = a.N
	h.lastAfter = a.After
	h.mu.Unlock()
	return QueryLogData{Entries: []QueryLogEntry{{Seq: 9, Time: fakeTime, Client: "198.19.53.1:40000", Name: "ads.example.com", Type: "A",
		Decision: "block", Rcode: "NXDOMAIN", LatencyMicros: 12}}, Last: 9}, h.record("querylog")
}
func (h *fakeHandler) Stop() error { return h.record("stop") }
func (h *fakeHandler) CacheFlush(name string) (int, error) {
	h.mu.Lock()
	h.flushed = name
	h.mu.Unlock()
	return 7, h.record("cache-flush")
}

func sockPath(t *testing.T) string {
	// Unix socket paths are short (104 bytes on darwin); TempDir's may not be.
	dir, err := os.MkdirTemp("", "dtc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "c.sock")
}

func serve(t *testing.T, h Handler) *Server {
	t.Helper()
	s, err := Serve(context.Background(), sockPath(t), "", h, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func dial(t *testing.T, path string) *Client {
	t.Helper()
	c, err := Dial(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func skipUnlessRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the control socket admits root or its group; this test connects as the running user and needs root")
	}
}

// TestVerbsEndToEnd drives every verb through a real socket.
func TestVerbsEndToEnd(t *testing.T) {
	skipUnlessRoot(t)
	h := &fakeHandler{}
	s := serve(t, h)
	c := dial(t, s.Path())
	ctx := context.Background()
	if err := c.Enable(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := Status{Enabled: true, Steering: "virtual", Tun: "dnstun0",
		Upstreams:     []UpstreamStatus{{Addr: "192.0.2.1:53", Healthy: true, Sent: 3, Answers: 3, RTTMillis: 1.5}, {Addr: "tls://dns.example:853", Healthy: false, Domains: []string{"corp.example"}}},
		UptimeSeconds: 12.5, PID: 4242, Version: "test", Counters: map[string]uint64{"queries": 7}}
	if !reflect.DeepEqual(st, want) {
		t.Errorf("status = %+v, want %+v", st, want)
	}
	if err := c.Disable(ctx); err != nil {
		t.Fatal(err)
	}
	if st, _ := c.Status(ctx); st.Enabled {
		t.Error("still enabled after disable")
	}
	if err := c.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	m, err := c.Stats(ctx)
	if err != nil || m["queries"] != 7 || m["blocked"] != 2 {
		t.Errorf("stats = %v, %v", m, err)
	}
	q, err := c.QueryLog(ctx, 5)
	if err != nil || len(q) != 1 || q[0].Name != "ads.example.com" || !q[0].Time.Equal(fakeTime) || q[0].LatencyMicros != 12 {
		t.Errorf("querylog = %+v, %v", q, err)
	}
	if h.lastN != 5 {
		t.Errorf("querylog n = %d, want 5", h.lastN)
	}
	if _, err := c.QueryLog(ctx, 0); err != nil || h.lastN != DefaultQueryLogN || h.lastAfter != nil {
		t.Errorf("querylog default n = %d, after %v, %v", h.lastN, h.lastAfter, err)
	}
	if d, err := c.QueryLogAfter(ctx, 0, 0); err != nil || h.lastAfter == nil || *h.lastAfter != 0 || d.Last != 9 || len(d.Entries) != 1 || d.Entries[0].Seq != 9 {
		t.Errorf("querylog after 0 = %+v, %v (handler got after %v)", d, err, h.lastAfter)
	}
	if _, err := c.QueryLogAfter(ctx, 41, 7); err != nil || h.lastAfter == nil || *h.lastAfter != 41 || h.lastN != 7 {
		t.Errorf("querylog after 41 n 7: %v (handler got after %v, n %d)", err, h.lastAfter, h.lastN)
	}
	if n, err := c.CacheFlush(ctx, "example.com"); err != nil || n != 7 || h.flushed != "example.com" {
		t.Errorf("cache-flush example.com = %d, %v (handler got %q)", n, err, h.flushed)
	}
	if n, err := c.CacheFlush(ctx, ""); err != nil || n != 7 || h.flushed != "" {
		t.Errorf("cache-flush = %d, %v (handler got %q)", n, err, h.flushed)
	}
	if _, err := c.Do(ctx, VerbCacheFlush, map[string]any{"names": "x"}); err == nil {
		t.Error("cache-flush accepted an unknown argument")
	}
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(h.calls, " ")
	if got != "enable status disable status reload stats querylog querylog querylog querylog cache-flush cache-flush stop" {
		t.Errorf("handler saw %q", got)
	}
	// The raw data of a verb without data is absent.
	if d, err := c.Do(ctx, "enable", nil); err != nil || d != nil {
		t.Errorf("enable data %q, %v", d, err)
	}
}

// exchange sends raw lines on one connection and returns the response
// lines.
func exchange(t *testing.T, path string, lines ...string) []Response {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	var out []Response
	for _, l := range lines {
		if _, err := c.Write([]byte(l + "\n")); err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(l) == "" {
			continue
		}
		resp, err := br.ReadBytes('\n')
		if err != nil {
			t.Fatalf("after %q: %v", l, err)
		}
		var r Response
		if err := json.Unmarshal(resp, &r); err != nil {
			t.Fatalf("response %q: %v", resp, err)
		}
		out = append(out, r)
	}
	return out
}

func TestProtocolErrors(t *testing.T) {
	skipUnlessRoot(t)
	h := &fakeHandler{}
	s := serve(t, h)
	cases := []struct {
		req, code, msg string
	}{
		{`not json`, CodeBadRequest, "bad request: invalid character"},
		{`{"verb":"status"}`, CodeVersion, `"v" is missing; this daemon speaks protocol version 1`},
		{`{"v":2,"verb":"status"}`, CodeVersion, "unsupported protocol version 2: this daemon speaks version 1"},
		{`{"v":"1","verb":"status"}`, CodeBadRequest, "bad request: json: cannot unmarshal string"},
		{`{"v":1}`, CodeBadRequest, `"verb" is missing`},
		{`{"v":1,"verb":"explode"}`, CodeUnknownVerb, `unknown verb "explode": want one of status, enable, disable, reload, stats, querylog, cache-flush, stop`},
		{`{"v":1,"verb":"status","args":{"x":1}}`, CodeBadArgs, "status takes no arguments"},
		{`{"v":1,"verb":"querylog","args":{"n":-1}}`, CodeBadArgs, "querylog: n -1 out of range: want 1 to 10000"},
		{`{"v":1,"verb":"querylog","args":{"n":10001}}`, CodeBadArgs, "out of range"},
		{`{"v":1,"verb":"querylog","args":{"count":3}}`, CodeBadArgs, `querylog: bad args: json: unknown field "count"`},
		{`{"v":1,"verb":"querylog","args":[1]}`, CodeBadArgs, "querylog: bad args"},
		{`[1,2]`, CodeBadRequest, "bad request"},
	}
	var lines []string
	for _, c := range cases {
		lines = append(lines, c.req)
	}
	// All on one connection, with a blank line (ignored) and a good
	// request at the end: errors do not end the connection.
	lines = append(lines, "", `{"v":1,"verb":"status","future_field":true}`)
	resps := exchange(t, s.Path(), lines...)
	for i, c := range cases {
		r := resps[i]
		if r.OK || r.V != 1 || r.Code != c.code || !strings.Contains(r.Error, c.msg) {
			t.Errorf("%s: got %+v, want code %s and %q", c.req, r, c.code, c.msg)
		}
	}
	if last := resps[len(resps)-1]; !last.OK || last.V != 1 || len(last.Data) == 0 {
		t.Errorf("good request after errors: %+v", last)
	}
	if len(h.calls) != 1 {
		t.Errorf("bad requests reached the handler: %v", h.calls)
	}

	// A handler's error is the response's error.
	h.fail = errors.New("list /x: no such file")
	r := exchange(t, s.Path(), `{"v":1,"verb":"reload"}`)[0]
	if r.OK || r.Code != CodeFailed || r.Error != "reload: list /x: no such file" {
		t.Errorf("handler error: %+v", r)
	}
	c := dial(t, s.Path())
	err := c.Reload(context.Background())
	var ce *Error
	if !errors.As(err, &ce) || ce.Code != CodeFailed || ce.Message != "reload: list /x: no such file" {
		t.Errorf("client error: %#v", err)
	}
	// An unknown verb through the client.
	if _, err := c.Do(context.Background(), "frobnicate", nil); !errors.As(err, &ce) || ce.Code != CodeUnknownVerb {
		t.Errorf("unknown verb: %v", err)
	}
}

func TestOversizeRequest(t *testing.T) {
	skipUnlessRoot(t)
	s := serve(t, &fakeHandler{})
	c, err := net.Dial("unix", s.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	big := `{"v":1,"verb":"status","pad":"` + strings.Repeat("x", MaxRequest) + `"}` + "\n"
	go c.Write([]byte(big))
	line, err := bufio.NewReader(c).ReadBytes('\n')
	if err != nil {
		t.Fatal(err)
	}
	var r Response
	json.Unmarshal(line, &r)
	if r.OK || r.Code != CodeTooLarge || !strings.Contains(r.Error, "request too large: the limit is 65536 bytes") {
		t.Errorf("got %s", line)
	}
	// Then the server closes the connection.
	if _, err := bufio.NewReader(c).ReadByte(); err == nil {
		t.Error("connection still open after an oversize request")
	}
	// Just under the limit is fine.
	pad := MaxRequest - len(`{"v":1,"verb":"status","pad":""}`) - 1
	ok := exchange(t, s.Path(), `{"v":1,"verb":"status","pad":"`+strings.Repeat("x", pad)+`"}`)[0]
	if !ok.OK {
		t.Errorf("request of exactly the limit refused: %+v", ok)
	}
}

func TestReadTimeout(t *testing.T) {
	skipUnlessRoot(t)
	s := serve(t, &fakeHandler{})
	s.readTimeout.Store(int64(200 * time.Millisecond))
	c, err := net.Dial("unix", s.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write([]byte(`{"v":1,"verb"`))
	line, err := bufio.NewReader(c).ReadBytes('\n')
	if err != nil || !strings.Contains(string(line), `"code":"timeout"`) {
		t.Errorf("got %q, %v", line, err)
	}
}

func TestConcurrentClients(t *testing.T) {
	skipUnlessRoot(t)
	h := &fakeHandler{}
	s := serve(t, h)
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := Dial(s.Path())
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			for j := 0; j < 25; j++ {
				if _, err := c.Stats(context.Background()); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if len(h.calls) != 16*25 {
		t.Errorf("%d calls, want %d", len(h.calls), 16*25)
	}
}

func TestSocketLifecycle(t *testing.T) {
	path := sockPath(t)
	ctx, cancel := context.WithCancel(context.Background())
	s, err := Serve(ctx, path, "", &fakeHandler{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("socket %v, %v; want a 0600 socket", fi.Mode(), err)
	}
	// A second server on the same path is refused: the first listens.
	if _, err := Serve(context.Background(), path, "", &fakeHandler{}, nil); err == nil || !strings.Contains(err.Error(), "another process listens on") {
		t.Errorf("second Serve: %v", err)
	}
	// Ending the context closes the server and removes the socket.
	cancel()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := os.Lstat(path); errors.Is(err, os.ErrNotExist) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("socket still there after the context ended")
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.Close() // idempotent

	// A stale socket (nothing listening) is replaced.
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	s2, err := Serve(context.Background(), path, "", &fakeHandler{}, nil)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	if err := s2.Close(); err != nil {
		t.Error(err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Error("Close left the socket")
	}
	// A regular file is never removed.
	os.WriteFile(path, []byte("mine"), 0o644)
	if _, err := Serve(context.Background(), path, "", &fakeHandler{}, nil); err == nil || !strings.Contains(err.Error(), "is not a socket") {
		t.Errorf("regular file: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "mine" {
		t.Error("regular file changed")
	}
	os.Remove(path)
	// An unknown group is an error.
	if _, err := Serve(context.Background(), path, "no-such-group-dnstun", &fakeHandler{}, nil); err == nil || !strings.Contains(err.Error(), "group") {
		t.Errorf("unknown group: %v", err)
	}
}

// TestCloseDoesNotRemoveAnothersSocket: a server replaced by another on
// the same path removes only its own socket file.
func TestCloseDoesNotRemoveAnothersSocket(t *testing.T) {
	path := sockPath(t)
	s, err := Serve(context.Background(), path, "", &fakeHandler{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	s.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Errorf("Close removed another server's socket: %v", err)
	}
}

// TestPeerRefusedMessage checks the refusal text without a second user.
func TestPeerRefusedMessage(t *testing.T) {
	for _, c := range []struct {
		gid   int
		group string
		want  string
	}{
		{65534, "nogroup", "permission denied: uid 1000 is not root and not in group nogroup"},
		{-1, "", "permission denied: uid 1000 is not root and no group is allowed"},
	} {
		got := refusal(1000, c.gid, c.group)
		if !strings.HasPrefix(got, c.want) {
			t.Errorf("got %q, want %q", got, c.want)
		}
	}
}

// TestQueryLogEntryMatchesProtocol: QueryLogEntry (querylog.Record) encodes
// exactly the fields PROTOCOL.md documents, and omits only the optional one.
func TestQueryLogEntryMatchesProtocol(t *testing.T) {
	doc, err := os.ReadFile("PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(doc), "\nQueryLogEntry:\n")
	if !ok {
		t.Fatal("PROTOCOL.md has no QueryLogEntry table")
	}
	var documented, optional []string
	for _, line := range strings.Split(strings.TrimLeft(table, "\n"), "\n") {
		if !strings.HasPrefix(line, "|") {
			break
		}
		cells := strings.Split(line, "|")
		if len(cells) < 3 || !strings.HasPrefix(strings.TrimSpace(cells[1]), "`") {
			continue // header or separator row
		}
		f := strings.Trim(strings.TrimSpace(cells[1]), "`")
		documented = append(documented, f)
		if strings.Contains(cells[2], "optional") {
			optional = append(optional, f)
		}
	}
	keys := func(e QueryLogEntry) []string {
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		var k []string
		for f := range m {
			k = append(k, f)
		}
		slices.Sort(k)
		return k
	}
	uid := uint32(1000)
	full := QueryLogEntry{Seq: 3, Time: fakeTime, Client: "198.19.53.1:40000", Proto: "udp", Name: "www.example.com", Type: "A",
		Decision: "forward", Rcode: "NOERROR", Upstream: "192.0.2.1:53", LatencyMicros: 900,
		PID: 4242, UID: &uid, Process: "curl", Exe: "/usr/bin/curl", SigningID: "com.apple.curl"}
	want := slices.Sorted(slices.Values(documented))
	if got := keys(full); !slices.Equal(got, want) {
		t.Errorf("QueryLogEntry encodes %v; PROTOCOL.md documents %v", got, want)
	}
	want = slices.DeleteFunc(want, func(f string) bool { return slices.Contains(optional, f) })
	if got := keys(QueryLogEntry{}); !slices.Equal(got, want) {
		t.Errorf("empty QueryLogEntry encodes %v; want the required fields %v (optional: %v)", got, want, optional)
	}
}

// TestGroupMustReachTheSocket: with a group, a socket directory without
// the search bit for group or others is refused with the fix; 0755 (what
// dnstun creates) is fine.
func TestGroupMustReachTheSocket(t *testing.T) {
	gid := strconv.Itoa(os.Getgid())
	dir := filepath.Join(t.TempDir(), "run")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := Serve(context.Background(), filepath.Join(dir, "c.sock"), gid, &fakeHandler{}, nil)
	if err == nil || !strings.Contains(err.Error(), "mode 0700: members of group "+gid+" cannot reach the socket") {
		t.Errorf("0700 directory: %v", err)
	}
	os.Chmod(dir, 0o755)
	s, err := Serve(context.Background(), filepath.Join(dir, "c.sock"), gid, &fakeHandler{}, nil)
	if err != nil {
		t.Fatalf("0755 directory: %v", err)
	}
	s.Close()
}

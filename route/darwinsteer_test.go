// SPDX-License-Identifier: MIT

package route

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dnstun/dnstun/internal/golden"
)

// fakeMac stands in for scutil, configd and the cache flush: it keeps the
// dynamic store's keys, publishes from a session's script, and answers
// show, remove and --dns the way scutil prints them (the formats of
// internal/macos/testdata).
type fakeMac struct {
	mu       sync.Mutex
	calls    []string
	store    map[string]string // key -> scutil's dump of its value
	dns      string            // the answer to scutil --dns
	refuse   string            // when set, a session's add prints this and stores nothing
	showLag  int               // shows that answer "No such key" before the key appears
	stubborn bool              // remove does nothing (a key configd keeps)
	sessions []*fakeSession
}

type fakeSession struct {
	f    *fakeMac
	keys []string
	out  string
	done chan struct{}
	once sync.Once
}

func newFakeMac() *fakeMac { return &fakeMac{store: map[string]string{}} }

func (f *fakeMac) record(s string) {
	f.calls = append(f.calls, s)
}

// dump is what scutil shows for the dictionary a publish script builds.
func dump(script string) (key, out string) {
	var b strings.Builder
	b.WriteString("<dictionary> {\n")
	entries := map[string]string{}
	for _, l := range strings.Split(script, "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) >= 4 && f[0] == "d.add" && f[2] == "*":
			vals := f[3:]
			if vals[0] == "#" {
				vals = vals[1:]
			}
			var e strings.Builder
			e.WriteString("<array> {\n")
			for i, v := range vals {
				fmt.Fprintf(&e, "    %d : %s\n", i, strings.Trim(v, `"`))
			}
			e.WriteString("  }")
			entries[f[1]] = e.String()
		case len(f) == 4 && f[0] == "d.add" && f[2] == "#":
			entries[f[1]] = f[3]
		case len(f) >= 2 && f[0] == "add":
			key = f[1]
		}
	}
	names := make([]string, 0, len(entries))
	for k := range entries {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		fmt.Fprintf(&b, "  %s : %s\n", k, entries[k])
	}
	b.WriteString("}\n")
	return key, b.String()
}

func (f *fakeMac) Start(argv []string, stdin string) (darwinSession, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("start " + strings.Join(argv, " ") + ": " + stdin)
	s := &fakeSession{f: f, done: make(chan struct{})}
	f.sessions = append(f.sessions, s)
	if f.refuse != "" {
		s.out = f.refuse
		return s, nil
	}
	key, d := dump(stdin)
	f.store[key] = d
	s.keys = append(s.keys, key)
	return s, nil
}

func (f *fakeMac) Run(argv []string, stdin string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	cmd := strings.Join(argv, " ")
	f.record("run " + cmd + ": " + stdin)
	if cmd == ScutilPath+" --dns" {
		return f.dns, nil
	}
	if cmd != ScutilPath {
		return "", nil // the cache flush
	}
	verb, key, _ := strings.Cut(strings.TrimSpace(stdin), " ")
	switch verb {
	case "show":
		if f.showLag > 0 {
			f.showLag--
			return "  No such key\n", nil
		}
		if d, ok := f.store[key]; ok {
			return d, nil
		}
		return "  No such key\n", nil
	case "remove":
		if !f.stubborn {
			delete(f.store, key)
		}
	}
	return "", nil
}

func (s *fakeSession) Write(str string) error {
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	s.f.record("write: " + str)
	if verb, key, _ := strings.Cut(strings.TrimSpace(str), " "); verb == "remove" && !s.f.stubborn {
		delete(s.f.store, key)
	}
	return nil
}

// end is the child exiting: configd drops the session's temporary keys.
func (s *fakeSession) end() {
	s.once.Do(func() {
		s.f.mu.Lock()
		if !s.f.stubborn {
			for _, k := range s.keys {
				delete(s.f.store, k)
			}
		}
		s.f.mu.Unlock()
		close(s.done)
	})
}

func (s *fakeSession) Close(time.Duration) error {
	s.f.mu.Lock()
	s.f.record("close")
	s.f.mu.Unlock()
	s.end()
	return nil
}

func (s *fakeSession) Done() <-chan struct{} { return s.done }
func (s *fakeSession) Output() string        { return s.out }

func (f *fakeMac) callList() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func testSteering(t *testing.T, f *fakeMac) (*darwinSteering, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	cfg := Config{Tun: "utun6", Resolvers: []netip.Addr{netip.MustParseAddr("198.19.53.53"), netip.MustParseAddr("fd64:6e73:7475::53")}}
	s, err := newDarwinSteering(f, cfg, t.TempDir(), 4242, log)
	if err != nil {
		t.Fatal(err)
	}
	s.sleep = func(time.Duration) {}
	s.after = func(time.Duration) <-chan time.Time {
		c := make(chan time.Time, 1)
		c <- time.Time{}
		return c
	}
	return s, &logs
}

func index(calls []string, prefix string) int {
	return slices.IndexFunc(calls, func(c string) bool { return strings.HasPrefix(c, prefix) })
}

// TestDarwinApplyOrder asserts the order publish fixes: session started
// with the script, key read back until it holds what was published, the
// resolver list consulted, and only then the caches flushed.
func TestDarwinApplyOrder(t *testing.T) {
	f := newFakeMac()
	f.showLag = 2 // configd takes a moment
	f.dns = golden.MacFixture(t, "scutil-dns-captured.txt")
	s, logs := testSteering(t, f)
	if err := s.apply("utun6"); err != nil {
		t.Fatal(err)
	}
	calls := f.callList()
	show := "run " + ScutilPath + ": " + s.plan.Show
	want := []string{
		"start " + ScutilPath + ": " + s.plan.Script,
		show, show, show, // two "No such key", then the key
		"run " + ScutilPath + " --dns: ",
		"run /usr/bin/dscacheutil -flushcache: ",
		"run /usr/bin/killall -HUP mDNSResponder: ",
	}
	if !slices.Equal(calls, want) {
		t.Errorf("calls:\n%s\nwant:\n%s", strings.Join(calls, "\n"), strings.Join(want, "\n"))
	}
	if !strings.Contains(logs.String(), "configd lists dnstun's resolver first") {
		t.Errorf("log: %s", logs)
	}
	j, err := ReadJournal(s.dir)
	if err != nil || j == nil || j.Phase != "active" || j.OS != "darwin" || j.PID != 4242 || j.Darwin.Key != s.plan.Key {
		t.Fatalf("journal %+v %v", j, err)
	}

	// Withdraw: remove on the session, close it, check the key is gone,
	// flush, drop the journal; a second call does nothing.
	n := len(f.callList())
	if err := s.Withdraw(); err != nil {
		t.Fatal(err)
	}
	calls = f.callList()[n:]
	want = []string{"write: " + s.plan.Remove, "close", show,
		"run /usr/bin/dscacheutil -flushcache: ", "run /usr/bin/killall -HUP mDNSResponder: "}
	if !slices.Equal(calls, want) {
		t.Errorf("withdraw calls:\n%s\nwant:\n%s", strings.Join(calls, "\n"), strings.Join(want, "\n"))
	}
	if j, _ := ReadJournal(s.dir); j != nil || len(f.store) != 0 {
		t.Errorf("after withdraw: journal %+v store %v", j, f.store)
	}
	n = len(f.callList())
	if err := s.Withdraw(); err != nil || len(f.callList()) != n {
		t.Errorf("second withdraw: %v, %d more calls", err, len(f.callList())-n)
	}
}

func TestDarwinApplyFailures(t *testing.T) {
	t.Run("configd refuses the key", func(t *testing.T) {
		f := newFakeMac()
		f.refuse = "  add: Permission denied\n"
		s, _ := testSteering(t, f)
		err := s.apply("utun6")
		if err == nil || !strings.Contains(err.Error(), "Permission denied") || !strings.Contains(err.Error(), "nothing is steered") {
			t.Fatalf("err %v", err)
		}
		calls := f.callList()
		if index(calls, "run /usr/bin/dscacheutil") >= 0 || index(calls, "run "+ScutilPath+" --dns") >= 0 {
			t.Errorf("flushed or went on without a verified key: %v", calls)
		}
		if calls[len(calls)-1] != "close" {
			t.Errorf("session not closed: %v", calls)
		}
		if j, _ := ReadJournal(s.dir); j != nil {
			t.Errorf("journal left: %+v", j)
		}
	})
	t.Run("scutil exits at once", func(t *testing.T) {
		f := newFakeMac()
		f.refuse = "scutil: could not open the dynamic store\n"
		s, _ := testSteering(t, f)
		f.mu.Lock()
		f.showLag = 1000
		f.mu.Unlock()
		// The session ends before the key shows up.
		s.sleep = func(time.Duration) {
			f.mu.Lock()
			sess := f.sessions[0]
			f.mu.Unlock()
			sess.end()
		}
		err := s.apply("utun6")
		if err == nil || !strings.Contains(err.Error(), "exited before") || !strings.Contains(err.Error(), "could not open") {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("resolver not listed by configd", func(t *testing.T) {
		f := newFakeMac()
		f.dns = golden.MacFixture(t, "scutil-dns.txt")
		s, logs := testSteering(t, f)
		if err := s.apply("utun6"); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(logs.String(), "does not list dnstun's resolver first") || !strings.Contains(logs.String(), "192.168.1.1") {
			t.Errorf("log: %s", logs)
		}
		if index(f.callList(), "run /usr/bin/dscacheutil") < 0 {
			t.Error("verified key, but caches not flushed")
		}
	})
}

// A key that survives the session's remove and close is removed from a
// one-shot session; one that survives that too is an error.
func TestDarwinWithdrawEnsuresGone(t *testing.T) {
	f := newFakeMac()
	s, _ := testSteering(t, f)
	if err := s.apply("utun6"); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	f.stubborn = true
	f.mu.Unlock()
	err := s.Withdraw()
	if err == nil || !strings.Contains(err.Error(), "still in the dynamic store") {
		t.Fatalf("err %v", err)
	}
	calls := f.callList()
	if index(calls, "run "+ScutilPath+": "+s.plan.Remove) < 0 {
		t.Errorf("no one-shot remove: %v", calls)
	}

	// A key another process published since is left alone.
	f = newFakeMac()
	s, logs := testSteering(t, f)
	if err := s.apply("utun6"); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	f.stubborn = true
	f.store[s.plan.Key] = strings.Replace(f.store[s.plan.Key], "4242", "777", 1)
	f.mu.Unlock()
	if err := s.Withdraw(); err != nil || !strings.Contains(logs.String(), "another process") {
		t.Fatalf("err %v log %s", err, logs)
	}
	if index(f.callList(), "run "+ScutilPath+": "+s.plan.Remove) >= 0 {
		t.Error("removed another process's key")
	}
}

// When the scutil child dies, configd drops the key (fail-open); Monitor
// publishes it again, and returns once steering is withdrawn.
func TestDarwinMonitorRepublishes(t *testing.T) {
	f := newFakeMac()
	s, logs := testSteering(t, f)
	if err := s.apply("utun6"); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	ret := make(chan error, 1)
	go func() { ret <- s.Monitor(done) }()
	f.mu.Lock()
	first := f.sessions[0]
	f.mu.Unlock()
	first.end() // killed
	deadline := time.Now().Add(5 * time.Second)
	for {
		f.mu.Lock()
		n, has := len(f.sessions), f.store[s.plan.Key] != ""
		f.mu.Unlock()
		if n == 2 && has {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not published again: %v", f.callList())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := s.Withdraw(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-ret:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Monitor did not return after Withdraw")
	}
	if !strings.Contains(logs.String(), "session holding the resolver key ended") || !strings.Contains(logs.String(), "published again") {
		t.Errorf("log: %s", logs)
	}

	// done ends it too.
	f = newFakeMac()
	s, _ = testSteering(t, f)
	if err := s.apply("utun6"); err != nil {
		t.Fatal(err)
	}
	done = make(chan struct{})
	close(done)
	if err := s.Monitor(done); err != nil {
		t.Fatal(err)
	}
}

func TestSweepDarwin(t *testing.T) {
	key := darwinKey("")
	dead := func(int) bool { return false }
	live := func(int) bool { return true }
	keyDump := golden.MacFixture(t, "show-dnstun-key.txt") // DnstunPID 4242

	f := newFakeMac()
	f.store[key] = keyDump
	removed, err := sweepDarwin(f, 0, 1, dead, nil)
	if err != nil || len(removed) != 1 || !strings.Contains(removed[0], "no longer runs") || f.store[key] != "" {
		t.Fatalf("dead owner: %v %v %v", removed, err, f.store)
	}
	if index(f.callList(), "run /usr/bin/dscacheutil") < 0 {
		t.Error("no flush after removing the key")
	}

	f = newFakeMac()
	f.store[key] = keyDump
	var logs bytes.Buffer
	removed, err = sweepDarwin(f, 99, 1, live, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil || len(removed) != 0 || f.store[key] == "" || !strings.Contains(logs.String(), "which is running") {
		t.Fatalf("live owner: %v %v %s", removed, err, logs.String())
	}
	if index(f.callList(), "run "+ScutilPath+": remove") >= 0 {
		t.Error("removed a live instance's key")
	}

	f = newFakeMac()
	if removed, err := sweepDarwin(f, 4242, 1, dead, nil); err != nil || len(removed) != 0 {
		t.Fatalf("no key: %v %v", removed, err)
	}

	f = newFakeMac()
	f.store[key] = keyDump
	f.stubborn = true
	if _, err := sweepDarwin(f, 4242, 1, live, nil); err == nil || !strings.Contains(err.Error(), "still in the dynamic store") {
		t.Fatalf("stubborn key: %v", err)
	}
	if _, err := sweepDarwin(errSys{}, 0, 1, dead, nil); err == nil || !strings.Contains(err.Error(), "no scutil") {
		t.Fatalf("scutil failing: %v", err)
	}
}

type errSys struct{}

func (errSys) Start([]string, string) (darwinSession, error) { return nil, errors.New("no scutil") }
func (errSys) Run([]string, string) (string, error)          { return "", errors.New("no scutil") }

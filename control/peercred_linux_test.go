// SPDX-License-Identifier: MIT

package control

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/dnstun/dnstun/internal/privtest"
)

var procGroupsForTest = procGroups

func TestProcGroups(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "status")
	os.WriteFile(p, []byte("Name:\tx\nUid:\t1000\t1000\t1000\t1000\nGroups:\t4 24 27 65534 \nNgid:\t0\n"), 0o644)
	g, err := procGroupsForTest(p)
	if err != nil || !reflect.DeepEqual(g, []uint32{4, 24, 27, 65534}) {
		t.Errorf("got %v, %v", g, err)
	}
	os.WriteFile(p, []byte("Name:\tx\nGroups:\t\n"), 0o644)
	if g, err := procGroupsForTest(p); err != nil || len(g) != 0 {
		t.Errorf("empty groups: %v, %v", g, err)
	}
}

// The privileged tests below connect from a child process running as
// nobody (uid 65534, gid 65534 nogroup): the test binary re-executes
// itself with envChild naming the socket, and the child prints what the
// daemon answered.
const envChild = "DNSTUN_CONTROL_TEST_CHILD"

func TestMain(m *testing.M) {
	if path := os.Getenv(envChild); path != "" {
		os.Exit(childMain(path))
	}
	os.Exit(m.Run())
}

// childMain asks for status and prints "OK enabled=<bool>", "DENIED <msg>"
// or "ERR <msg>".
func childMain(path string) int {
	c, err := Dial(path)
	if err != nil {
		fmt.Println("ERR", err)
		return 0
	}
	defer c.Close()
	st, err := c.Status(context.Background())
	switch {
	case IsDenied(err):
		fmt.Println("DENIED", err)
	case err != nil:
		fmt.Println("ERR", err)
	default:
		fmt.Printf("OK enabled=%v\n", st.Enabled)
	}
	return 0
}

// runAsNobody runs the test binary as uid/gid 65534 against path.
func runAsNobody(t *testing.T, path string) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// The build directory is root's (0700): copy the binary where
	// nobody may run it.
	dir, err := os.MkdirTemp("", "dtcx")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "control.test")
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), envChild+"="+path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v: %s", err, out)
	}
	return strings.TrimSpace(string(out))
}

func privServe(t *testing.T, group string, h Handler, log *slog.Logger) *Server {
	t.Helper()
	dir, err := os.MkdirTemp("", "dtcs")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755) // the socket's mode decides, not the directory's
	s, err := Serve(context.Background(), filepath.Join(dir, "c.sock"), group, h, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestNonRootRefused: a user who is neither root nor in the group cannot
// use the socket: the 0600 mode stops it at connect, and the credential
// check stops it even when the mode would let it in.
func TestNonRootRefused(t *testing.T) {
	privtest.RequirePriv(t)
	var logBuf syncBuffer
	h := &fakeHandler{}
	s := privServe(t, "", h, slog.New(slog.NewTextHandler(&logBuf, nil)))
	if out := runAsNobody(t, s.Path()); !strings.HasPrefix(out, "ERR") || !strings.Contains(out, "permission denied") {
		t.Errorf("0600 socket: child got %q, want a refused connect", out)
	}
	// Loosen the mode: now only the peer check stands in the way.
	if err := os.Chmod(s.Path(), 0o666); err != nil {
		t.Fatal(err)
	}
	out := runAsNobody(t, s.Path())
	if out != "DENIED permission denied: uid 65534 is not root and no group is allowed (the control socket's group option names one)" {
		t.Errorf("child got %q", out)
	}
	if len(h.calls) != 0 {
		t.Errorf("a refused peer reached the handler: %v", h.calls)
	}
	if !strings.Contains(logBuf.String(), "peer refused") || !strings.Contains(logBuf.String(), "uid=65534") {
		t.Errorf("refusal not logged: %s", logBuf.String())
	}

	// A group that nobody is not in: refused by the credential check.
	s2 := privServe(t, "root", h, nil)
	os.Chmod(s2.Path(), 0o666)
	if out := runAsNobody(t, s2.Path()); out != "DENIED permission denied: uid 65534 is not root and not in group root" {
		t.Errorf("group root: child got %q", out)
	}
}

// TestGroupAllowed: with group nogroup the socket is 0660 root:nogroup and
// a member (here by primary gid) is served.
func TestGroupAllowed(t *testing.T) {
	privtest.RequirePriv(t)
	h := &fakeHandler{enabled: true}
	s := privServe(t, "nogroup", h, nil)
	fi, err := os.Lstat(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode().Perm() != 0o660 || st.Gid != 65534 || st.Uid != 0 {
		t.Errorf("socket mode %v owner %d:%d, want 0660 0:65534", fi.Mode().Perm(), st.Uid, st.Gid)
	}
	if out := runAsNobody(t, s.Path()); out != "OK enabled=true" {
		t.Errorf("child got %q", out)
	}
	// By number too.
	s2 := privServe(t, "65534", h, nil)
	if out := runAsNobody(t, s2.Path()); out != "OK enabled=true" {
		t.Errorf("group 65534: child got %q", out)
	}
}

// TestSupplementaryGroupAllowed: membership through a supplementary group
// (read from /proc/<pid>/status) is enough.
func TestSupplementaryGroupAllowed(t *testing.T) {
	privtest.RequirePriv(t)
	h := &fakeHandler{}
	s := privServe(t, "65533", h, nil)
	os.Chmod(s.Path(), 0o666) // gid 65533 has no /etc/group entry to own the file usefully
	exe, _ := os.Executable()
	dir, _ := os.MkdirTemp("", "dtcx")
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	b, _ := os.ReadFile(exe)
	bin := filepath.Join(dir, "control.test")
	os.WriteFile(bin, b, 0o755)
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), envChild+"="+s.Path())
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{65533}}}
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "OK enabled=false" {
		t.Errorf("child: %v %q", err, out)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// SPDX-License-Identifier: MIT

//go:build unix

package route

import (
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The real session, with /bin/sh standing in for scutil: it starts in its
// own process group (so a terminal's Ctrl-C/Ctrl-Z does not reach it), its
// output is kept, and closing its stdin ends it.
func TestExecSession(t *testing.T) {
	sys := newExecSys()
	s, err := sys.Start([]string{"/bin/sh", "-c", `while read -r l; do echo "got $l"; done; echo bye >&2`}, "d.init\n")
	if err != nil {
		t.Fatal(err)
	}
	es := s.(*execSession)
	t.Cleanup(func() { s.Close(time.Second) })
	pgid, err := syscall.Getpgid(es.pid())
	if err != nil {
		t.Fatal(err)
	}
	if pgid != es.pid() || pgid == syscall.Getpgrp() {
		t.Errorf("child pgid %d, its pid %d, ours %d: want a group of its own", pgid, es.pid(), syscall.Getpgrp())
	}
	if err := s.Write("remove K\n"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.Done():
	default:
		t.Fatal("Done not closed after Close")
	}
	if got := s.Output(); got != "got d.init\ngot remove K\nbye\n" {
		t.Errorf("output %q", got)
	}
	if err := s.Write("late\n"); err == nil {
		t.Error("write after close succeeded")
	}
}

// A child that does not end when its stdin closes is killed, by pid.
func TestExecSessionKilled(t *testing.T) {
	s, err := newExecSys().Start([]string{"/bin/sh", "-c", "exec sleep 30"}, "")
	if err != nil {
		t.Fatal(err)
	}
	pid := s.(*execSession).pid()
	err = s.Close(100 * time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("err %v", err)
	}
	if pidAlive(pid) {
		t.Errorf("pid %d still alive", pid)
	}
	if !pidAlive(os.Getpid()) {
		t.Error("pidAlive(self) = false")
	}
}

func TestExecRun(t *testing.T) {
	sys := newExecSys()
	out, err := sys.Run([]string{"/bin/sh", "-c", "cat; echo err >&2"}, "show K\n")
	if err != nil || out != "show K\nerr\n" {
		t.Fatalf("%q %v", out, err)
	}
	out, err = sys.Run([]string{"/bin/sh", "-c", "echo no such thing; exit 3"}, "")
	if err == nil || !strings.Contains(err.Error(), "/bin/sh -c") || !strings.Contains(err.Error(), "exit status 3") || out != "no such thing\n" {
		t.Fatalf("%q %v", out, err)
	}
	sys.timeout = 100 * time.Millisecond
	if _, err := sys.Run([]string{"/bin/sh", "-c", "exec sleep 30"}, ""); err == nil {
		t.Fatal("a hung command was not stopped")
	}
	if _, err := sys.Start([]string{"/nonexistent/scutil"}, ""); err == nil || !strings.Contains(err.Error(), "/nonexistent/scutil") {
		t.Fatalf("start of a missing tool: %v", err)
	}
}

func TestBoundedBuffer(t *testing.T) {
	var b boundedBuffer
	b.Write([]byte(strings.Repeat("x", maxOutput-1)))
	b.Write([]byte("yz"))
	if got := b.String(); len(got) != maxOutput+len("...(cut)") || !strings.HasSuffix(got, "y...(cut)") {
		t.Errorf("len %d, tail %q", len(got), got[len(got)-12:])
	}
}

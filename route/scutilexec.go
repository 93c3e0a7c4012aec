// SPDX-License-Identifier: MIT

//go:build unix

package route

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// execSys runs the macOS tools for darwinSteering. It builds on every unix
// so that its process handling is tested on Linux with a stand-in scutil.
//
// Every child starts in its own process group (Setpgid): a terminal's
// Ctrl-C (SIGINT) or Ctrl-Z (SIGTSTP) goes to the foreground group, and
// must reach dnstun, which withdraws capture in order, but not the scutil
// child, whose death would silently withdraw capture and whose stop would
// leave the key pointing at a dnstun that may be gone.
type execSys struct {
	// timeout bounds each Run.
	timeout time.Duration
}

func newExecSys() execSys { return execSys{timeout: 10 * time.Second} }

// maxOutput bounds what is kept of a child's output.
const maxOutput = 32 << 10

func (e execSys) Run(argv []string, stdin string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), e.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
	}
	return string(out), nil
}

func (e execSys) Start(argv []string, stdin string) (darwinSession, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	s := &execSession{cmd: cmd, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = &s.out, &s.out
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	s.in = in
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
	}
	go func() {
		s.waitErr = cmd.Wait()
		close(s.done)
	}()
	if err := s.Write(stdin); err != nil {
		s.Close(closeWait)
		return nil, err
	}
	return s, nil
}

// execSession is a long-lived child with its stdin kept open.
type execSession struct {
	cmd     *exec.Cmd
	in      io.WriteCloser
	out     boundedBuffer
	done    chan struct{}
	waitErr error // set before done closes
	mu      sync.Mutex
}

func (s *execSession) Write(str string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := io.WriteString(s.in, str); err != nil {
		return fmt.Errorf("write to %s: %w", s.cmd.Path, err)
	}
	return nil
}

// Close closes stdin, waits up to timeout for the child to exit, and kills
// it (only it: its pid, never a name) if it does not.
func (s *execSession) Close(timeout time.Duration) error {
	s.mu.Lock()
	s.in.Close()
	s.mu.Unlock()
	select {
	case <-s.done:
	case <-time.After(timeout):
		s.cmd.Process.Kill()
		<-s.done
		return fmt.Errorf("%s did not exit within %v of its stdin closing; killed", s.cmd.Path, timeout)
	}
	var ee *exec.ExitError
	if s.waitErr != nil && !errors.As(s.waitErr, &ee) {
		return s.waitErr
	}
	return nil
}

func (s *execSession) Done() <-chan struct{} { return s.done }
func (s *execSession) Output() string        { return s.out.String() }
func (s *execSession) pid() int              { return s.cmd.Process.Pid }

// boundedBuffer keeps the first maxOutput bytes written to it.
type boundedBuffer struct {
	mu  sync.Mutex
	b   bytes.Buffer
	cut bool
}

func (b *boundedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := maxOutput - b.b.Len(); room < len(p) {
		b.b.Write(p[:max(room, 0)])
		b.cut = true
		return len(p), nil
	}
	return b.b.Write(p)
}

func (b *boundedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cut {
		return b.b.String() + "...(cut)"
	}
	return b.b.String()
}

// pidAlive reports whether a process with that pid exists.
func pidAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

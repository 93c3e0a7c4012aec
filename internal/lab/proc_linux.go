// SPDX-License-Identifier: MIT

package lab

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// Cmd describes a process to run inside a namespace.
type Cmd struct {
	// Args is the program (a path, or a name looked up in PATH) and its
	// arguments.
	Args []string
	// Env is added to this process's environment.
	Env []string
	// CPUs pins the process with `taskset -c CPUS` ("1", "0,2"); empty
	// means not pinned.
	CPUs string
	// LogLimit bounds the output kept (the first LogLimit bytes); 0 keeps
	// everything.
	LogLimit int
	// StopWait is how long Stop waits after SIGTERM before it kills;
	// 0 means 5 s.
	StopWait time.Duration
}

// Proc is a process started inside a namespace.
type Proc struct {
	cmd     *exec.Cmd
	started time.Time
	done    chan struct{}
	limit   int
	wait    time.Duration

	mu   sync.Mutex
	log  bytes.Buffer
	werr error
}

// start runs `[taskset -c CPUS] ip netns exec NS args...`. taskset and ip
// both exec, so the PID is the program's own.
func start(ns *NS, c Cmd) (*Proc, error) {
	if len(c.Args) == 0 {
		return nil, errors.New("lab: Cmd.Args is empty")
	}
	argv := append([]string{"ip", "netns", "exec", ns.Name}, c.Args...)
	if c.CPUs != "" {
		argv = append([]string{"taskset", "-c", c.CPUs}, argv...)
	}
	p := &Proc{done: make(chan struct{}), limit: c.LogLimit, wait: c.StopWait}
	if p.wait <= 0 {
		p.wait = 5 * time.Second
	}
	p.cmd = exec.Command(argv[0], argv[1:]...)
	if len(c.Env) > 0 {
		p.cmd.Env = append(os.Environ(), c.Env...)
	}
	// One writer for both streams: exec then shares one pipe and one
	// copying goroutine, and every write takes p.mu.
	w := &procWriter{p: p}
	p.cmd.Stdout, p.cmd.Stderr = w, w
	// Own process group: a Ctrl-C on the terminal reaches the driver,
	// which stops its children in order (and removes the namespaces).
	// No Pdeathsig: it fires when the forking OS thread exits, and Go
	// ends threads that a goroutine left locked (NS.Do, loadgen's pacer).
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p.started = time.Now()
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("lab: start %s in %s: %w", c.Args[0], ns.Name, err)
	}
	go func() {
		err := p.cmd.Wait()
		p.mu.Lock()
		p.werr = err
		p.mu.Unlock()
		close(p.done)
	}()
	return p, nil
}

type procWriter struct{ p *Proc }

func (w *procWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	if w.p.limit == 0 {
		w.p.log.Write(b)
	} else if room := w.p.limit - w.p.log.Len(); room > 0 {
		w.p.log.Write(b[:min(room, len(b))])
	}
	return len(b), nil
}

// Pid is the program's process ID.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Started is when the process was started.
func (p *Proc) Started() time.Time { return p.started }

// Done is closed when the process has exited (and its output is in Log).
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Err is the process's exit error (nil for status 0, or while it runs).
func (p *Proc) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.werr
}

// Log returns what the process printed so far (stdout and stderr
// interleaved; the first Cmd.LogLimit bytes if set).
func (p *Proc) Log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// Signal sends sig to the process (by PID); it does nothing once the
// process has exited.
func (p *Proc) Signal(sig os.Signal) error {
	if p.Exited() {
		return nil
	}
	return p.cmd.Process.Signal(sig)
}

// Stop sends SIGTERM (by PID), waits up to Cmd.StopWait (5 s) for the
// process to exit and kills it after that. It returns the exit error, or an error saying it
// had to kill. A process that has already exited is left as it is.
func (p *Proc) Stop() error {
	if p.Exited() {
		return p.Err()
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.Err()
	case <-time.After(p.wait):
		p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("lab: pid %d did not stop within %v of SIGTERM; killed", p.Pid(), p.wait)
	}
}

// Kill sends SIGKILL (by PID) and waits for the process to exit.
func (p *Proc) Kill() {
	if !p.Exited() {
		p.cmd.Process.Kill()
	}
	<-p.done
}

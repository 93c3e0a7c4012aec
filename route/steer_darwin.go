// SPDX-License-Identifier: MIT

package route

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// Steering is capture applied on macOS: a temporary dynamic-store resolver
// held by a scutil child. Compiled and vetted on Linux only; see README for
// how to verify it on a Mac.
type Steering struct {
	plan DarwinPlan
	dir  string
	log  *slog.Logger

	mu        sync.Mutex
	withdrawn bool
	scutil    *exec.Cmd
	in        io.WriteCloser
}

// Apply publishes the virtual resolvers as the system's default resolver.
func Apply(cfg Config, dir string, log *slog.Logger) (*Steering, error) {
	if log == nil {
		log = slog.Default()
	}
	s := &Steering{plan: PlanDarwin(DarwinConfig{Resolvers: cfg.Resolvers}), dir: dir, log: log}
	j := &Journal{PID: os.Getpid(), Started: time.Now().UTC(), Phase: "applying", OS: "darwin", Darwin: &s.plan, Tun: cfg.Tun}
	if err := WriteJournal(dir, j); err != nil {
		return nil, err
	}
	cmd := exec.Command("/usr/sbin/scutil")
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		RemoveJournal(dir)
		return nil, fmt.Errorf("capture: start scutil: %w", err)
	}
	s.scutil, s.in = cmd, in
	if _, err := io.WriteString(in, s.plan.Script); err != nil {
		s.Withdraw()
		return nil, fmt.Errorf("capture: publish %s: %w", s.plan.Key, err)
	}
	s.flush()
	j.Phase = "active"
	if err := WriteJournal(dir, j); err != nil {
		s.Withdraw()
		return nil, err
	}
	log.Info("capture on", "key", s.plan.Key)
	return s, nil
}

func (s *Steering) flush() {
	for _, c := range s.plan.Flush {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			s.log.Warn("flush DNS cache failed", "cmd", strings.Join(c, " "), "err", err, "output", string(out))
		}
	}
}

// Withdraw removes the key, ends the scutil session, flushes caches and
// removes the journal. Idempotent.
func (s *Steering) Withdraw() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.withdrawn {
		return nil
	}
	s.withdrawn = true
	if s.in != nil {
		io.WriteString(s.in, s.plan.Remove)
		s.in.Close()
		done := make(chan struct{})
		go func() { s.scutil.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
			s.scutil.Process.Kill()
		}
	}
	s.flush()
	return RemoveJournal(s.dir)
}

// Monitor returns when done closes (following network changes on macOS is
// later work).
func (s *Steering) Monitor(done <-chan struct{}) error {
	<-done
	return nil
}

// Sweep removes dnstun's fixed dynamic-store key, should one have been left.
func Sweep(table int, log *slog.Logger) ([]string, error) {
	key := PlanDarwin(DarwinConfig{}).Key
	cmd := exec.Command("/usr/sbin/scutil")
	cmd.Stdin = strings.NewReader("remove " + key + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("scutil remove %s: %v: %s", key, err, out)
	}
	return nil, nil
}

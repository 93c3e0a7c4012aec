// SPDX-License-Identifier: MIT

package route

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/dnstun/dnstun/internal/macos"
)

// This file has no _darwin suffix on purpose: the order in which macOS
// capture publishes, checks, flushes and withdraws is OS-neutral and
// tested on Linux with a fake system; steer_darwin.go gives it the real
// one (execSys).

// darwinSys is what the macOS applier needs from the system.
type darwinSys interface {
	// Start starts argv as a long-lived child in its own process group,
	// writes stdin to it and keeps its stdin open.
	Start(argv []string, stdin string) (darwinSession, error)
	// Run runs argv to completion with stdin and returns what it printed
	// (stdout and stderr); the error says how it failed.
	Run(argv []string, stdin string) (string, error)
}

// darwinSession is a long-lived scutil child.
type darwinSession interface {
	// Write sends more script to the child.
	Write(s string) error
	// Close closes the child's stdin (scutil then exits and configd drops
	// its temporary keys) and waits up to timeout before killing it.
	Close(timeout time.Duration) error
	// Done is closed once the child has exited.
	Done() <-chan struct{}
	// Output is what the child printed so far (bounded).
	Output() string
}

// darwinSteering is capture applied on macOS: a temporary dynamic-store
// resolver held by a scutil child.
type darwinSteering struct {
	sys   darwinSys
	plan  DarwinPlan
	cfg   DarwinConfig
	dir   string
	log   *slog.Logger
	sleep func(time.Duration)
	after func(time.Duration) <-chan time.Time
	// verifyWait bounds the wait for the key to read back, activeWait the
	// wait for scutil --dns to list the resolver, step the polling.
	verifyWait, activeWait, step time.Duration

	mu        sync.Mutex
	withdrawn bool
	sess      darwinSession
}

const (
	closeWait  = 2 * time.Second
	maxBackoff = 30 * time.Second
)

var scutilArgv = []string{ScutilPath}

func newDarwinSteering(sys darwinSys, cfg Config, dir string, pid int, log *slog.Logger) (*darwinSteering, error) {
	if log == nil {
		log = slog.Default()
	}
	dc := DarwinConfig{Resolvers: cfg.Resolvers, PID: pid}
	plan, err := PlanDarwin(dc)
	if err != nil {
		return nil, err
	}
	return &darwinSteering{sys: sys, plan: plan, cfg: dc, dir: dir, log: log,
		sleep: time.Sleep, after: time.After,
		verifyWait: 3 * time.Second, activeWait: 3 * time.Second, step: 100 * time.Millisecond}, nil
}

// apply journals, publishes and journals again; on failure nothing is
// left: no key, no journal.
func (s *darwinSteering) apply(tun string) error {
	j := &Journal{PID: s.cfg.PID, BootID: BootID(), Started: time.Now().UTC(), Phase: "applying", OS: "darwin", Darwin: &s.plan, Tun: tun}
	if err := WriteJournal(s.dir, j); err != nil {
		return err
	}
	s.mu.Lock()
	err := s.publish()
	s.mu.Unlock()
	if err != nil {
		return errors.Join(err, RemoveJournal(s.dir))
	}
	j.Phase = "active"
	if err := WriteJournal(s.dir, j); err != nil {
		return errors.Join(err, s.Withdraw())
	}
	s.log.Info("capture on", "tun", tun, "key", s.plan.Key, "resolvers", s.cfg.Resolvers)
	return nil
}

// publish fixes the order of the macOS steps: start the session with the
// script, read the key back from a second scutil until it holds what was
// published (scutil exits 0 whatever its commands did), wait for configd
// to list the resolver (logged either way), and only then flush the DNS
// caches. On failure the session is closed, so configd drops anything it
// did publish. s.mu is held.
func (s *darwinSteering) publish() error {
	sess, err := s.sys.Start(scutilArgv, s.plan.Script)
	if err != nil {
		return fmt.Errorf("capture: start %s: %w; nothing is steered", ScutilPath, err)
	}
	if err := s.verify(sess); err != nil {
		sess.Close(closeWait)
		return err
	}
	s.sess = sess
	s.awaitResolver()
	s.flush()
	return nil
}

func (s *darwinSteering) verify(sess darwinSession) error {
	var last error
	for waited := time.Duration(0); ; waited += s.step {
		select {
		case <-sess.Done():
			return fmt.Errorf("capture: %s exited before %s was published; it printed %q; nothing is steered", ScutilPath, s.plan.Key, sess.Output())
		default:
		}
		out, err := s.sys.Run(scutilArgv, s.plan.Show)
		if err != nil {
			last = fmt.Errorf("%w: %s", err, strings.TrimSpace(out))
		} else if last = VerifyDarwinKey(out, s.cfg); last == nil {
			return nil
		}
		if waited >= s.verifyWait {
			return fmt.Errorf("capture: publishing %s failed: %v; the publishing scutil printed %q; nothing is steered (is dnstun running as root?)", s.plan.Key, last, sess.Output())
		}
		s.sleep(s.step)
	}
}

// awaitResolver waits for configd to make the published key the default
// resolver in scutil --dns, and logs what it found. Not finding it is a
// warning, not a failure: the key is in place and configd may apply it
// later.
func (s *darwinSteering) awaitResolver() {
	var def macos.Resolver
	for waited := time.Duration(0); ; waited += s.step {
		out, err := s.sys.Run([]string{ScutilPath, "--dns"}, "")
		if err == nil {
			var ok bool
			if def, ok = resolverListed(out, s.cfg.Resolvers); ok {
				s.log.Info("capture: configd lists dnstun's resolver first", "resolver", def.Index, "nameservers", def.Nameservers, "order", def.Order, "flags", def.Flags)
				return
			}
		}
		if waited >= s.activeWait {
			s.log.Warn("capture: the resolver key is published but scutil --dns does not list dnstun's resolver first yet; names may not go through dnstun",
				"key", s.plan.Key, "default_resolver", def.Nameservers, "default_if", def.IfName, "err", err)
			return
		}
		s.sleep(s.step)
	}
}

func (s *darwinSteering) flush() {
	for _, c := range s.plan.Flush {
		if out, err := s.sys.Run(c, ""); err != nil {
			s.log.Warn("flush DNS cache failed", "cmd", strings.Join(c, " "), "err", err, "output", strings.TrimSpace(out))
		}
	}
}

// Withdraw removes the key, ends the scutil session, checks that the key
// is gone (removing it from a one-shot session if not), flushes the caches
// and removes the journal. Idempotent.
func (s *darwinSteering) Withdraw() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.withdrawn {
		return nil
	}
	s.withdrawn = true
	var errs []error
	if s.sess != nil {
		// Ending the session removes a temporary key by itself; the explicit
		// remove makes it immediate. Neither failing is fatal: the check
		// below decides.
		if err := s.sess.Write(s.plan.Remove); err != nil {
			s.log.Debug("capture: write remove to scutil", "err", err)
		}
		if err := s.sess.Close(closeWait); err != nil {
			s.log.Debug("capture: scutil session", "err", err, "output", s.sess.Output())
		}
		s.sess = nil
	}
	if err := s.ensureGone(); err != nil {
		errs = append(errs, err)
	}
	s.flush()
	errs = append(errs, RemoveJournal(s.dir))
	return errors.Join(errs...)
}

// ensureGone checks that the key is gone and removes it if it is still
// there and still ours.
func (s *darwinSteering) ensureGone() error {
	out, err := s.sys.Run(scutilArgv, s.plan.Show)
	if err != nil {
		return fmt.Errorf("capture: check that %s is gone: %w", s.plan.Key, err)
	}
	v, missing, err := macos.ParseShow(out)
	if err != nil {
		return fmt.Errorf("capture: check that %s is gone: %w", s.plan.Key, err)
	}
	if missing {
		return nil
	}
	if owner := v.String(MarkerKey); owner != fmt.Sprint(s.cfg.PID) {
		s.log.Warn("capture: the resolver key now belongs to another process; left alone", "key", s.plan.Key, "owner_pid", owner)
		return nil
	}
	out, err = s.sys.Run(scutilArgv, s.plan.Remove)
	if err != nil {
		return fmt.Errorf("capture: remove %s: %w: %s", s.plan.Key, err, out)
	}
	if out, _ := s.sys.Run(scutilArgv, s.plan.Show); !isMissing(out) {
		return fmt.Errorf("capture: %s is still in the dynamic store after remove (%s); run `sudo dnstun cleanup`", s.plan.Key, strings.TrimSpace(out))
	}
	return nil
}

func isMissing(show string) bool {
	_, missing, err := macos.ParseShow(show)
	return err == nil && missing
}

// Monitor keeps the key published until done closes: when the scutil
// session ends on its own (killed, crashed), configd has removed the key
// and the Mac's DNS has fallen back to its own resolvers (fail-open); the
// key is published again, with backoff while that fails. It returns nil
// when done closes or once steering is withdrawn. (Following network
// changes needs nothing here: the key names only dnstun's own addresses.)
func (s *darwinSteering) Monitor(done <-chan struct{}) error {
	backoff := time.Second
	for {
		s.mu.Lock()
		sess, withdrawn := s.sess, s.withdrawn
		s.mu.Unlock()
		if withdrawn {
			return nil
		}
		var wake <-chan struct{}
		var retry <-chan time.Time
		if sess != nil {
			wake = sess.Done()
		} else {
			retry = s.after(backoff)
		}
		select {
		case <-done:
			return nil
		case <-wake:
		case <-retry:
		}
		s.mu.Lock()
		if s.withdrawn {
			s.mu.Unlock()
			return nil
		}
		if sess != nil && s.sess == sess {
			s.log.Error("capture: the scutil session holding the resolver key ended, so configd removed the key and the Mac's DNS no longer goes through dnstun; publishing it again",
				"key", s.plan.Key, "scutil_output", sess.Output())
			s.sess = nil
		}
		err := s.publish()
		s.mu.Unlock()
		if err != nil {
			s.log.Error("capture: publishing the resolver key again failed; retrying", "in", backoff, "err", err)
			backoff = min(2*backoff, maxBackoff)
			continue
		}
		s.log.Info("capture: resolver key published again", "key", s.plan.Key)
		backoff = time.Second
	}
}

// sweepDarwin removes dnstun's key when DecideSweep says it is ours, then
// checks it is gone and flushes the caches.
func sweepDarwin(sys darwinSys, journalPID, self int, alive func(int) bool, log *slog.Logger) ([]string, error) {
	if log == nil {
		log = slog.Default()
	}
	key := darwinKey("")
	show, remove := "show "+key+"\n", "remove "+key+"\n"
	out, err := sys.Run(scutilArgv, show)
	if err != nil {
		return nil, fmt.Errorf("cleanup: read %s: %w: %s", key, err, out)
	}
	ok, why, err := DecideSweep(out, journalPID, self, alive)
	if err != nil {
		return nil, fmt.Errorf("cleanup: %w", err)
	}
	if !ok {
		if why != "" {
			log.Warn("cleanup: "+why, "key", key)
		}
		return nil, nil
	}
	if out, err := sys.Run(scutilArgv, remove); err != nil {
		return nil, fmt.Errorf("cleanup: remove %s: %w: %s", key, err, out)
	}
	if out, _ := sys.Run(scutilArgv, show); !isMissing(out) {
		return nil, fmt.Errorf("cleanup: %s is still in the dynamic store after remove: %s", key, strings.TrimSpace(out))
	}
	for _, c := range darwinFlush {
		if out, err := sys.Run(c, ""); err != nil {
			log.Warn("flush DNS cache failed", "cmd", strings.Join(c, " "), "err", err, "output", strings.TrimSpace(out))
		}
	}
	return []string{"dynamic-store key " + key + " (" + why + ")"}, nil
}

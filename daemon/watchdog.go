// SPDX-License-Identifier: MIT

package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/dnstun/dnstun/config"
	"github.com/dnstun/dnstun/engine"
)

// ProbeName is what the forwarded probe asks: a name under .invalid, which
// resolvers answer NXDOMAIN themselves (RFC 6761 6.4), so the probe costs
// the upstream nothing and never reaches the root. It is not HealthName,
// which the engine answers without forwarding.
const ProbeName = "dnstun-probe.invalid"

// UpstreamMisses is how many forwarded probes in a row must go unanswered
// before the upstreams are reported lost.
const UpstreamMisses = 2

// health is what the upstream watchdog knows of a session.
type health struct {
	lost      bool
	since     time.Time
	why       string
	withdrawn bool // capture withdrawn because the upstreams were lost
}

// upstreamCheckInterval is how often the upstreams are checked: five
// watchdog intervals, at least the client timeout (a probe's answer is
// due within it).
func upstreamCheckInterval(o *config.Options) time.Duration {
	return max(5*o.Capture.Watchdog, o.Timeout)
}

// forwardProbe asks dnstun itself, as a client would, for ProbeName, so
// the query takes the whole path: front-end, engine, upstream. Any answer
// but SERVFAIL shows an upstream answered (SERVFAIL is what the engine
// gives when none did, or there is none to ask).
func forwardProbe(o *config.Options) func(context.Context) error {
	addr := netip.AddrPortFrom(o.Resolvers[0], 53)
	if o.Mode == "flow" {
		addr = o.Listen
		if addr.Addr().IsUnspecified() {
			lo := netip.IPv6Loopback()
			if addr.Addr().Is4() {
				lo = netip.AddrFrom4([4]byte{127, 0, 0, 1})
			}
			addr = netip.AddrPortFrom(lo, addr.Port())
		}
	}
	timeout := o.Timeout + 500*time.Millisecond
	return func(ctx context.Context) error {
		rcode, err := probe(ctx, addr, ProbeName, timeout)
		if err != nil {
			return fmt.Errorf("no answer from %v within %v: %w", addr, timeout, err)
		}
		if rcode == rcodeServFail {
			return errors.New("SERVFAIL: no upstream answered")
		}
		return nil
	}
}

const rcodeServFail = 2

// watchUpstreams checks every interval that forwarded queries are
// answered. While upstream answers reach clients it sends nothing; when
// none did during an interval, it sends one forwarded probe. After
// UpstreamMisses probes in a row fail, the upstreams are reported lost
// (log, status) and, with capture, steering is withdrawn so that the
// machine's DNS goes to its resolvers directly; it is put back once a
// probe is answered again.
func (d *Daemon) watchUpstreams(ctx context.Context, s *session, interval time.Duration, probe func(context.Context) error) {
	replied := func() uint64 { st := s.e.Stats(); return st.Counters[engine.Replied] }
	last, misses := replied(), 0
	every(ctx, interval, func() {
		if now := replied(); now != last {
			last, misses = now, 0
			d.upstreamsAnswer(ctx, s)
			return
		}
		err := probe(ctx)
		last = replied()
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			misses = 0
			d.upstreamsAnswer(ctx, s)
			return
		}
		if misses++; misses == UpstreamMisses {
			d.upstreamsLost(s, err)
		}
	})
}

// upstreamsLost reports the upstreams lost and, with capture, withdraws
// steering.
func (d *Daemon) upstreamsLost(s *session, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.on != s {
		return
	}
	s.health = health{lost: true, since: time.Now(), why: err.Error()}
	if len(s.e.UpstreamStates()) == 0 {
		s.health.why = "no upstream to ask (the system lists no usable resolver)"
	}
	d.log.Error("watchdog: no upstream answers; forwarded queries get SERVFAIL", "why", s.health.why)
	if s.capture == nil {
		return
	}
	if err := s.capture.Stop(); err != nil {
		d.log.Error("withdrawing steering was incomplete; run `dnstun cleanup`", "err", err)
	}
	s.capture, s.health.withdrawn = nil, true
	d.log.Warn("steering withdrawn until an upstream answers: the machine's DNS goes to its resolvers directly")
}

// upstreamsAnswer clears a lost state and puts steering back.
func (d *Daemon) upstreamsAnswer(ctx context.Context, s *session) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.on != s || !s.health.lost {
		return
	}
	d.log.Info("watchdog: upstreams answer again", "lost_for", time.Since(s.health.since).Round(time.Second))
	if s.health.withdrawn {
		if err := d.steer(ctx, s); err != nil {
			d.log.Error("steering not restored; trying again at the next check", "err", err)
			return
		}
		d.log.Info("steering restored")
	}
	s.health = health{}
}

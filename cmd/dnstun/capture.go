// SPDX-License-Identifier: MIT

package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"time"

	"github.com/dnstun/dnstun/route"
	"github.com/dnstun/dnstun/upstream"
	"github.com/miekg/dns"
)

// healthName is answered by the engine itself; the self-test and the
// watchdog probe the data path with it. .invalid never resolves anywhere
// (RFC 6761).
const healthName = "dnstun-health.invalid"

// captureConfig holds the --capture options.
type captureConfig struct {
	on       bool
	stateDir string
	nft      bool
	resolved string // auto, on, off
	watchdog time.Duration
	setup    upstream.Setup
}

// cleanupLeftovers undoes what a dead instance left: the rules, routes and
// nftables table of its journal (if any) and, by tag, any others. The
// caller holds the lock, so no live instance owns them.
func cleanupLeftovers(dir string, log *slog.Logger) ([]string, error) {
	j, jerr := route.ReadJournal(dir)
	table := route.DefaultTable
	if j != nil {
		log.Info("an earlier dnstun left state behind; cleaning up", "pid", j.PID, "boot_id", j.BootID, "phase", j.Phase, "started", j.Started)
		if j.Linux != nil && len(j.Linux.Routes) > 0 {
			table = j.Linux.Routes[0].Table
		}
	}
	removed, err := route.Sweep(table, log)
	if table != route.DefaultTable {
		more, err2 := route.Sweep(route.DefaultTable, log)
		removed, err = append(removed, more...), errors.Join(err, err2)
	}
	if err == nil {
		err = route.RemoveJournal(dir)
	}
	return removed, errors.Join(jerr, err)
}

// cmdCleanup is `dnstun cleanup`: it refuses while a live instance holds
// the lock, else removes whatever a dead one left.
func cmdCleanup(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("cleanup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("state-dir", route.DefaultStateDir, "the state directory of the instance to clean up after")
	level := fs.String("log-level", "warn", "debug, info, warn or error")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	log, err := newLogger(stderr, *level)
	if err != nil {
		return err
	}
	lock, err := route.TryLock(*dir)
	if err != nil {
		return fmt.Errorf("%w; stop it first (cleanup never touches a running instance's state)", err)
	}
	defer lock.Unlock()
	removed, err := cleanupLeftovers(*dir, log)
	for _, r := range removed {
		fmt.Fprintln(stdout, "removed", r)
	}
	if err == nil && len(removed) == 0 {
		fmt.Fprintln(stdout, "nothing to clean up")
	}
	return err
}

// selfTest waits up to 3 s for the engine to answer the health probe.
func selfTest(ctx context.Context, addr netip.AddrPort) error {
	deadline := time.Now().Add(3 * time.Second)
	for {
		err := probe(ctx, addr, 300*time.Millisecond)
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
	}
}

// probe sends the health query to the virtual resolver from an ordinary
// (unmarked) socket, so it takes the same path as a client's query.
func probe(ctx context.Context, addr netip.AddrPort, timeout time.Duration) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "udp", addr.String())
	if err != nil {
		return err
	}
	defer c.Close()
	m := new(dns.Msg)
	m.SetQuestion(healthName+".", dns.TypeA)
	var id [2]byte
	rand.Read(id[:])
	m.Id = binary.BigEndian.Uint16(id[:])
	b, _ := m.Pack()
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write(b); err != nil {
		return err
	}
	buf := make([]byte, 512)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return err
		}
		var r dns.Msg
		if r.Unpack(buf[:n]) == nil && r.Id == m.Id && r.Response {
			return nil
		}
	}
}

// watchdog calls probe every interval; after failures consecutive failures
// it reports on stalled and returns. A hang is the one failure that
// kernel-owned lifetimes do not cover: this turns it into a withdrawal.
func watchdog(ctx context.Context, probe func(context.Context) error, interval time.Duration, failures int, stalled chan<- error) {
	t := time.NewTicker(interval)
	defer t.Stop()
	bad := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := probe(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			if bad++; bad >= failures {
				stalled <- err
				return
			}
			continue
		}
		bad = 0
	}
}

// registerResolved registers the TUN with systemd-resolved when asked to,
// or (auto) when resolved is the system resolver and dnstun runs in the
// host's own network namespace: resolved lives there, and would otherwise
// apply the settings to whatever link has the same index in its namespace.
func registerResolved(c *runConfig, tunName string, log *slog.Logger) bool {
	if runtime.GOOS != "linux" {
		return false
	}
	switch c.capture.resolved {
	case "off":
		return false
	case "auto":
		if c.capture.setup.Kind != "systemd-resolved" {
			return false
		}
		if !inInitialNetns() {
			log.Warn("systemd-resolved is the system resolver, but dnstun runs in another network namespace: not registering (use --resolved on to force)")
			return false
		}
	}
	if _, err := exec.LookPath("resolvectl"); err != nil {
		log.Warn("systemd-resolved registration skipped: resolvectl not found; resolved's stub at 127.0.0.53 is not steered", "err", err)
		return false
	}
	for _, cmd := range route.ResolvedPlan(tunName, c.resolvers) {
		if out, err := exec.Command(cmd[0], cmd[1:]...).CombinedOutput(); err != nil {
			log.Warn("systemd-resolved registration failed; resolved's stub at 127.0.0.53 is not steered", "cmd", cmd, "err", err, "output", string(out))
			revertResolved(tunName, log)
			return false
		}
	}
	log.Info("registered with systemd-resolved", "link", tunName, "domain", "~.")
	return true
}

func revertResolved(tunName string, log *slog.Logger) {
	if out, err := exec.Command("resolvectl", "revert", tunName).CombinedOutput(); err != nil {
		log.Debug("resolvectl revert", "err", err, "output", string(out))
	}
	exec.Command("resolvectl", "flush-caches").Run()
}

// inInitialNetns reports whether this process shares pid 1's network
// namespace; false when that cannot be told.
func inInitialNetns() bool {
	self, err1 := os.Readlink("/proc/self/ns/net")
	init, err2 := os.Readlink("/proc/1/ns/net")
	return err1 == nil && err2 == nil && self == init
}

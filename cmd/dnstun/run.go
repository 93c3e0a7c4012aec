// SPDX-License-Identifier: MIT

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/dnstun/dnstun/config"
	"github.com/dnstun/dnstun/daemon"
	"github.com/dnstun/dnstun/filter"
	"github.com/dnstun/dnstun/route"
)

// settingsFlags is a FlagSet holding every setting of `dnstun run` (the
// keys of the config file and --config): run, check and explain take them.
func settingsFlags(name string, stderr io.Writer) (*flag.FlagSet, *config.Flags) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs, config.NewFlags(fs)
}

// options parses args into fs and returns the validated options. Any
// positional arguments are returned, when allowed.
func options(fs *flag.FlagSet, fl *config.Flags, args []string, positional bool) (*config.Options, []string, error) {
	if err := parseFlags(fs, args); err != nil {
		return nil, nil, err
	}
	if fs.NArg() > 0 && !positional {
		return nil, nil, usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	o, err := fl.Options()
	if err != nil {
		return nil, nil, err
	}
	return o, fs.Args(), nil
}

func cmdRun(args []string, stderr io.Writer) error {
	fs, fl := settingsFlags("run", stderr)
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile (pprof) of the whole run to this file")
	o, _, err := options(fs, fl, args, false)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: o.LogLevel}))
	// A reload reads the same file and flags again.
	reload := func() (*config.Options, error) {
		fs, fl := settingsFlags("run", io.Discard)
		fs.String("cpuprofile", "", "")
		o, _, err := options(fs, fl, args, false)
		return o, err
	}
	if o.Capture.Enabled {
		// A terminal's Ctrl-Z would stop dnstun while the machine's DNS
		// is steered to it: every lookup would hang until it resumed.
		signal.Ignore(syscall.SIGTSTP, syscall.SIGTTIN, syscall.SIGTTOU)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		// After the first signal the clean stop runs; a second one gets
		// the default action and ends the process at once.
		<-ctx.Done()
		stop()
	}()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	d, err := daemon.New(daemon.Config{Options: o, Reload: reload, Logger: log})
	if err != nil {
		return err
	}
	return d.Run(ctx)
}

// cmdCheck validates a configuration (and the lists it names) without
// touching the system.
func cmdCheck(args []string, stdout, stderr io.Writer) error {
	fs, fl := settingsFlags("check", stderr)
	o, _, err := options(fs, fl, args, false)
	if err != nil {
		return err
	}
	set, err := buildSet(o, stdout)
	if err != nil {
		return err
	}
	ups := "the system's resolvers"
	if !o.FollowsSystem() {
		ups = fmt.Sprint(o.Upstreams)
	}
	for _, d := range o.Domains {
		if d.UseDefault {
			ups += fmt.Sprintf(", %s: the default ones", d.Domain)
		} else {
			ups += fmt.Sprintf(", %s: %v", d.Domain, d.Upstreams)
		}
	}
	ups += " (" + o.UpstreamMode.String() + ")"
	fmt.Fprintf(stdout, "configuration ok: %d rules from %d lists, upstreams %s, mode %s, capture %v\n", set.Len(), len(o.Blocklists), ups, o.Mode, o.Capture.Enabled)
	return nil
}

// buildSet builds o's filter set as check and explain do (never
// downloading), printing each list warning to warnOut.
func buildSet(o *config.Options, warnOut io.Writer) (*filter.Set, error) {
	set, warnings, err := daemon.BuildSet(o)
	for _, w := range warnings {
		fmt.Fprintln(warnOut, "warning:", w)
	}
	return set, err
}

// cleanupLockGrace is how long cleanup waits for the lock of an instance
// that was just killed: a child it was starting (nft, resolvectl) holds a
// copy of the lock's descriptor between fork and exec, for a moment.
const cleanupLockGrace = time.Second

// tryLockWait takes the lock in dir, trying again for up to grace while it
// is held.
func tryLockWait(dir string, grace time.Duration) (*route.Lock, error) {
	deadline := time.Now().Add(grace)
	for {
		lock, err := route.TryLock(dir)
		if err == nil || !errors.Is(err, route.ErrLocked) || time.Now().After(deadline) {
			return lock, err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// cmdCleanup is `dnstun cleanup`: it refuses while a live instance holds
// the lock, else removes whatever a dead one left.
func cmdCleanup(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("cleanup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("state-dir", config.RunDir(runtime.GOOS), "the state directory of the instance to clean up after")
	level := fs.String("log-level", "warn", "debug, info, warn or error")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(*level)); err != nil {
		return usageError{fmt.Errorf("--log-level %q: want debug, info, warn or error", *level)}
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: l}))
	lock, err := tryLockWait(*dir, cleanupLockGrace)
	if err != nil {
		return fmt.Errorf("%w; stop it first (cleanup never touches a running instance's state)", err)
	}
	defer lock.Unlock()
	removed, err := route.Cleanup(*dir, log)
	for _, r := range removed {
		fmt.Fprintln(stdout, "removed", r)
	}
	if err == nil && len(removed) == 0 {
		fmt.Fprintln(stdout, "nothing to clean up")
	}
	return err
}

// SPDX-License-Identifier: MIT

package route

import (
	"log/slog"
	"os"
)

// Steering is capture applied on macOS: a temporary dynamic-store resolver
// held by a scutil child (darwinSteering; its order of steps is tested on
// Linux). scripts/macos-check.sh verifies it on a Mac.
type Steering struct{ *darwinSteering }

// Apply publishes the virtual resolvers as the system's default resolver:
// the key is read back and must hold what was published, and only then
// are the DNS caches flushed. On failure nothing is left.
func Apply(cfg Config, dir string, log *slog.Logger) (*Steering, error) {
	d, err := newDarwinSteering(newExecSys(), cfg, dir, os.Getpid(), log)
	if err != nil {
		return nil, err
	}
	if err := d.apply(cfg.Tun); err != nil {
		return nil, err
	}
	return &Steering{d}, nil
}

// Sweep removes dnstun's dynamic-store key when an earlier instance left it
// (see SweepOwned).
func Sweep(table int, log *slog.Logger) ([]string, error) { return SweepOwned(table, 0, log) }

// SweepOwned removes dnstun's dynamic-store key only when it is ours: its
// DnstunPID entry names journalPID (the dead instance of the journal; 0 if
// none), this process, or a process that no longer runs. table is unused
// on macOS.
func SweepOwned(table, journalPID int, log *slog.Logger) ([]string, error) {
	return sweepDarwin(newExecSys(), journalPID, os.Getpid(), pidAlive, log)
}

// SPDX-License-Identifier: MIT

//go:build !linux && !darwin

package route

import (
	"errors"
	"log/slog"
)

// Steering is unsupported on this system.
type Steering struct{}

// Apply is unsupported on this system.
func Apply(cfg Config, dir string, log *slog.Logger) (*Steering, error) {
	return nil, errors.ErrUnsupported
}

// Withdraw does nothing.
func (s *Steering) Withdraw() error { return nil }

// Monitor returns when done closes.
func (s *Steering) Monitor(done <-chan struct{}) error { <-done; return nil }

// Sweep is unsupported on this system.
func Sweep(table int, log *slog.Logger) ([]string, error) { return nil, errors.ErrUnsupported }

// SweepOwned is unsupported on this system.
func SweepOwned(table, journalPID int, log *slog.Logger) ([]string, error) {
	return nil, errors.ErrUnsupported
}

// SPDX-License-Identifier: MIT

//go:build !linux && !darwin

package route

import "errors"

// Lock is unsupported here.
type Lock struct{}

// TryLock is unsupported on this system.
func TryLock(dir string) (*Lock, error) { return nil, errors.ErrUnsupported }

// Unlock does nothing.
func (l *Lock) Unlock() error { return nil }

// SPDX-License-Identifier: MIT

//go:build !linux && !darwin

package attrib

import (
	"errors"
	"fmt"
	"runtime"
)

type sysState struct{}

func newSys(Config, *scanCounters, func(error)) (*sysState, error) {
	return nil, fmt.Errorf("attrib: attributing sockets to processes on %s: %w (Linux and macOS only)", runtime.GOOS, errors.ErrUnsupported)
}

func (s *sysState) newResolver() (resolver, error) { return nil, errors.ErrUnsupported }

// SPDX-License-Identifier: MIT

//go:build !linux && !darwin

package upstream

import (
	"errors"
	"fmt"
	"net/netip"
)

// poolSys on other systems: dnstun runs on Linux and darwin only, so
// NewPool refuses and no method below is ever reached.
type poolSys struct{}

type poolDestSys struct{}

var errPoolUnsupported = fmt.Errorf("upstream pool: %w on this OS (Linux and darwin only)", errors.ErrUnsupported)

func (ps *poolSys) init() error                                        { return errPoolUnsupported }
func (ds *poolDestSys) init(addr netip.AddrPort) error                 { return errPoolUnsupported }
func (ps *poolSys) open(d *Dest, mark uint32) (int, error)             { return -1, errPoolUnsupported }
func (ps *poolSys) watch(fd int, s *poolSlot, id uint32) error         { return errPoolUnsupported }
func (ps *poolSys) closeFD(fd int)                                     {}
func (ps *poolSys) shut() error                                        { return nil }
func (ps *poolSys) write(fd int, msg []byte) error                     { return errPoolUnsupported }
func (ps *poolSys) read(p *Pool, s *poolSlot, id uint32, ms []Msg) int { return 0 }
func isPoolAsyncError(err error) bool                                  { return false }
func poolFileLimit() (uint64, bool)                                    { return 0, false }

// Recv fails: NewPool refuses on this OS.
func (p *Pool) Recv(ms []Msg) (int, error) { return 0, errPoolUnsupported }

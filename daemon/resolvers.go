// SPDX-License-Identifier: MIT

package daemon

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/dnstun/dnstun/config"
	"github.com/dnstun/dnstun/engine"
	"github.com/dnstun/dnstun/upstream"
)

// followInterval is how often the system's resolvers are re-read.
const followInterval = 2 * time.Second

// systemResolvers are the system's resolvers as dnstun uses them.
type systemResolvers struct {
	ups   []netip.AddrPort // without dnstun's own addresses (a loop)
	setup upstream.Setup   // with capture: what the setup is, for the log
}

// readSystemResolvers reads the system's resolvers. With capture, local
// stubs are left out (they would loop) and the resolver setup is detected
// for the log. dnstun's own addresses are always left out; a list made of
// nothing else is an error (errOnlyOwn), never an empty upstream set.
func readSystemResolvers(o *config.Options) (systemResolvers, error) {
	var s systemResolvers
	var all []netip.AddrPort
	if ups, ok, err := platformUpstreams(); ok && o.Capture.Enabled {
		// macOS: the primary service's resolvers, from the dynamic store.
		if err != nil {
			return s, err
		}
		s.setup = upstream.Setup{Kind: "macOS dynamic store", Upstreams: ups, Why: "State:/Network/Global/DNS"}
		all = ups
	} else if o.Capture.Enabled {
		env, err := upstream.ReadSetupEnv(o.ResolvConf)
		if err != nil {
			return s, err
		}
		s.setup = upstream.DetectSetup(env)
		all = s.setup.Upstreams
	} else {
		var err error
		if all, err = upstream.ReadResolvConf(o.ResolvConf); err != nil {
			return s, err
		}
	}
	for _, ap := range all {
		if !o.IsOwn(ap.Addr()) {
			s.ups = append(s.ups, ap)
		}
	}
	if len(all) > 0 && len(s.ups) == 0 {
		return s, fmt.Errorf("%w: %v", errOnlyOwn, all)
	}
	return s, nil
}

// errOnlyOwn: the system lists only dnstun itself as its resolver, as
// happens once dnstun is the machine's resolver (macOS's global DNS with
// capture, a resolv.conf rewritten to point at dnstun). Forwarding there
// would loop, so the last good list is kept.
var errOnlyOwn = errors.New("the system's resolvers are only dnstun's own addresses")

// followResolvers re-reads the system's resolvers every interval and gives
// the engine the new list when it changed, so a network change (DHCP, VPN,
// Wi-Fi) needs no restart. A list of only dnstun's own addresses keeps the
// last good one, said once in the log.
func (d *Daemon) followResolvers(ctx context.Context, e *engine.Engine, interval time.Duration) {
	warned := ""
	every(ctx, interval, func() {
		d.mu.Lock()
		o, last := d.o, d.sys.ups
		d.mu.Unlock()
		if !o.FollowsSystem() {
			return
		}
		sys, err := readSystemResolvers(o)
		if err != nil {
			if errors.Is(err, errOnlyOwn) && warned != err.Error() {
				warned = err.Error()
				d.log.Warn("the system's resolver list names only dnstun itself; keeping the last good upstreams", "listed", strings.TrimPrefix(err.Error(), errOnlyOwn.Error()+": "), "upstreams", last)
			}
			return // else a resolv.conf being rewritten; try again next tick
		}
		warned = ""
		if slices.Equal(sys.ups, last) {
			return
		}
		if err := e.SetUpstreams(sys.ups); err != nil {
			d.log.Warn("the system's resolvers changed but cannot be used", "upstreams", sys.ups, "err", err)
			return
		}
		d.mu.Lock()
		if d.o == o {
			d.sys = sys
		}
		d.mu.Unlock()
		d.log.Info("the system's resolvers changed; following", "upstreams", sys.ups)
	})
}

// probe asks addr for name from an ordinary (unmarked) socket, so the
// query takes the same path as a client's, and returns nil when any
// answer with the query's ID arrives within timeout.
func probe(ctx context.Context, addr netip.AddrPort, name string, timeout time.Duration) error {
	var dl net.Dialer
	c, err := dl.DialContext(ctx, "udp", addr.String())
	if err != nil {
		return err
	}
	defer c.Close()
	q, id := healthQuery(name)
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write(q); err != nil {
		return err
	}
	buf := make([]byte, 512)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return err
		}
		// A response (QR set) to our ID (RFC 1035 4.1.1).
		if n >= 12 && binary.BigEndian.Uint16(buf) == id && buf[2]&0x80 != 0 {
			return nil
		}
	}
}

// healthQuery builds a query for name, type A, with a random ID.
func healthQuery(name string) ([]byte, uint16) {
	var idb [2]byte
	rand.Read(idb[:])
	id := binary.BigEndian.Uint16(idb[:])
	q := binary.BigEndian.AppendUint16(nil, id)
	q = append(q, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0) // RD; one question
	for label := range strings.SplitSeq(strings.TrimSuffix(name, "."), ".") {
		q = append(q, byte(len(label)))
		q = append(q, label...)
	}
	q = append(q, 0, 0, 1, 0, 1) // root; type A; class IN
	return q, id
}

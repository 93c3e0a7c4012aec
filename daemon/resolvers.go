// SPDX-License-Identifier: MIT

package daemon

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"runtime"
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

// needsBootstrap reports whether an upstream of o is named by a host name
// and no bootstrap resolver is given: the system's resolvers then resolve
// it.
func needsBootstrap(o *config.Options) bool {
	if len(o.Bootstrap) > 0 {
		return false
	}
	for _, s := range o.Upstreams {
		if !s.Addr.IsValid() {
			return true
		}
	}
	for _, d := range o.Domains {
		for _, s := range d.Upstreams {
			if !s.Addr.IsValid() {
				return true
			}
		}
	}
	return false
}

// readSystemResolvers reads the system's resolvers, all of them (the
// caller leaves dnstun's own out). With capture, local stubs are left out
// (they would loop) and the resolver setup is detected for the log; on
// macOS they come from the primary service's keys of the dynamic store,
// since capture makes dnstun the global resolver.
func readSystemResolvers(o *config.Options) (all []netip.AddrPort, setup upstream.Setup, err error) {
	switch {
	case o.Capture.Enabled && runtime.GOOS == "darwin":
		r, err := upstream.DarwinSystemResolvers(own(o))
		if err != nil {
			return nil, setup, err
		}
		return r.Upstreams, upstream.Setup{Kind: "macOS dynamic store", Upstreams: r.Upstreams, Why: r.Source}, nil
	case o.Capture.Enabled:
		env, err := upstream.ReadSetupEnv(o.ResolvConf)
		if err != nil {
			return nil, setup, err
		}
		setup = upstream.DetectSetup(env)
		return setup.Upstreams, setup, nil
	}
	all, err = upstream.ReadResolvConf(o.ResolvConf)
	return all, setup, err
}

// own lists dnstun's own addresses: forwarding there would loop.
func own(o *config.Options) []netip.Addr { return append(slices.Clone(o.Resolvers), o.TunAddrs...) }

// firstSystemResolvers reads the system's resolvers at start or reload; a
// list made only of dnstun's own addresses is an error.
func firstSystemResolvers(o *config.Options) (systemResolvers, error) {
	all, setup, err := readSystemResolvers(o)
	if err != nil {
		return systemResolvers{}, err
	}
	ups, onlyOwn := upstream.FilterOwn(all, own(o))
	if onlyOwn {
		return systemResolvers{}, fmt.Errorf("%w: the system's resolvers %v are only dnstun's own addresses", upstream.ErrNoUsableResolver, all)
	}
	return systemResolvers{ups: ups, setup: setup}, nil
}

// followResolvers re-reads the system's resolvers every interval and gives
// the engine the new list when it changed, so a network change (DHCP, VPN,
// Wi-Fi) needs no restart. A list that is empty or made only of dnstun's
// own addresses keeps the last good one, said once in the log.
func (d *Daemon) followResolvers(ctx context.Context, e *engine.Engine, interval time.Duration) {
	warned := ""
	every(ctx, interval, func() {
		d.mu.Lock()
		o, last := d.o, d.sys.ups
		d.mu.Unlock()
		if !o.FollowsSystem() {
			return
		}
		all, setup, err := readSystemResolvers(o)
		if err != nil {
			return // a resolv.conf being rewritten; try again next tick
		}
		r := upstream.RefreshUpstreams(last, all, own(o))
		if r.Kept {
			if warned != r.Why {
				warned = r.Why
				d.log.Warn("the system's resolver list cannot be used", "why", r.Why)
			}
			return
		}
		warned = ""
		if !r.Changed {
			return
		}
		d.mu.Lock()
		if d.o != o {
			// A reload came in meanwhile: its upstreams stand, and the
			// next tick reads the resolvers again for its options.
			d.mu.Unlock()
			return
		}
		if err := e.SetUpstreams(upstream.UDPSpecs(r.Use), o.Domains); err != nil {
			d.mu.Unlock()
			d.log.Warn("the system's resolvers changed but cannot be used", "upstreams", r.Use, "err", err)
			return
		}
		d.sys = systemResolvers{ups: r.Use, setup: setup}
		if d.cache != nil {
			// Another network: its resolvers may see names differently
			// (a VPN's split horizon, a captive portal).
			d.cache.Flush()
		}
		d.mu.Unlock()
		d.log.Info("the system's resolvers changed; following", "upstreams", r.Use)
	})
}

// probe asks addr for name from an ordinary (unmarked) socket, so the
// query takes the same path as a client's, and returns the rcode of the
// first answer with the query's ID that arrives within timeout.
func probe(ctx context.Context, addr netip.AddrPort, name string, timeout time.Duration) (int, error) {
	var dl net.Dialer
	c, err := dl.DialContext(ctx, "udp", addr.String())
	if err != nil {
		return 0, err
	}
	defer c.Close()
	q, id := healthQuery(name)
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write(q); err != nil {
		return 0, err
	}
	buf := make([]byte, 512)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return 0, err
		}
		// A response (QR set) to our ID (RFC 1035 4.1.1).
		if n >= 12 && binary.BigEndian.Uint16(buf) == id && buf[2]&0x80 != 0 {
			return int(buf[3] & 0x0f), nil
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

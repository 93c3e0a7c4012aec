// SPDX-License-Identifier: MIT

package lab

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"

	"github.com/dnstun/dnstun/internal/dnstest"
)

// The lab's addresses. They exist only inside the namespaces.
var (
	// HostVeth4 and HostVeth6 are the host end of the veth (HostIf);
	// HostVeth6 only with Config.IPv6.
	HostVeth4 = netip.MustParsePrefix("192.0.2.2/24")
	HostVeth6 = netip.MustParsePrefix("2001:db8:53::2/64")
	// UpVeth4 and UpVeth6 are the upstream end (UpIf), the host's
	// gateway with Config.DefaultRoute.
	UpVeth4 = netip.MustParsePrefix("192.0.2.1/24")
	UpVeth6 = netip.MustParsePrefix("2001:db8:53::1/64")
	// Upstream4 and Upstream6 are port 53 on the upstream end: where
	// upstream servers listen.
	Upstream4 = netip.AddrPortFrom(UpVeth4.Addr(), 53)
	Upstream6 = netip.AddrPortFrom(UpVeth6.Addr(), 53)
	// Loopback4 and Loopback6 are port 53 on an address the caller puts
	// on one namespace's loopback (Config.HostLoopback, UpLoopback): an
	// off-link upstream reached through the gateway, or a resolver local
	// to the host namespace.
	Loopback4 = netip.MustParseAddrPort("198.51.100.53:53")
	Loopback6 = netip.MustParseAddrPort("[2001:db8:5353::53]:53")
	// Resolver4 and Resolver6 are dnstun's default virtual resolver
	// addresses, on the TUN it creates in the host namespace.
	Resolver4 = netip.MustParseAddrPort("198.19.53.53:53")
	Resolver6 = netip.MustParseAddrPort("[fd64:6e73:7475::53]:53")
)

// HostIf and UpIf name the veth ends in the host and upstream namespaces.
const (
	HostIf = "dt-h"
	UpIf   = "dt-u"
)

// allowed are the only ranges a lab address may come from.
var allowed = []netip.Prefix{
	netip.MustParsePrefix("192.0.2.0/24"),        // RFC 5737 TEST-NET-1
	netip.MustParsePrefix("198.51.100.0/24"),     // RFC 5737 TEST-NET-2
	netip.MustParsePrefix("203.0.113.0/24"),      // RFC 5737 TEST-NET-3
	netip.MustParsePrefix("198.18.0.0/15"),       // RFC 2544 benchmarking (dnstun's TUN)
	netip.MustParsePrefix("2001:db8::/32"),       // RFC 3849 documentation
	netip.MustParsePrefix("fd64:6e73:7475::/48"), // dnstun's own ULA resolver prefix
}

// Config says how to build the lab. The zero value (plus a Prefix) is two
// namespaces with IPv4 on the veth only.
type Config struct {
	// Prefix starts the namespaces' names: PREFIX-SFX-host and
	// PREFIX-SFX-up. Required.
	Prefix string
	// IPv6 adds HostVeth6 and UpVeth6 (without duplicate address
	// detection: they are unique by construction).
	IPv6 bool
	// DefaultRoute gives the host namespace default routes via UpVeth4
	// (and UpVeth6 with IPv6), so that it reaches UpLoopback addresses.
	DefaultRoute bool
	// HostLoopback and UpLoopback are extra addresses (a /32 or /128
	// each) on the loopback of the host and upstream namespaces.
	HostLoopback, UpLoopback []netip.Addr
}

// Lab is two namespaces joined by a veth pair, and what runs in them.
type Lab struct {
	Host, Up *NS
	// Dir is a private temporary folder (PREFIX-lab-*) for the caller's
	// files (lists, configs, control sockets), removed by Close.
	Dir string

	mu      sync.Mutex
	procs   []*Proc
	servers []*dnstest.Server
	once    sync.Once
}

// New builds the lab described by c. On error everything built so far is
// removed.
func New(c Config) (_ *Lab, err error) {
	if c.Prefix == "" {
		return nil, errors.New("lab: Config.Prefix is required")
	}
	for _, a := range append(append([]netip.Addr{}, c.HostLoopback...), c.UpLoopback...) {
		if !isAllowed(a) {
			return nil, fmt.Errorf("lab: loopback address %v is outside the documentation ranges", a)
		}
	}
	l := &Lab{}
	defer func() {
		if err != nil {
			l.Close()
		}
	}()
	if l.Dir, err = os.MkdirTemp("", c.Prefix+"-lab-"); err != nil {
		return nil, err
	}
	sfx := Suffix()
	if l.Host, err = newNS(c.Prefix + "-" + sfx + "-host"); err != nil {
		return nil, err
	}
	if l.Up, err = newNS(c.Prefix + "-" + sfx + "-up"); err != nil {
		return nil, err
	}
	if err = veth(l.Host, HostIf, l.Up, UpIf); err != nil {
		return nil, err
	}
	type step struct {
		ns   *NS
		args []string
	}
	steps := []step{
		{l.Host, []string{"addr", "add", HostVeth4.String(), "dev", HostIf}},
		{l.Up, []string{"addr", "add", UpVeth4.String(), "dev", UpIf}},
	}
	if c.IPv6 {
		steps = append(steps,
			step{l.Host, []string{"addr", "add", HostVeth6.String(), "dev", HostIf, "nodad"}},
			step{l.Up, []string{"addr", "add", UpVeth6.String(), "dev", UpIf, "nodad"}})
	}
	for _, a := range c.HostLoopback {
		steps = append(steps, step{l.Host, []string{"addr", "add", netip.PrefixFrom(a, a.BitLen()).String(), "dev", "lo"}})
	}
	for _, a := range c.UpLoopback {
		steps = append(steps, step{l.Up, []string{"addr", "add", netip.PrefixFrom(a, a.BitLen()).String(), "dev", "lo"}})
	}
	if c.DefaultRoute {
		steps = append(steps, step{l.Host, []string{"route", "add", "default", "via", UpVeth4.Addr().String()}})
		if c.IPv6 {
			steps = append(steps, step{l.Host, []string{"-6", "route", "add", "default", "via", UpVeth6.Addr().String()}})
		}
	}
	for _, s := range steps {
		if err = s.ns.IP(s.args...); err != nil {
			return nil, err
		}
	}
	// Let duplicate address detection of the link-local addresses finish,
	// so the namespaces' state is settled (tests snapshot it).
	for _, ns := range []*NS{l.Host, l.Up} {
		if err = ns.waitNoTentative(); err != nil {
			return nil, err
		}
	}
	return l, nil
}

func isAllowed(a netip.Addr) bool {
	for _, p := range allowed {
		if a.IsValid() && p.Contains(a.Unmap()) {
			return true
		}
	}
	return false
}

// Serve starts an in-process DNS server (internal/dnstest) answering from
// zone on addr inside ns, over network "udp" or "tcp". Close stops it; so
// may the caller, earlier.
func (l *Lab) Serve(ns *NS, network string, addr netip.AddrPort, zone dnstest.Zone) (*dnstest.Server, error) {
	var s *dnstest.Server
	switch network {
	case "udp":
		pc, err := ns.ListenPacket("udp", addr.String())
		if err != nil {
			return nil, fmt.Errorf("lab: DNS server on udp %v in %s: %w", addr, ns.Name, err)
		}
		s = dnstest.Serve(pc, zone)
	case "tcp":
		ln, err := ns.Listen("tcp", addr.String())
		if err != nil {
			return nil, fmt.Errorf("lab: DNS server on tcp %v in %s: %w", addr, ns.Name, err)
		}
		s = dnstest.ServeTCP(ln, zone)
	default:
		return nil, fmt.Errorf("lab: DNS server network %q, want udp or tcp", network)
	}
	l.mu.Lock()
	l.servers = append(l.servers, s)
	l.mu.Unlock()
	return s, nil
}

// Start runs c inside ns (see Cmd); Close stops it if it still runs.
func (l *Lab) Start(ns *NS, c Cmd) (*Proc, error) {
	p, err := start(ns, c)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.procs = append(l.procs, p)
	l.mu.Unlock()
	return p, nil
}

// Close stops the processes and servers and removes the namespaces and
// Dir. Only the first call does anything; it is safe on a partly built
// lab.
func (l *Lab) Close() {
	l.once.Do(func() {
		l.mu.Lock()
		procs, servers := l.procs, l.servers
		l.mu.Unlock()
		for _, p := range procs {
			p.Stop()
		}
		for _, s := range servers {
			s.Close()
		}
		for _, ns := range []*NS{l.Host, l.Up} {
			if ns != nil {
				ns.delete()
			}
		}
		if l.Dir != "" {
			os.RemoveAll(l.Dir)
		}
	})
}

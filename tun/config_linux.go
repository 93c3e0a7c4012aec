// SPDX-License-Identifier: MIT

package tun

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// RouteProtocol tags every route dnstun adds (rtnetlink "proto"), so that
// cleanup can prove a route is ours. 83 is unused in rt_protos.
const RouteProtocol = 83

// configure sets per-device sysctls, addresses and routes through rtnetlink
// and brings the link up. Everything here is attached to the device, so the
// kernel removes it when the device goes away (also on SIGKILL).
func configure(name string, cfg Config) error {
	link, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("find link: %w", err)
	}
	// Per-device sysctls only, never global ones. Loose reverse-path
	// filtering on the TUN (effective value is max(all, dev)), IPv6 on even
	// where a distribution defaults new links to off, no router adverts.
	sysctls := []struct{ path, val string }{
		{"ipv4/conf/" + name + "/rp_filter", "2"},
		{"ipv6/conf/" + name + "/disable_ipv6", "0"},
		{"ipv6/conf/" + name + "/accept_ra", "0"},
	}
	for _, s := range sysctls {
		p := filepath.Join("/proc/sys/net", s.path)
		if err := os.WriteFile(p, []byte(s.val), 0); err != nil && !(os.IsNotExist(err) && filepath.Base(filepath.Dir(filepath.Dir(s.path))) == "ipv6") {
			return fmt.Errorf("sysctl %s=%s: %w", p, s.val, err)
		}
	}
	for _, a := range cfg.Addrs {
		addr := &netlink.Addr{IPNet: prefixToIPNet(a)}
		if a.Addr().Is6() {
			addr.Flags = unix.IFA_F_NODAD // usable at once, no tentative state
		}
		if err := netlink.AddrReplace(link, addr); err != nil {
			return fmt.Errorf("add address %v: %w", a, err)
		}
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("set link up: %w", err)
	}
	for _, r := range cfg.Routes {
		route := &netlink.Route{
			LinkIndex: link.Attrs().Index,
			Dst:       prefixToIPNet(r),
			Scope:     netlink.SCOPE_LINK,
			Protocol:  RouteProtocol,
		}
		if err := netlink.RouteReplace(route); err != nil {
			return fmt.Errorf("add route %v dev %s: %w", r, name, err)
		}
	}
	for _, a := range cfg.Addrs {
		if a.Addr().Is6() {
			waitLocalRoute(name, a.Addr(), cfg)
		}
	}
	return nil
}

// localRouteWait bounds how long Open waits for an IPv6 address's local
// route.
const localRouteWait = time.Second

// waitLocalRoute waits, at most localRouteWait, until the kernel has the
// local route of the IPv6 address a. It adds that route from a work queue
// some milliseconds after the address (3 to 33 ms measured, with NODAD);
// until then a packet the engine writes to a (an answer to a client on
// it) is dropped (Ip6InAddrErrors), and that client waits for its
// resolver's timeout. Past the bound it logs and goes on: the route comes
// later, and only the first answers are at stake.
func waitLocalRoute(name string, a netip.Addr, cfg Config) {
	deadline := time.Now().Add(localRouteWait)
	for {
		ok, err := hasLocalRoute(a)
		if ok {
			return
		}
		if time.Now().After(deadline) {
			cfg.Logger.Warn("tun: the local route of an IPv6 address is not there yet; answers to it are dropped until it is", "tun", name, "addr", a, "waited", localRouteWait, "err", err)
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// hasLocalRoute reports whether the kernel has the local route of a (in
// the calling thread's network namespace).
func hasLocalRoute(a netip.Addr) (bool, error) {
	filter := &netlink.Route{Table: unix.RT_TABLE_LOCAL, Dst: prefixToIPNet(netip.PrefixFrom(a, a.BitLen()))}
	rs, err := netlink.RouteListFiltered(netlink.FAMILY_V6, filter, netlink.RT_FILTER_TABLE|netlink.RT_FILTER_DST)
	return err == nil && len(rs) > 0, err
}

func prefixToIPNet(p netip.Prefix) *net.IPNet {
	p = p.Masked()
	return &net.IPNet{
		IP:   net.IP(p.Addr().AsSlice()),
		Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen()),
	}
}

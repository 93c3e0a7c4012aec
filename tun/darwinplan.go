// SPDX-License-Identifier: MIT

package tun

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/dnstun/dnstun/internal/macos"
)

// This file has no _darwin suffix on purpose: the command lines that
// configure a utun, and the checks of their effect, are OS-neutral and
// tested on Linux; config_darwin.go only runs them.

// Paths of the macOS tools (absolute: launchd gives daemons a short PATH).
const (
	darwinIfconfig = "/sbin/ifconfig"
	darwinRoute    = "/sbin/route"
)

// DarwinCommands returns the command lines that configure the utun name
// from cfg, in the order they run: MTU, each address, up, each route.
//
//   - IPv4: "ifconfig utunN inet A/32 A alias". utun is point-to-point, so
//     the destination is given (the address itself; the resolvers are
//     routed below). "alias" adds the address: without it ifconfig replaces
//     the interface's first address of the family (wg-quick's darwin.bash
//     add_addr does the same).
//   - IPv6: "ifconfig utunN inet6 ADDR prefixlen N alias". No DAD word:
//     macOS's ifconfig has none (network_cmds af_inet6.c inet6_cmds; a
//     word it does not know, like FreeBSD's "no_dad", is taken for an
//     address and fails with "bad value").
//   - routes: "route -q -n add -inet[6] R/len -interface utunN", as
//     wg-quick's add_route. route exits 0 even when the add fails, which is
//     why every route is checked afterwards (DarwinChecks).
func DarwinCommands(name string, cfg Config) ([][]string, error) {
	if name == "" || strings.ContainsAny(name, " \t\n/") {
		return nil, fmt.Errorf("utun name %q: want an interface name such as utun6", name)
	}
	mtu := cfg.MTU
	if mtu == 0 {
		mtu = DefaultMTU
	}
	cmds := [][]string{{darwinIfconfig, name, "mtu", strconv.Itoa(mtu)}}
	for _, a := range cfg.Addrs {
		if !a.IsValid() {
			return nil, fmt.Errorf("utun %s: invalid address %v", name, a)
		}
		addr := a.Addr().Unmap()
		if addr.Is4() {
			cmds = append(cmds, []string{darwinIfconfig, name, "inet", netip.PrefixFrom(addr, a.Bits()).String(), addr.String(), "alias"})
			continue
		}
		cmds = append(cmds, []string{darwinIfconfig, name, "inet6", addr.String(), "prefixlen", strconv.Itoa(a.Bits()), "alias"})
	}
	cmds = append(cmds, []string{darwinIfconfig, name, "up"})
	for _, r := range cfg.Routes {
		if !r.IsValid() {
			return nil, fmt.Errorf("utun %s: invalid route %v", name, r)
		}
		r = netip.PrefixFrom(r.Addr().Unmap(), r.Bits()).Masked()
		cmds = append(cmds, []string{darwinRoute, "-q", "-n", "add", family(r.Addr()), r.String(), "-interface", name})
	}
	return cmds, nil
}

func family(a netip.Addr) string {
	if a.Is6() {
		return "-inet6"
	}
	return "-inet"
}

// DarwinCheck is one command whose output proves part of the
// configuration, and the check of that output.
type DarwinCheck struct {
	Argv  []string
	Check func(out string) error
}

// DarwinChecks returns the commands that verify the utun after
// DarwinCommands ran: "ifconfig utunN" must show it up with every address
// (none still tentative), and "route -n get -inet[6] R" must show each
// route going through it.
func DarwinChecks(name string, cfg Config) []DarwinCheck {
	checks := []DarwinCheck{{
		Argv:  []string{darwinIfconfig, name},
		Check: func(out string) error { return CheckDarwinIfconfig(out, name, cfg) },
	}}
	for _, r := range cfg.Routes {
		r := netip.PrefixFrom(r.Addr().Unmap(), r.Bits()).Masked()
		dst := r.String()
		if r.IsSingleIP() {
			dst = r.Addr().String()
		}
		checks = append(checks, DarwinCheck{
			Argv:  []string{darwinRoute, "-n", "get", family(r.Addr()), dst},
			Check: func(out string) error { return CheckDarwinRoute(out, name, r) },
		})
	}
	return checks
}

// CheckDarwinIfconfig verifies `ifconfig name` output: the interface is UP
// and holds every address of cfg.Addrs, none tentative, duplicated or
// detached.
func CheckDarwinIfconfig(out, name string, cfg Config) error {
	ifs, err := macos.ParseIfconfig(out)
	if err != nil {
		return fmt.Errorf("check %s: %w", name, err)
	}
	var it *macos.Interface
	for i := range ifs {
		if ifs[i].Name == name {
			it = &ifs[i]
		}
	}
	if it == nil {
		return fmt.Errorf("check %s: ifconfig does not show it", name)
	}
	if !it.HasFlag("UP") {
		return fmt.Errorf("check %s: not up (flags %v)", name, it.Flags)
	}
	for _, p := range cfg.Addrs {
		a, ok := it.Addr(p.Addr().Unmap())
		if !ok {
			return fmt.Errorf("check %s: address %v is missing (ifconfig added nothing; its output is above)", name, p.Addr())
		}
		for _, f := range a.Flags {
			switch f {
			case "tentative", "duplicated", "detached":
				return fmt.Errorf("check %s: address %v is %s", name, p.Addr(), f)
			}
		}
	}
	return nil
}

// CheckDarwinRoute verifies `route -n get` output for dst: the route found
// is dst itself (a host route, not a covering one) and goes through name.
// macOS's route add exits 0 when it fails, so this is the only proof.
func CheckDarwinRoute(out, name string, dst netip.Prefix) error {
	rg, err := macos.ParseRouteGet(out)
	if err != nil {
		return fmt.Errorf("check route %v via %s: %w", dst, name, err)
	}
	if rg.Interface != name {
		return fmt.Errorf("check route %v: it goes via %q, not %s (route add failed silently?)", dst, rg.Interface, name)
	}
	if dst.IsSingleIP() && rg.Destination != dst.Addr().String() {
		return fmt.Errorf("check route %v: the route found is %q (a covering route), not the host route via %s", dst, rg.Destination, name)
	}
	return nil
}

// darwinRunner runs one command and returns its combined output.
type darwinRunner func(argv []string) (string, error)

// configureDarwin runs DarwinCommands, then DarwinChecks (each retried for
// up to wait, since an address may stay tentative for a moment). It fixes
// the order: nothing is checked before everything has run.
func configureDarwin(run darwinRunner, sleep func(time.Duration), wait time.Duration, name string, cfg Config) error {
	cmds, err := DarwinCommands(name, cfg)
	if err != nil {
		return err
	}
	for _, c := range cmds {
		if out, err := run(c); err != nil {
			return fmt.Errorf("%s: %w: %s", strings.Join(c, " "), err, strings.TrimSpace(out))
		}
	}
	const step = 100 * time.Millisecond
	for _, c := range DarwinChecks(name, cfg) {
		var lastErr error
		for waited := time.Duration(0); ; waited += step {
			out, err := run(c.Argv)
			if lastErr = c.Check(out); lastErr == nil {
				break
			}
			if err != nil && !errors.Is(lastErr, macos.ErrNoRoute) {
				lastErr = fmt.Errorf("%w (%s: %v)", lastErr, strings.Join(c.Argv, " "), err)
			}
			if waited >= wait {
				return fmt.Errorf("%w; output of %s:\n%s", lastErr, strings.Join(c.Argv, " "), out)
			}
			sleep(step)
		}
	}
	return nil
}

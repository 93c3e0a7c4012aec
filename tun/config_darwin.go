// SPDX-License-Identifier: MIT

package tun

import (
	"fmt"
	"os/exec"
	"strconv"
)

// configure gives the utun its addresses and routes with ifconfig and route,
// as wireguard's and Tailscale's darwin tooling do. The addresses and routes
// belong to the utun and vanish with it. Not verified on a Mac yet: the
// darwin code is compiled and vetted on Linux only.
func configure(name string, cfg Config) error {
	run := func(args ...string) error {
		out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %w: %s", args, err, out)
		}
		return nil
	}
	if err := run("/sbin/ifconfig", name, "mtu", strconv.Itoa(cfg.MTU)); err != nil {
		return err
	}
	for _, a := range cfg.Addrs {
		if a.Addr().Is4() {
			// utun is point-to-point: the destination is the address itself;
			// the resolver addresses are routed below.
			if err := run("/sbin/ifconfig", name, "inet", a.Addr().String(), a.Addr().String(), "netmask", "255.255.255.255", "up"); err != nil {
				return err
			}
			continue
		}
		if err := run("/sbin/ifconfig", name, "inet6", a.Addr().String(), "prefixlen", strconv.Itoa(a.Bits()), "no_dad"); err != nil {
			return err
		}
	}
	if err := run("/sbin/ifconfig", name, "up"); err != nil {
		return err
	}
	for _, r := range cfg.Routes {
		fam := "-inet"
		if r.Addr().Is6() {
			fam = "-inet6"
		}
		if err := run("/sbin/route", "-n", "add", fam, r.Masked().String(), "-interface", name); err != nil {
			return err
		}
	}
	return nil
}

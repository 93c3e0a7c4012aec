// SPDX-License-Identifier: MIT

package macos

import (
	"errors"
	"fmt"
	"strings"
)

// RouteGet is the output of route -n get <destination>.
type RouteGet struct {
	RouteTo     string
	Destination string
	Mask        string
	Gateway     string
	Interface   string
	Flags       []string // "UP", "HOST", "GATEWAY", "STATIC", ...
}

// HasFlag reports whether the route's flags list f.
func (r RouteGet) HasFlag(f string) bool {
	for _, x := range r.Flags {
		if x == f {
			return true
		}
	}
	return false
}

// ErrNoRoute means route printed that nothing routes to the destination
// ("route: writing to routing socket: not in table").
var ErrNoRoute = errors.New("no route to the destination")

// ParseRouteGet reads route -n get output. Format (network_cmds'
// route.tproj/route.c, print_getmsg): labels right-aligned to the colon,
// "   route to: D", "destination: D", "       mask: M", "    gateway: G"
// (routes with a gateway only), "  interface: ifname", "      flags: <F,F>",
// then a table of metrics. Without a route, route prints "not in table"
// (and exits 1), which is ErrNoRoute.
func ParseRouteGet(out string) (RouteGet, error) {
	var r RouteGet
	seen := false
	for _, raw := range splitLines(out) {
		l := strings.TrimSpace(raw)
		if strings.Contains(l, "not in table") {
			return RouteGet{}, fmt.Errorf("%w: %s", ErrNoRoute, l)
		}
		key, val, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		val = strings.TrimSpace(val)
		switch strings.TrimSpace(key) {
		case "route to":
			r.RouteTo, seen = val, true
		case "destination":
			r.Destination = val
		case "mask":
			r.Mask = val
		case "gateway":
			r.Gateway = val
		case "interface":
			r.Interface = val
		case "flags":
			for _, f := range strings.Split(strings.Trim(val, "<>"), ",") {
				if f = strings.TrimSpace(f); f != "" {
					r.Flags = append(r.Flags, f)
				}
			}
		}
	}
	if !seen {
		return RouteGet{}, fmt.Errorf("not route -n get output (no \"route to:\" line): %q", clip(out))
	}
	return r, nil
}

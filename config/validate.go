// SPDX-License-Identifier: MIT

package config

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Validate checks the values with the rules `dnstun run` applies to its
// flags. Problems with keys read from the file cite its line and column.
// It touches nothing outside f.
func (f *File) Validate() error {
	v := &validator{f: f}
	v.check()
	return errors.Join(v.errs...)
}

type validator struct {
	f    *File
	errs []error
}

func (v *validator) fail(key, msg, hint string) {
	e := &Error{File: v.f.name, Key: key, Msg: msg, Hint: hint}
	if e.File == "" {
		e.File = "config"
	}
	if p, ok := v.f.pos[key]; ok {
		e.Line, e.Column = p.Line, p.Column
	}
	v.errs = append(v.errs, e)
}

// BlockModes are the values of block_mode (filter.ParseBlockMode's, case
// insensitive; a test keeps the two in step).
var BlockModes = []string{"nxdomain", "null", "nodata", "refused"}

// ParseUpstream parses an upstream as `--upstream` does: IP, IP:PORT or
// [IPv6]:PORT; the port defaults to 53.
func ParseUpstream(s string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
	}
	if a, err := netip.ParseAddr(strings.Trim(s, "[]")); err == nil && !strings.Contains(a.String(), "%") {
		return netip.AddrPortFrom(a.Unmap(), 53), nil
	}
	return netip.AddrPort{}, fmt.Errorf("%q is not IP, IP:PORT or [IPv6]:PORT", s)
}

func (v *validator) addrs(key string, list []string) []netip.Addr {
	var out []netip.Addr
	for i, s := range list {
		a, err := netip.ParseAddr(s)
		if err != nil {
			v.fail(fmt.Sprintf("%s[%d]", key, i), fmt.Sprintf("%q is not an IP address", s), "write an IPv4 or IPv6 address, without a port")
			continue
		}
		out = append(out, a.Unmap())
	}
	return out
}

func (v *validator) duration(key string, d time.Duration, allowZero bool) {
	switch {
	case d < 0:
		v.fail(key, fmt.Sprintf("negative duration %v", d), "durations are 0 or more")
	case d == 0 && !allowZero:
		v.fail(key, "must be more than 0", "write for example 2s")
	}
}

func (v *validator) path(key, p string) {
	if p != "" && !filepath.IsAbs(p) {
		v.fail(key, fmt.Sprintf("%q is not an absolute path", p), "the daemon runs from /, so write the full path")
	}
}

func (v *validator) check() {
	f := v.f
	if f.Tun == "" {
		v.fail("tun", "empty TUN name", "leave the key out for the default")
	} else if len(f.Tun) > 15 || strings.ContainsAny(f.Tun, "/ \t\n%:") {
		v.fail("tun", fmt.Sprintf("%q is not a usable interface name", f.Tun), "at most 15 characters, no '/', ':', '%' or spaces")
	}
	if f.MTU < 1280 || f.MTU > 65535 {
		v.fail("mtu", fmt.Sprintf("%d is out of range", f.MTU), "want 1280 (the IPv6 minimum) to 65535")
	}
	if len(f.Resolvers) == 0 {
		v.fail("resolvers", "no resolver address", "leave the key out for the defaults "+strings.Join(DefaultResolvers, ", "))
	}
	resolvers := v.addrs("resolvers", f.Resolvers)
	tunAddrs := v.addrs("tun_addrs", f.TunAddrs)
	for _, r := range resolvers {
		if slices.Contains(tunAddrs, r) {
			v.fail("tun_addrs", fmt.Sprintf("%v is both a resolver and the TUN's own address", r), "a resolver must be routed into the TUN: pick another tun_addrs entry")
		}
	}
	for i, s := range f.Upstreams {
		key := fmt.Sprintf("upstreams[%d]", i)
		ap, err := ParseUpstream(s)
		if err != nil {
			v.fail(key, err.Error(), "a host name cannot be used: dnstun would have to resolve it through itself")
			continue
		}
		if slices.Contains(resolvers, ap.Addr()) || slices.Contains(tunAddrs, ap.Addr()) {
			v.fail(key, fmt.Sprintf("%v is one of dnstun's own addresses", ap), "that would loop; name a real resolver")
		}
		if f.Capture.Enabled && ap.Addr().IsLoopback() {
			v.fail(key, fmt.Sprintf("%v is a local stub", ap), "with capture enabled its own queries would be captured again (a loop); name the real resolvers")
		}
	}
	v.path("resolv_conf", f.ResolvConf)
	for i, p := range f.Blocklists {
		// A list is its path or URL, then optional settings
		// ("mode=null ttl=60") that `dnstun run` checks.
		if fs := strings.Fields(p); len(fs) > 0 {
			p = fs[0]
		}
		if p == "" {
			v.fail(fmt.Sprintf("blocklists[%d]", i), "empty path", "")
		}
		if strings.HasPrefix(p, "http://") || strings.HasPrefix(p, "https://") {
			if u, err := url.Parse(p); err != nil || u.Host == "" {
				v.fail(fmt.Sprintf("blocklists[%d]", i), fmt.Sprintf("%q is not a usable URL", p), "write it as https://host/path")
			}
			continue
		}
		v.path(fmt.Sprintf("blocklists[%d]", i), p)
	}
	v.path("list_cache", f.ListCache)
	v.duration("list_refresh", f.ListRefresh, false)
	v.duration("list_watch", f.ListWatch, true)
	if !slices.Contains(BlockModes, strings.ToLower(strings.TrimSpace(f.BlockMode))) {
		v.fail("block_mode", fmt.Sprintf("unknown block mode %q", f.BlockMode), "want nxdomain, null, nodata or refused")
	}
	if f.BlockTTL > 1<<31-1 {
		v.fail("block_ttl", fmt.Sprintf("%d is out of range", f.BlockTTL), "a DNS TTL is at most 2147483647 (RFC 2181)")
	}
	v.duration("upstream_timeout", f.UpstreamTimeout, false)
	v.duration("timeout", f.Timeout, false)
	if f.UpstreamTimeout > 0 && f.Timeout > 0 && f.UpstreamTimeout > f.Timeout {
		v.fail("upstream_timeout", fmt.Sprintf("%v is longer than timeout (%v)", f.UpstreamTimeout, f.Timeout), "clients would get SERVFAIL before the first upstream had its turn")
	}
	if f.MaxPending < 1 || f.MaxPending > 1<<20 {
		v.fail("max_pending", fmt.Sprintf("%d is out of range", f.MaxPending), "want 1 to 1048576")
	}
	switch f.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		v.fail("log_level", fmt.Sprintf("unknown log level %q", f.LogLevel), "want debug, info, warn or error")
	}
	switch f.Mode {
	case "tun", "flow":
	default:
		v.fail("mode", fmt.Sprintf("unknown mode %q", f.Mode), "want tun or flow")
	}
	if _, err := netip.ParseAddrPort(f.Listen); err != nil {
		v.fail("listen", fmt.Sprintf("%q is not IP:PORT", f.Listen), "for example 127.0.0.1:53 or [::1]:53")
	}
	if f.Capture.Enabled && f.Mode == "flow" {
		v.fail("capture.enabled", "capture cannot be used with mode flow", "capture steers packets into the TUN: use mode tun")
	}
	v.path("capture.state_dir", f.Capture.StateDir)
	if f.Capture.StateDir == "" {
		v.fail("capture.state_dir", "empty path", "leave the key out for the default")
	}
	switch f.Capture.Resolved {
	case "auto", "on", "off":
	default:
		v.fail("capture.resolved", fmt.Sprintf("unknown value %q", f.Capture.Resolved), "want auto, on or off")
	}
	v.duration("capture.watchdog", f.Capture.Watchdog, true)
	if f.Control.Socket == "" {
		v.fail("control.socket", "empty path", "leave the key out for the default")
	}
	v.path("control.socket", f.Control.Socket)
	if len(f.Control.Socket) > 103 {
		v.fail("control.socket", "path too long for a unix socket", "at most 103 bytes")
	}
	if g := f.Control.Group; g != "" && strings.ContainsAny(g, ":/ \t\n") {
		v.fail("control.group", fmt.Sprintf("%q is not a group name", g), "a group name or number, as in /etc/group")
	}
}

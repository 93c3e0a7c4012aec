// SPDX-License-Identifier: MIT

package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dnstun/dnstun/cache"
	"github.com/dnstun/dnstun/engine"
	"github.com/dnstun/dnstun/filter"
	"github.com/dnstun/dnstun/tap"
	"github.com/dnstun/dnstun/tun"
	"github.com/dnstun/dnstun/upstream"
)

// Options validates f and returns its typed, immutable form: the one
// validator of dnstun's settings, whether they came from the file, from
// flags or from both. Problems with keys read from the file cite its line
// and column; those with values from a flag name the flag. Every value it
// accepts is honoured as given: nothing is clamped later. It touches
// nothing outside f.
func (f *File) Options() (*Options, error) {
	v := &validator{f: f}
	o := v.check()
	if err := errors.Join(v.errs...); err != nil {
		return nil, err
	}
	return o, nil
}

type validator struct {
	f    *File
	errs []error
}

func (v *validator) fail(key, msg, hint string) {
	base, _, _ := strings.Cut(key, "[")
	if fl, ok := v.f.flags[base]; ok {
		v.errs = append(v.errs, &Error{Flag: fl, Key: key, Msg: msg, Hint: hint})
		return
	}
	e := &Error{File: v.f.name, Key: key, Msg: msg, Hint: hint}
	if e.File == "" {
		e.File = "config"
	}
	if p, ok := v.f.pos[key]; ok {
		e.Line, e.Column = p.Line, p.Column
	}
	v.errs = append(v.errs, e)
}

// ListSpec is one block list: a path or URL, then optional per-list
// settings separated by spaces, e.g. "/etc/dnstun/ads.txt mode=null
// ttl=300" or "https://example.org/list.txt mode=192.0.2.1,2001:db8::1".
type ListSpec struct {
	Source string             // the path or URL
	Opts   filter.ListOptions // Name is Source until the daemon resolves a URL to its cached copy
}

// ParseListSpec parses one blocklists entry (or --blocklist value).
func ParseListSpec(s string) (ListSpec, error) {
	f := strings.Fields(s)
	if len(f) == 0 {
		return ListSpec{}, errors.New("empty block list")
	}
	ls := ListSpec{Source: f[0]}
	ls.Opts.Name = ls.Source
	for _, kv := range f[1:] {
		k, val, ok := strings.Cut(kv, "=")
		switch {
		case !ok:
			return ListSpec{}, fmt.Errorf("block list %q: %q is not key=value (keys: mode, ttl)", s, kv)
		case k == "mode":
			m, addrs, err := filter.ParseBlockSpec(val)
			if err != nil {
				return ListSpec{}, fmt.Errorf("block list %q: %w", s, err)
			}
			ls.Opts.Mode, ls.Opts.BlockAddrs = m, addrs
		case k == "ttl":
			// 0 would mean "the default TTL" to the filter: refused.
			ttl, err := strconv.ParseUint(val, 10, 31)
			if err != nil || ttl < 1 {
				return ListSpec{}, fmt.Errorf("block list %q: ttl %q: want seconds, 1 to %d", s, val, maxTTL)
			}
			ls.Opts.TTL = uint32(ttl)
		default:
			return ListSpec{}, fmt.Errorf("block list %q: unknown setting %q (keys: mode, ttl)", s, k)
		}
	}
	if isURL(ls.Source) {
		if u, err := url.Parse(ls.Source); err != nil || u.Host == "" {
			return ListSpec{}, fmt.Errorf("block list %q is not a usable URL: write it as https://host/path", ls.Source)
		}
	} else if !filepath.IsAbs(ls.Source) {
		return ListSpec{}, fmt.Errorf("block list %q is not an absolute path: the daemon runs from /, so write the full path", ls.Source)
	}
	return ls, nil
}

func isURL(s string) bool { return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://") }

// maxTTL is the largest DNS TTL (RFC 2181 section 8).
const maxTTL = 1<<31 - 1

func (v *validator) addrs(key string, list []string) []netip.Addr {
	var out []netip.Addr
	for i, s := range list {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			v.fail(fmt.Sprintf("%s[%d]", key, i), fmt.Sprintf("%q is not an IP address", s), "write an IPv4 or IPv6 address, without a port or zone")
			continue
		}
		out = append(out, a.Unmap())
	}
	return out
}

func (v *validator) duration(key string, d time.Duration, zeroOK bool) {
	switch {
	case d < 0:
		v.fail(key, fmt.Sprintf("negative duration %v", d), "durations are 0 or more")
	case d == 0 && !zeroOK:
		v.fail(key, "must be more than 0", "write for example 2s")
	}
}

func (v *validator) path(key, p string) {
	if p != "" && !filepath.IsAbs(p) {
		v.fail(key, fmt.Sprintf("%q is not an absolute path", p), "the daemon runs from /, so write the full path")
	}
}

func (v *validator) nonEmpty(key, p string) {
	if p == "" {
		v.fail(key, "empty path", "leave the key out for the default")
	}
	v.path(key, p)
}

// observe reads the settings of the query log file, metrics, dnstap and
// attribution.
func (v *validator) observe(o *Options) {
	f := v.f
	o.Attribution = f.Attribution
	v.path("querylog_file", f.QueryLogFile)
	o.QueryLogFile = f.QueryLogFile
	n, err := ParseSize(f.QueryLogSize)
	switch {
	case err != nil:
		v.fail("querylog_file_size", err.Error(), "write for example 10MiB")
	case n < 64<<10:
		v.fail("querylog_file_size", fmt.Sprintf("%s is below 64KiB", f.QueryLogSize), "give at least 64KiB")
	}
	o.QueryLogSize = n
	if f.QueryLogKeep < 0 || f.QueryLogKeep > 100 {
		v.fail("querylog_file_keep", fmt.Sprintf("%d", f.QueryLogKeep), "want 0 (no old file kept) to 100")
	}
	o.QueryLogKeep = f.QueryLogKeep
	if f.Metrics != "" {
		ap, err := ParseMetricsAddr(f.Metrics)
		if err != nil {
			v.fail("metrics", err.Error(), "write IP:PORT, or :PORT for 127.0.0.1:PORT")
		}
		o.Metrics = ap
	}
	if f.Dnstap != "" {
		if _, err := tap.ParseSpec(f.Dnstap); err != nil {
			v.fail("dnstap", err.Error(), "write unix:/path/to/collector.sock or file:/path/to/dnstap.fstrm")
		}
		o.Dnstap = f.Dnstap
	}
}

// ParseMetricsAddr reads the metrics address: IP:PORT, or :PORT (then
// 127.0.0.1, loopback, the safe default for an unauthenticated endpoint).
func ParseMetricsAddr(s string) (netip.AddrPort, error) {
	if strings.HasPrefix(s, ":") {
		s = "127.0.0.1" + s
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil || ap.Port() == 0 {
		return netip.AddrPort{}, fmt.Errorf("%q is not IP:PORT", s)
	}
	return ap, nil
}

// cache reads the response cache's settings.
func (v *validator) cache(o *Options) {
	f := v.f
	n, err := ParseSize(f.Cache)
	switch {
	case err != nil:
		v.fail("cache", err.Error(), "write for example 64MiB, or 0 to turn the cache off")
	case n != 0 && n < cache.MinBytes:
		v.fail("cache", fmt.Sprintf("%s is below the smallest cache, %d KiB", f.Cache, cache.MinBytes>>10), "give more, or 0 to turn the cache off")
	}
	o.CacheBytes = n
	v.duration("cache_min_ttl", f.CacheMinTTL, true)
	v.duration("cache_max_ttl", f.CacheMaxTTL, false)
	v.duration("cache_serve_stale", f.CacheServeStale, true)
	if f.CacheMaxTTL > cache.MaxMaxTTL {
		v.fail("cache_max_ttl", f.CacheMaxTTL.String(), fmt.Sprintf("at most %v", cache.MaxMaxTTL))
	}
	if f.CacheMinTTL > f.CacheMaxTTL {
		v.fail("cache_min_ttl", fmt.Sprintf("%v is more than cache_max_ttl (%v)", f.CacheMinTTL, f.CacheMaxTTL), "")
	}
	if f.CacheServeStale > cache.MaxStaleFor {
		v.fail("cache_serve_stale", f.CacheServeStale.String(), fmt.Sprintf("at most %v", cache.MaxStaleFor))
	}
	for _, d := range []struct {
		key string
		d   time.Duration
	}{{"cache_min_ttl", f.CacheMinTTL}, {"cache_max_ttl", f.CacheMaxTTL}} {
		if d.d%time.Second != 0 {
			v.fail(d.key, d.d.String(), "whole seconds: TTLs are counted in seconds")
		}
	}
	o.CacheMinTTL, o.CacheMaxTTL, o.CacheStaleFor = f.CacheMinTTL, f.CacheMaxTTL, f.CacheServeStale
}

// ParseSize reads a size in bytes: digits, optionally followed by B, KiB,
// MiB, GiB (powers of 1024) or KB, MB, GB (powers of 1000).
func ParseSize(s string) (int, error) {
	units := []struct {
		suffix string
		mult   int
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}}
	num, mult := strings.TrimSpace(s), 1
	for _, u := range units {
		if rest, ok := strings.CutSuffix(num, u.suffix); ok {
			num, mult = strings.TrimSpace(rest), u.mult
			break
		}
	}
	n, err := strconv.ParseUint(num, 10, 40)
	if err != nil || n > (1<<40)/uint64(mult) {
		return 0, fmt.Errorf("size %q: want a number of bytes with an optional unit (B, KiB, MiB, GiB, KB, MB, GB), up to 1 TiB", s)
	}
	return int(n) * mult, nil
}

// upstreams reads the upstreams: default ones and routed domains.
func (v *validator) upstreams(o *Options) {
	f := v.f
	distinct := map[string]bool{} // the upstreams open at once: each spec once
	for i, s := range f.Upstreams {
		key := fmt.Sprintf("upstreams[%d]", i)
		domains, spec, useDefault, err := upstream.ParseUpstreamArg(s)
		if err == nil && spec.Addr.Zone() != "" {
			err = fmt.Errorf("upstream %q: a link-local address with a zone cannot be used", s)
		}
		if err != nil {
			v.fail(key, err.Error(), "")
			continue
		}
		if !useDefault && spec.Addr.IsValid() {
			if o.IsOwn(spec.Addr) {
				v.fail(key, fmt.Sprintf("%v is one of dnstun's own addresses", spec.Addr), "that would loop; name a real resolver")
			}
			if f.Capture.Enabled && (spec.Proto == upstream.ProtoUDP || spec.Proto == upstream.ProtoTCP) && spec.Addr.IsLoopback() {
				v.fail(key, fmt.Sprintf("%v is a local stub", spec), "with capture its own queries would be captured again (a loop); name the real resolvers")
			}
		}
		if !useDefault {
			distinct[spec.String()] = true
		}
		if domains == nil {
			o.Upstreams = append(o.Upstreams, spec)
			continue
		}
		for _, d := range domains {
			j := slices.IndexFunc(o.Domains, func(x engine.DomainUpstreams) bool { return x.Domain == d })
			if j < 0 {
				o.Domains = append(o.Domains, engine.DomainUpstreams{Domain: d})
				j = len(o.Domains) - 1
			}
			if useDefault {
				o.Domains[j].UseDefault = true
			} else {
				o.Domains[j].Upstreams = append(o.Domains[j].Upstreams, spec)
			}
		}
	}
	for _, d := range o.Domains {
		if d.UseDefault && len(d.Upstreams) > 0 {
			v.fail("upstreams", fmt.Sprintf("domain %s has upstreams and \"#\" (the default upstreams)", d.Domain), "give one or the other")
		}
	}
	if n := len(distinct); n > engine.MaxUpstreams {
		v.fail("upstreams", fmt.Sprintf("%d upstreams given", n), fmt.Sprintf("at most %d", engine.MaxUpstreams))
	}
}

func (v *validator) check() *Options {
	f := v.f
	o := &Options{
		Tun: f.Tun, MTU: f.MTU, ResolvConf: f.ResolvConf, Rules: slices.Clone(f.Rules), BypassSignals: f.BypassSignals,
		ListCache: f.ListCache, ListRefresh: f.ListRefresh, ListWatch: f.ListWatch, BlockTTL: f.BlockTTL,
		UpstreamTimeout: f.UpstreamTimeout, Timeout: f.Timeout, MaxPending: f.MaxPending, Mode: f.Mode,
		TCPIdleTimeout: f.TCPIdleTimeout,
		Capture:        CaptureOptions{Enabled: f.Capture.Enabled, StateDir: f.Capture.StateDir, NFT: f.Capture.NFT, Resolved: f.Capture.Resolved, Watchdog: f.Capture.Watchdog},
		Control:        ControlOptions{Socket: f.Control.Socket, Group: f.Control.Group},
		StateFile:      f.StateFile, ExitWhenDisabled: f.ExitWhenDisabled, ConfigFile: f.name,
	}
	if f.Tun == "" {
		v.fail("tun", "empty TUN name", "leave the key out for the default")
	} else if len(f.Tun) > 15 || strings.ContainsAny(f.Tun, "/ \t\n%:") {
		v.fail("tun", fmt.Sprintf("%q is not a usable interface name", f.Tun), "at most 15 characters, no '/', ':', '%' or spaces")
	}
	if f.MTU < 1280 || f.MTU > 65535 {
		v.fail("mtu", fmt.Sprintf("%d is out of range", f.MTU), "want 1280 (the IPv6 minimum) to 65535")
	}
	switch {
	case f.TunQueues < 0:
		v.fail("tun_queues", fmt.Sprintf("%d is out of range", f.TunQueues), fmt.Sprintf("want 0 (one per CPU) or 1 to %d", tun.MaxQueues))
	case f.TunQueues > tun.MaxQueues && tun.MaxQueues == 1:
		v.fail("tun_queues", fmt.Sprintf("%d queues", f.TunQueues), "this system's TUN (macOS's utun) has a single queue: give 0 or 1")
	case f.TunQueues > tun.MaxQueues:
		v.fail("tun_queues", fmt.Sprintf("%d is out of range", f.TunQueues), fmt.Sprintf("want 0 (one per CPU) or 1 to %d: more readers than CPUs buy nothing", tun.MaxQueues))
	}
	o.TunQueues = f.TunQueues
	if len(f.Resolvers) == 0 {
		v.fail("resolvers", "no resolver address", "leave the key out for the defaults "+strings.Join(DefaultResolvers, ", "))
	}
	o.Resolvers = v.addrs("resolvers", f.Resolvers)
	o.TunAddrs = v.addrs("tun_addrs", f.TunAddrs)
	// One TUN address per family the resolvers use, unless given.
	for _, fam := range []struct {
		is  func(netip.Addr) bool
		def netip.Addr
	}{{netip.Addr.Is4, DefaultTunAddr4}, {netip.Addr.Is6, DefaultTunAddr6}} {
		if slices.ContainsFunc(o.Resolvers, fam.is) && !slices.ContainsFunc(o.TunAddrs, fam.is) {
			o.TunAddrs = append(o.TunAddrs, fam.def)
		}
	}
	for _, r := range o.Resolvers {
		if slices.Contains(o.TunAddrs, r) {
			v.fail("tun_addrs", fmt.Sprintf("%v is both a resolver and the TUN's own address", r), "a resolver must be routed into the TUN: pick another TUN address or resolver")
		}
	}
	v.upstreams(o)
	v.cache(o)
	v.observe(o)
	if f.ClientRate < 0 || f.ClientRate > 250000 {
		v.fail("client_rate", fmt.Sprintf("%d is out of range", f.ClientRate), "want 0 (no bound) to 250000 queries a second")
	}
	o.ClientRate = f.ClientRate
	o.Upstream0x20 = f.Upstream0x20
	if f.SocketQueries < 1 || f.SocketQueries > 65535 {
		v.fail("upstream_socket_queries", fmt.Sprintf("%d", f.SocketQueries), "want 1 (a fresh source port per query) to 65535")
	}
	o.SocketQueries = f.SocketQueries
	if f.Sockets < 1 || f.Sockets > upstream.MaxSocketsPerDest {
		v.fail("upstream_sockets", fmt.Sprintf("%d", f.Sockets), fmt.Sprintf("want 1 to %d", upstream.MaxSocketsPerDest))
	}
	o.Sockets = f.Sockets
	if m, err := engine.ParseStrategy(f.UpstreamMode); err != nil {
		v.fail("upstream_mode", err.Error(), "")
	} else {
		o.UpstreamMode = m
	}
	for i, s := range f.Bootstrap {
		ap, err := upstream.ParseAddrPort(s)
		if err == nil && o.IsOwn(ap.Addr()) {
			err = fmt.Errorf("%v is one of dnstun's own addresses: bootstrapping through dnstun would loop", ap)
		}
		if err != nil {
			v.fail(fmt.Sprintf("bootstrap[%d]", i), err.Error(), "a plain resolver's IP[:PORT]")
			continue
		}
		o.Bootstrap = append(o.Bootstrap, ap)
	}
	v.nonEmpty("resolv_conf", f.ResolvConf)
	for i, p := range f.Blocklists {
		ls, err := ParseListSpec(p)
		if err != nil {
			v.fail(fmt.Sprintf("blocklists[%d]", i), err.Error(), "")
			continue
		}
		o.Blocklists = append(o.Blocklists, ls)
	}
	v.nonEmpty("list_cache", f.ListCache)
	v.duration("list_refresh", f.ListRefresh, false)
	v.duration("list_watch", f.ListWatch, true)
	m, addrs, err := filter.ParseBlockSpec(strings.TrimSpace(f.BlockMode))
	if err != nil {
		v.fail("block_mode", fmt.Sprintf("unknown block mode %q", f.BlockMode), "want nxdomain, null, nodata, refused, or IP addresses separated by commas")
	}
	o.BlockMode, o.BlockAddrs = m, addrs
	if f.BlockTTL < 1 || f.BlockTTL > maxTTL {
		// 0 would reach the engine as "unset" and become its default.
		v.fail("block_ttl", fmt.Sprintf("%d is out of range", f.BlockTTL), "want 1 to 2147483647 seconds (RFC 2181)")
	}
	v.duration("upstream_timeout", f.UpstreamTimeout, false)
	v.duration("timeout", f.Timeout, false)
	v.duration("tcp_idle_timeout", f.TCPIdleTimeout, false)
	if f.UpstreamTimeout > 0 && f.Timeout > 0 && f.UpstreamTimeout > f.Timeout {
		v.fail("upstream_timeout", fmt.Sprintf("%v is longer than timeout (%v)", f.UpstreamTimeout, f.Timeout), "clients would get SERVFAIL before the first upstream had its turn")
	}
	if f.MaxPending < 1 || f.MaxPending > engine.MaxPendingLimit {
		v.fail("max_pending", fmt.Sprintf("%d is out of range", f.MaxPending), fmt.Sprintf("want 1 to %d (half the 16-bit ID space)", engine.MaxPendingLimit))
	}
	if err := o.LogLevel.UnmarshalText([]byte(f.LogLevel)); err != nil || !slices.Contains([]string{"debug", "info", "warn", "error"}, f.LogLevel) {
		v.fail("log_level", fmt.Sprintf("unknown log level %q", f.LogLevel), "want debug, info, warn or error")
		o.LogLevel = slog.LevelInfo
	}
	switch f.Mode {
	case "tun", "flow":
	default:
		v.fail("mode", fmt.Sprintf("unknown mode %q", f.Mode), "want tun or flow")
	}
	o.Listen, err = netip.ParseAddrPort(f.Listen)
	if err != nil {
		v.fail("listen", fmt.Sprintf("%q is not IP:PORT", f.Listen), "for example 127.0.0.1:53 or [::1]:53")
	}
	if f.Capture.Enabled && f.Mode == "flow" {
		v.fail("capture.enabled", "capture cannot be used with mode flow", "capture steers packets into the TUN: use mode tun")
	}
	v.nonEmpty("capture.state_dir", f.Capture.StateDir)
	switch f.Capture.Resolved {
	case "auto", "on", "off":
	default:
		v.fail("capture.resolved", fmt.Sprintf("unknown value %q", f.Capture.Resolved), "want auto, on or off")
	}
	v.duration("capture.watchdog", f.Capture.Watchdog, true)
	// An empty socket path means no control socket.
	v.path("control.socket", f.Control.Socket)
	if len(f.Control.Socket) > 103 {
		v.fail("control.socket", "path too long for a unix socket", "at most 103 bytes")
	}
	if g := f.Control.Group; g != "" && strings.ContainsAny(g, ":/ \t\n") {
		v.fail("control.group", fmt.Sprintf("%q is not a group name", g), "a group name or number, as in /etc/group")
	}
	v.nonEmpty("state_file", f.StateFile)
	return o
}

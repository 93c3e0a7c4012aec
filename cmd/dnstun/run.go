// SPDX-License-Identifier: MIT

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/dnstun/dnstun/config"
	"github.com/dnstun/dnstun/engine"
	"github.com/dnstun/dnstun/filter"
	"github.com/dnstun/dnstun/listsrc"
	"github.com/dnstun/dnstun/route"
	"github.com/dnstun/dnstun/tun"
	"github.com/dnstun/dnstun/upstream"
)

// Default addresses. The virtual resolver and the TUN's own addresses sit
// where common VPNs and proxies do not: 198.19.0.0/16 is the upper half of
// the RFC 2544 benchmarking block (mihomo's and Clash's fake-IP ranges use
// 198.18.0.0/16, Tailscale 100.64.0.0/10, Docker and LANs RFC 1918), and
// fd64:6e73:7475::/48 is a unique local prefix (RFC 4193) whose global ID
// spells "dnstu". They are host routes on the TUN only and vanish with it.
var (
	defaultResolvers = []netip.Addr{netip.MustParseAddr("198.19.53.53"), netip.MustParseAddr("fd64:6e73:7475::53")}
	defaultTunAddr4  = netip.MustParseAddr("198.19.53.1")
	defaultTunAddr6  = netip.MustParseAddr("fd64:6e73:7475::1")
)

func defaultTunName() string {
	if runtime.GOOS == "darwin" {
		return "utun"
	}
	return "dnstun0"
}

// runConfig is everything `dnstun run` needs, parsed and checked.
type runConfig struct {
	tunName    string
	mtu        int
	resolvers  []netip.Addr
	tunAddrs   []netip.Addr
	upstreams  []netip.AddrPort
	blocklists []string
	engine     engine.Config
	logLevel   string
	mode       string         // "tun" or "flow"
	listen     netip.AddrPort // flow mode's socket
	capture    captureConfig
	// followResolvConf is the resolv.conf the default upstreams come
	// from, watched for changes; "" when --upstream was given.
	followResolvConf string

	cpuProfile       string
	rules            listFlag
	bypassSignals    bool
	listCache        string
	listRefresh      time.Duration
	listWatch        time.Duration
	configPath       string
	control          struct{ socket, group string }
	stateFile        string
	exitWhenDisabled bool
	args             []string // the command line, for reload
}

// applyConfigFile sets, from the file, every flag the command line did not
// set: flags override the file. The file is checked strictly first (unknown
// keys and bad values are errors naming the line).
func applyConfigFile(fs *flag.FlagSet, path string) error {
	f, err := config.Load(path)
	if err != nil {
		return err
	}
	if err := f.Validate(); err != nil {
		return err
	}
	onCLI := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { onCLI[fl.Name] = true })
	var errs []error
	set := func(flagName, key string, vals ...string) {
		if onCLI[flagName] || !f.IsSet(key) {
			return
		}
		for _, v := range vals {
			if err := fs.Set(flagName, v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %s: %w", path, key, err))
			}
		}
	}
	set("tun", "tun", f.Tun)
	set("mtu", "mtu", strconv.Itoa(f.MTU))
	set("resolver", "resolvers", f.Resolvers...)
	set("tun-addr", "tun_addrs", f.TunAddrs...)
	set("upstream", "upstreams", f.Upstreams...)
	set("resolv-conf", "resolv_conf", f.ResolvConf)
	set("blocklist", "blocklists", f.Blocklists...)
	set("rule", "rules", f.Rules...)
	set("bypass-signals", "bypass_signals", strconv.FormatBool(f.BypassSignals))
	set("list-cache", "list_cache", f.ListCache)
	set("list-refresh", "list_refresh", f.ListRefresh.String())
	set("list-watch", "list_watch", f.ListWatch.String())
	set("block-mode", "block_mode", f.BlockMode)
	set("block-ttl", "block_ttl", strconv.FormatUint(uint64(f.BlockTTL), 10))
	set("upstream-timeout", "upstream_timeout", f.UpstreamTimeout.String())
	set("timeout", "timeout", f.Timeout.String())
	set("max-pending", "max_pending", strconv.Itoa(f.MaxPending))
	set("log-level", "log_level", f.LogLevel)
	set("mode", "mode", f.Mode)
	set("listen", "listen", f.Listen)
	set("capture", "capture.enabled", strconv.FormatBool(f.Capture.Enabled))
	set("state-dir", "capture.state_dir", f.Capture.StateDir)
	set("nft", "capture.nft", strconv.FormatBool(f.Capture.NFT))
	set("resolved", "capture.resolved", f.Capture.Resolved)
	set("watchdog", "capture.watchdog", f.Capture.Watchdog.String())
	set("control", "control.socket", f.Control.Socket)
	set("control-group", "control.group", f.Control.Group)
	set("exit-when-disabled", "exit_when_disabled", strconv.FormatBool(f.ExitWhenDisabled))
	return errors.Join(errs...)
}

// systemUpstreams reads the system's resolvers from c.followResolvConf.
// With capture, local stubs are left out (they would loop) and the
// resolver setup is detected for the log.
func (c *runConfig) systemUpstreams() ([]netip.AddrPort, error) {
	var sys []netip.AddrPort
	if ups, ok, err := platformUpstreams(); ok && c.capture.on {
		// macOS: the primary service's resolvers, from the dynamic store.
		if err != nil {
			return nil, err
		}
		c.capture.setup = upstream.Setup{Kind: "macOS dynamic store", Upstreams: ups, Why: "State:/Network/Global/DNS"}
		sys = ups
	} else if c.capture.on {
		env, err := upstream.ReadSetupEnv(c.followResolvConf)
		if err != nil {
			return nil, err
		}
		c.capture.setup = upstream.DetectSetup(env)
		sys = c.capture.setup.Upstreams
	} else {
		var err error
		if sys, err = upstream.ReadResolvConf(c.followResolvConf); err != nil {
			return nil, err
		}
	}
	var out []netip.AddrPort
	for _, ap := range sys {
		// Forwarding to ourselves would loop.
		if !slices.Contains(c.resolvers, ap.Addr()) && !slices.Contains(c.tunAddrs, ap.Addr()) {
			out = append(out, ap)
		}
	}
	return out, nil
}

// followResolvers re-reads the system's resolvers every interval and gives
// the engine the new list when it changed, so a network change (DHCP, VPN,
// Wi-Fi) needs no restart.
func followResolvers(ctx context.Context, c *runConfig, e *engine.Engine, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	last := fmt.Sprint(c.upstreams)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ups, err := c.systemUpstreams()
		if err != nil {
			continue // a resolv.conf being rewritten; try again next tick
		}
		if now := fmt.Sprint(ups); now != last {
			if err := e.SetUpstreams(ups); err != nil {
				log.Warn("the system's resolvers changed but cannot be used", "upstreams", ups, "err", err)
				continue
			}
			last = now
			log.Info("the system's resolvers changed; following", "upstreams", ups)
		}
	}
}

func parseRunFlags(args []string, stderr io.Writer) (*runConfig, error) {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		resolvers, upstreams, blocklists, tunAddrs listFlag
		c                                          runConfig
		mode                                       string
		resolvConf                                 string
	)
	fs.StringVar(&c.tunName, "tun", defaultTunName(), "TUN device name (darwin: utun or utunN)")
	fs.IntVar(&c.mtu, "mtu", tun.DefaultMTU, "TUN MTU")
	fs.Var(&resolvers, "resolver", "virtual resolver address served on the TUN (repeatable; default 198.19.53.53 and fd64:6e73:7475::53)")
	fs.Var(&tunAddrs, "tun-addr", "the TUN's own address (repeatable; default 198.19.53.1 and fd64:6e73:7475::1, one per resolver family)")
	fs.Var(&upstreams, "upstream", "upstream resolver IP[:PORT] (repeatable, tried in order; default: the nameservers of --resolv-conf)")
	fs.StringVar(&resolvConf, "resolv-conf", upstream.ResolvConfPath, "where default upstreams are read from")
	fs.Var(&blocklists, "blocklist", "block list: a file or an http(s) URL (cached, refreshed), then optional \"mode=null|nodata|refused|nxdomain|IP,...\" and \"ttl=SECONDS\" for its block answers; hosts, plain domains or adblock-style rules (repeatable)")
	fs.Var(&c.rules, "rule", "an inline rule in any list format, e.g. \"||ads.example^\" or \"192.0.2.10 printer.lan\" (repeatable)")
	fs.BoolVar(&c.bypassSignals, "bypass-signals", true, "answer the canary names of DNS-bypass features (Firefox DoH canary, iCloud Private Relay, DDR) so clients keep using dnstun")
	fs.StringVar(&c.listCache, "list-cache", listsrc.DefaultCacheDir, "where lists given as URLs are cached")
	fs.DurationVar(&c.listRefresh, "list-refresh", 24*time.Hour, "how often lists given as URLs are refreshed")
	fs.DurationVar(&c.listWatch, "list-watch", config.DefaultListWatch, "how often list files are checked for changes on disk, which reload them (0: only SIGHUP and `dnstun reload`)")
	fs.StringVar(&mode, "block-mode", "nxdomain", "answer for blocked names: nxdomain, null (0.0.0.0 / ::), nodata, refused, or IP addresses (comma-separated) to answer with")
	fs.DurationVar(&c.engine.UpstreamTimeout, "upstream-timeout", engine.DefaultUpstreamTimeout, "time one upstream gets before the query moves to the next")
	fs.DurationVar(&c.engine.TotalTimeout, "timeout", engine.DefaultTotalTimeout, "time after which a client gets SERVFAIL")
	fs.IntVar(&c.engine.MaxPending, "max-pending", engine.DefaultMaxPending, "forwarded queries waiting at most; more are answered REFUSED")
	ttl := fs.Uint("block-ttl", engine.DefaultBlockTTL, "TTL of block answers in null mode")
	fs.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.mode, "mode", "tun", "tun: packets on a TUN (dnstun's design); flow: the same engine behind a plain UDP socket, the model of Apple's NEDNSProxyProvider, for comparison")
	listen := fs.String("listen", "127.0.0.1:53", "flow mode: the UDP address to serve on")
	fs.BoolVar(&c.capture.on, "capture", false, "steer the machine's own UDP port-53 traffic into the TUN, whatever resolver it was sent to (see README)")
	fs.StringVar(&c.capture.stateDir, "state-dir", route.DefaultStateDir, "capture: where the lock and the journal live")
	fs.BoolVar(&c.capture.nft, "nft", true, "capture: also use an nftables owner table when nft is available (catches IP_UNICAST_IF sockets)")
	fs.StringVar(&c.capture.resolved, "resolved", "auto", "capture: register with systemd-resolved: auto (when it is the system resolver, in the host's own network namespace), on, off")
	fs.DurationVar(&c.capture.watchdog, "watchdog", 2*time.Second, "capture: probe the data path this often; after 3 failures steering is withdrawn and dnstun exits (0 = off)")
	fs.StringVar(&c.configPath, "config", "", "configuration file (YAML; see config/example.yaml); flags given here override it")
	fs.StringVar(&c.control.socket, "control", config.DefaultSocket(runtime.GOOS), "control socket path (\"\" = none)")
	fs.StringVar(&c.control.group, "control-group", "", "a group whose members may use the control socket besides root")
	fs.StringVar(&c.stateFile, "state-file", DefaultStateFile, "where the enabled/disabled choice persists across restarts")
	fs.BoolVar(&c.exitWhenDisabled, "exit-when-disabled", false, "exit (instead of idling with the control socket open) while disabled")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile (pprof) of the whole run to this file")
	if err := parseFlags(fs, args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	if c.configPath != "" {
		if err := applyConfigFile(fs, c.configPath); err != nil {
			return nil, err
		}
	}
	switch c.mode {
	case "tun":
	case "flow":
		ap, err := netip.ParseAddrPort(*listen)
		if err != nil {
			return nil, usageError{fmt.Errorf("--listen %q: want IP:PORT", *listen)}
		}
		c.listen = ap
	default:
		return nil, usageError{fmt.Errorf("--mode %q: want tun or flow", c.mode)}
	}
	m, addrs, err := filter.ParseBlockSpec(mode)
	if err != nil {
		return nil, usageError{fmt.Errorf("--block-mode: %w", err)}
	}
	c.engine.BlockMode, c.engine.BlockAddrs = m, addrs
	c.engine.BlockTTL = uint32(*ttl)
	c.blocklists = blocklists
	for _, b := range blocklists {
		if _, err := parseListSpec(b); err != nil {
			return nil, usageError{fmt.Errorf("--blocklist: %w", err)}
		}
	}
	c.resolvers = defaultResolvers
	if len(resolvers) > 0 {
		c.resolvers = nil
		for _, s := range resolvers {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return nil, usageError{fmt.Errorf("--resolver %q: not an IP address", s)}
			}
			c.resolvers = append(c.resolvers, a.Unmap())
		}
	}
	for _, s := range tunAddrs {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, usageError{fmt.Errorf("--tun-addr %q: not an IP address", s)}
		}
		c.tunAddrs = append(c.tunAddrs, a.Unmap())
	}
	for _, fam := range []struct {
		is  func(netip.Addr) bool
		def netip.Addr
	}{{netip.Addr.Is4, defaultTunAddr4}, {netip.Addr.Is6, defaultTunAddr6}} {
		if slices.ContainsFunc(c.resolvers, fam.is) && !slices.ContainsFunc(c.tunAddrs, fam.is) {
			c.tunAddrs = append(c.tunAddrs, fam.def)
		}
	}
	for _, r := range c.resolvers {
		if slices.Contains(c.tunAddrs, r) {
			return nil, usageError{fmt.Errorf("--resolver %v is also the TUN's own address: a resolver must be routed into the TUN, so pick another address or --tun-addr", r)}
		}
	}
	for _, s := range upstreams {
		ap, err := upstream.ParseAddrPort(s)
		if err != nil {
			return nil, usageError{fmt.Errorf("--upstream: %w", err)}
		}
		if c.capture.on && ap.Addr().IsLoopback() {
			return nil, usageError{fmt.Errorf("--upstream %v is a local stub: with --capture its own queries would be captured again (a loop); name the real resolvers", ap)}
		}
		c.upstreams = append(c.upstreams, ap)
	}
	switch c.capture.resolved {
	case "auto", "on", "off":
	default:
		return nil, usageError{fmt.Errorf("--resolved %q: want auto, on or off", c.capture.resolved)}
	}
	if c.capture.on && c.mode == "flow" {
		return nil, usageError{errors.New("--capture steers packets into the TUN; it cannot be used with --mode flow")}
	}
	if len(c.upstreams) == 0 {
		// Default upstreams: the system's resolvers, followed while
		// dnstun runs. With --capture, captured queries pass through to
		// the resolver they were sent to, and the system's real resolvers
		// serve the queries sent to dnstun's own address.
		c.followResolvConf = resolvConf
		ups, err := c.systemUpstreams()
		if err != nil {
			return nil, fmt.Errorf("no --upstream given and %w", err)
		}
		c.upstreams = ups
		c.engine.PassThrough = c.capture.on
		if len(c.upstreams) == 0 && !c.capture.on {
			return nil, fmt.Errorf("no --upstream given and %s lists no usable nameserver: give --upstream IP[:PORT]", resolvConf)
		}
	}
	for _, u := range c.upstreams {
		if slices.Contains(c.resolvers, u.Addr()) || slices.Contains(c.tunAddrs, u.Addr()) {
			return nil, usageError{fmt.Errorf("--upstream %v is one of dnstun's own addresses: that would loop", u)}
		}
	}
	c.engine.Upstreams = c.upstreams
	c.engine.Mark = upstream.Mark
	if c.capture.on {
		c.engine.Interface = platformInterface()
	}
	c.engine.Resolvers = c.resolvers
	c.engine.HealthName = healthName
	return &c, nil
}

func cmdRun(args []string, stderr io.Writer) error {
	c, err := parseRunFlags(args, stderr)
	if err != nil {
		return err
	}
	c.args = args
	log, err := newLogger(stderr, c.logLevel)
	if err != nil {
		return err
	}
	c.engine.Logger = log
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		// After the first signal the clean stop runs; a second one gets
		// the default action and ends the process at once.
		<-ctx.Done()
		stop()
	}()
	if c.cpuProfile != "" {
		f, err := os.Create(c.cpuProfile)
		if err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	d, err := newDaemon(c, log)
	if err != nil {
		return err
	}
	return d.run(ctx)
}

// loadListsQuiet parses the run flags in args and builds the filter set
// from their lists without logging and without touching the network (URL
// lists come from the cache `run` fills), printing each list warning to
// warnOut: what `check` and `explain` share.
func loadListsQuiet(args []string, stderr, warnOut io.Writer) (*runConfig, *filter.Set, error) {
	c, err := parseRunFlags(args, stderr)
	if err != nil {
		return nil, nil, err
	}
	var specs []listSpec
	for _, r := range c.blocklists {
		ls, err := parseListSpec(r)
		if err != nil {
			return nil, nil, err
		}
		ls.opts.Name = ls.src
		if listsrc.IsURL(ls.src) {
			// Never download here: use the copy `run` cached.
			src := listsrc.Source{URL: ls.src, CacheDir: c.listCache}
			if !src.HasCopy() {
				return nil, nil, fmt.Errorf("block list %s is not downloaded yet: `dnstun run` fetches it into %s (--list-cache)", ls.src, c.listCache)
			}
			ls.opts.Name = src.Path()
		}
		specs = append(specs, ls)
	}
	set, warnings, err := buildSet(specs, c.rules, c.bypassSignals)
	if err != nil {
		return nil, nil, err
	}
	for _, w := range warnings {
		fmt.Fprintln(warnOut, "warning:", w)
	}
	return c, set, nil
}

func buildSet(specs []listSpec, inline []string, bypass bool) (*filter.Set, []filter.ListWarning, error) {
	b := filter.NewBuilder()
	b.SetBypassSignals(bypass)
	var warnings []filter.ListWarning
	warn := func(w filter.ListWarning) { warnings = append(warnings, w) }
	for _, ls := range specs {
		if err := b.LoadFile(ls.opts, warn); err != nil {
			return nil, warnings, err
		}
	}
	if len(inline) > 0 {
		if _, err := b.ParseListWith(strings.NewReader(strings.Join(inline, "\n")), filter.ListOptions{Name: "inline rules"}, warn); err != nil {
			return nil, warnings, err
		}
	}
	return b.Build(), warnings, nil
}

// loadLists builds the filter set, logging a summary of the warnings (the
// first few in full).
func loadLists(c *runConfig, specs []listSpec, log *slog.Logger) (*filter.Set, error) {
	start := time.Now()
	set, warnings, err := buildSet(specs, c.rules, c.bypassSignals)
	if err != nil {
		return nil, err
	}
	for i, w := range warnings {
		if i == 5 {
			log.Warn("more list warnings not shown", "count", len(warnings)-5)
			break
		}
		log.Warn("list line skipped", "warning", w.String())
	}
	log.Info("block lists loaded", "lists", len(specs), "rules", set.Len(), "took", time.Since(start).Round(time.Millisecond))
	return set, nil
}

// releaseMemory returns to the system what building a rule set left as
// garbage (parsing a 1M-name list allocates several times what the set
// keeps); call it once the new set is installed and the old one dropped.
func releaseMemory() { debug.FreeOSMemory() }

// serve runs dnstun until ctx ends: lists first (a bad list stops us before
// the system is touched), then the TUN, then the engine. SIGHUP reloads the
// lists; a list that fails keeps the old set serving.
// newEngine opens the front-end (the TUN, or the flow socket) and the
// engine over it. It returns the TUN's name ("" in flow mode).
func newEngine(c *runConfig, f filter.Filter, log *slog.Logger) (*engine.Engine, string, error) {
	if c.mode == "flow" {
		pc, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(c.listen))
		if err != nil {
			return nil, "", fmt.Errorf("flow mode: listen on %v: %w", c.listen, err)
		}
		e, err := engine.NewFlow(c.engine, pc, f)
		if err != nil {
			pc.Close()
			return nil, "", err
		}
		return e, "", nil
	}
	cfg := tun.Config{Name: c.tunName, MTU: c.mtu, Logger: log}
	for _, a := range c.tunAddrs {
		cfg.Addrs = append(cfg.Addrs, netip.PrefixFrom(a, a.BitLen()))
	}
	for _, r := range c.resolvers {
		cfg.Routes = append(cfg.Routes, netip.PrefixFrom(r, r.BitLen()))
	}
	dev, name, err := tun.Open(cfg)
	if err != nil {
		return nil, "", err
	}
	e, err := engine.New(c.engine, dev, f)
	if err != nil {
		dev.Close()
		return nil, "", err
	}
	return e, name, nil
}

// SPDX-License-Identifier: MIT

package config

import (
	"log/slog"
	"net/netip"
	"runtime"
	"slices"
	"time"

	"github.com/dnstun/dnstun/engine"
	"github.com/dnstun/dnstun/filter"
	"github.com/dnstun/dnstun/tun"
	"github.com/dnstun/dnstun/upstream"
)

// Options is dnstun's validated configuration: the file (if any), then the
// flags given on the command line, checked once by one validator. Produce
// it with File.Options or Flags.Options; it is immutable once returned
// (share it, never change it: a reload builds a new one).
type Options struct {
	Tun       string
	MTU       int
	Resolvers []netip.Addr // the virtual resolvers, routed into the TUN
	TunAddrs  []netip.Addr // the TUN's own addresses, one per resolver family at least
	// TunQueues is how many queues the TUN has, as given; 0: one per CPU
	// (Queues says how many that is).
	TunQueues int
	// Upstreams are the default upstreams as given; empty means: follow
	// the system's resolvers (ResolvConf, or macOS's dynamic store).
	Upstreams []upstream.Spec
	// Domains are the routed domains (split DNS).
	Domains      []engine.DomainUpstreams
	Bootstrap    []netip.AddrPort // empty: the system's resolvers
	UpstreamMode engine.Strategy
	Upstream0x20 bool
	// SocketQueries is how many queries a plain UDP upstream socket carries.
	SocketQueries int
	// Sockets is how many plain UDP sockets of an upstream are in service.
	Sockets    int
	ResolvConf string

	Blocklists    []ListSpec
	Rules         []string // inline rules, any list format
	BypassSignals bool
	ListCache     string
	ListRefresh   time.Duration
	ListWatch     time.Duration // 0: no watching

	BlockMode  filter.BlockMode
	BlockAddrs []netip.Addr // with filter.ModeCustom
	BlockTTL   uint32

	// CacheBytes bounds the response cache; 0: no cache.
	CacheBytes    int
	CacheMinTTL   time.Duration
	CacheMaxTTL   time.Duration
	CacheStaleFor time.Duration // 0: no serve-stale

	UpstreamTimeout time.Duration
	Timeout         time.Duration
	MaxPending      int
	ClientRate      int // 0: no bound
	TCPIdleTimeout  time.Duration

	LogLevel slog.Level

	// Attribution finds the process behind each local query.
	Attribution bool
	// QueryLogFile, if set, receives every query as a JSON line, rotated
	// at QueryLogSize bytes, QueryLogKeep old files kept.
	QueryLogFile string
	QueryLogSize int
	QueryLogKeep int
	// Metrics is where Prometheus metrics are served; invalid: off.
	Metrics netip.AddrPort
	// Dnstap is where dnstap messages go (unix:PATH, file:PATH); "": off.
	Dnstap string

	Mode   string         // "tun" or "flow"
	Listen netip.AddrPort // flow mode's socket

	Capture          CaptureOptions
	Control          ControlOptions
	StateFile        string
	ExitWhenDisabled bool

	// ConfigFile is the file the options were read from ("" for none).
	ConfigFile string
}

// CaptureOptions are the options of --capture.
type CaptureOptions struct {
	Enabled  bool
	StateDir string
	NFT      bool
	Resolved string        // auto, on, off
	Watchdog time.Duration // 0: off
}

// ControlOptions are the control socket's.
type ControlOptions struct {
	Socket string // "" = no control socket
	Group  string // "" = root only
}

// IsOwn reports whether a is one of dnstun's own addresses (a resolver or
// the TUN's): forwarding there would loop.
func (o *Options) IsOwn(a netip.Addr) bool {
	a = a.Unmap()
	return slices.Contains(o.Resolvers, a) || slices.Contains(o.TunAddrs, a)
}

// FollowsSystem reports whether the upstreams are the system's resolvers,
// re-read while dnstun runs (no upstream was given).
func (o *Options) FollowsSystem() bool { return len(o.Upstreams) == 0 }

// Queues is how many queues the TUN is opened with: TunQueues, or for 0
// one per CPU dnstun may use (GOMAXPROCS, which follows the CPU affinity
// and cgroup quota it starts with), at most tun.MaxQueues (so 1 on macOS).
func (o *Options) Queues() int {
	if o.TunQueues > 0 {
		return o.TunQueues
	}
	return min(runtime.GOMAXPROCS(0), tun.MaxQueues)
}

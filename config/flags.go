// SPDX-License-Identifier: MIT

package config

import (
	"flag"
	"fmt"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// RunFlag is one flag of `dnstun run` (and of check and explain, which
// take the same settings) and the file key it overrides.
type RunFlag struct {
	Name  string // without dashes
	Key   string // the dotted key of the file
	Usage string
}

// RunFlags ties every key of the file to its flag: one table, so the two
// cannot drift (a test checks every key has a flag).
var RunFlags = []RunFlag{
	{"tun", "tun", "TUN device name (darwin: utun or utunN)"},
	{"mtu", "mtu", "TUN MTU"},
	{"resolver", "resolvers", "virtual resolver address served on the TUN (repeatable)"},
	{"tun-addr", "tun_addrs", "the TUN's own address (repeatable; default 198.19.53.1 and fd64:6e73:7475::1, one per resolver family)"},
	{"tun-queues", "tun_queues", "TUN queues, each read by its own goroutine (Linux: IFF_MULTI_QUEUE; the kernel spreads clients' flows across them): 0 is one per CPU dnstun may use (GOMAXPROCS), at most 64; macOS's utun has one"},
	{"upstream", "upstreams", "upstream resolver (repeatable): IP[:PORT] or udp://, tcp://IP[:PORT], tls://HOST[:853], https://HOST[:443]/dns-query, h3://HOST/dns-query, quic://HOST[:853], optionally #pin-sha256=BASE64; \"[/corp.example/]UPSTREAM\" for the names under a domain only (\"#\" as UPSTREAM: the default upstreams); default: the system's resolvers, from --resolv-conf"},
	{"bootstrap", "bootstrap", "plain resolver IP[:PORT] that resolves the host names of upstream URLs (repeatable; default: the system's resolvers)"},
	{"upstream-mode", "upstream_mode", "how upstreams are asked: failover (in order, the next one when one fails), parallel (all at once, first answer wins), fastest (the one with the lowest recent round trip)"},
	{"upstream-sockets", "upstream_sockets", "how many plain UDP sockets (random source ports) an upstream has in service at once; each query leaves on one picked at random"},
	{"upstream-socket-queries", "upstream_socket_queries", "how many queries one plain UDP upstream socket (one source port) carries before a fresh one takes over (it also leaves service after 1s): 1 is a new random port per query, at about twice the CPU per forwarded query"},
	{"upstream-0x20", "upstream_0x20", "randomise the case of each name sent upstream and accept only answers that repeat it (0x20; some servers do not, and then time out)"},
	{"resolv-conf", "resolv_conf", "where default upstreams are read from"},
	{"blocklist", "blocklists", "block list: a file or an http(s) URL (cached, refreshed), then optional \"mode=null|nodata|refused|nxdomain|IP,...\" and \"ttl=SECONDS\" for its block answers; hosts, plain domains or adblock-style rules (repeatable)"},
	{"rule", "rules", "an inline rule in any list format, e.g. \"||ads.example^\" or \"192.0.2.10 printer.lan\" (repeatable)"},
	{"bypass-signals", "bypass_signals", "answer the canary names of DNS-bypass features (Firefox DoH canary, iCloud Private Relay, DDR) so clients keep using dnstun"},
	{"list-cache", "list_cache", "where lists given as URLs are cached"},
	{"list-refresh", "list_refresh", "how often lists given as URLs are refreshed"},
	{"list-watch", "list_watch", "how often list files are checked for changes on disk, which reload them (0: only SIGHUP and `dnstun reload`)"},
	{"block-mode", "block_mode", "answer for blocked names: nxdomain, null (0.0.0.0 / ::), nodata, refused, or IP addresses (comma-separated) to answer with"},
	{"block-ttl", "block_ttl", "TTL of block answers that carry records (null mode, addresses)"},
	{"cache", "cache", "the response cache's size in bytes, a hard bound (e.g. 64MiB, 512KiB, 1GB; 0 turns the cache off)"},
	{"cache-min-ttl", "cache_min_ttl", "raise the TTL of positive answers in the cache to at least this (0: as the upstream gave)"},
	{"cache-max-ttl", "cache_max_ttl", "keep cached answers at most this long (at most 168h)"},
	{"cache-serve-stale", "cache_serve_stale", "when the upstream does not answer within --upstream-timeout, or the upstreams fail, answer from a cache entry expired less than this long ago, with TTL 30 (RFC 8767; 0 = off, at most 24h)"},
	{"upstream-timeout", "upstream_timeout", "time one upstream gets before the query moves to the next"},
	{"timeout", "timeout", "time after which a client gets SERVFAIL"},
	{"max-pending", "max_pending", "forwarded queries waiting at most; more are answered REFUSED (one client, a source address, may have a quarter of them waiting)"},
	{"client-rate", "client_rate", "queries a second one client (a source address) may send, with a burst of one second's worth; more are answered REFUSED (0 = no bound)"},
	{"tcp-idle-timeout", "tcp_idle_timeout", "close a DNS-over-TCP client connection without a query for this long"},
	{"log-level", "log_level", "debug, info, warn or error"},
	{"attribution", "attribution", "find the local process that sent each query (pid, name, executable; the query log shows it, $process rules use it)"},
	{"querylog-file", "querylog_file", "also write every query as a JSON line to this file (\"\" = none)"},
	{"querylog-file-size", "querylog_file_size", "rotate the query log file when it reaches this size (e.g. 10MiB)"},
	{"querylog-file-keep", "querylog_file_keep", "rotated query log files kept (FILE.1 is the newest)"},
	{"metrics", "metrics", "serve Prometheus metrics at http://ADDR/metrics: IP:PORT, or :PORT for 127.0.0.1:PORT (\"\" = off)"},
	{"dnstap", "dnstap", "write dnstap messages (client and forwarder queries and responses) to unix:PATH (a collector's socket) or file:PATH (\"\" = off)"},
	{"mode", "mode", "tun: packets on a TUN (dnstun's design); flow: the same engine behind a plain UDP socket, the model of Apple's NEDNSProxyProvider, for comparison"},
	{"listen", "listen", "flow mode: the UDP address to serve on"},
	{"capture", "capture.enabled", "steer the machine's own UDP port-53 traffic into the TUN, whatever resolver it was sent to (see README)"},
	{"state-dir", "capture.state_dir", "capture: where the lock and the journal live"},
	{"nft", "capture.nft", "capture: also use an nftables owner table when nft is available (catches IP_UNICAST_IF sockets)"},
	{"resolved", "capture.resolved", "capture: register with systemd-resolved: auto (when it is the system resolver, in the host's own network namespace), on, off"},
	{"watchdog", "capture.watchdog", "probe the data path this often (0 = off): with capture, after 3 unanswered probes steering is withdrawn and dnstun exits; in every mode, when no upstream answer reached a client for 5 intervals a forwarded probe is sent, and after 2 unanswered ones the upstreams are reported lost (status, log) and, with capture, steering is withdrawn until one answers"},
	{"control", "control.socket", "control socket path (\"\" = none)"},
	{"control-group", "control.group", "a group whose members may use the control socket besides root"},
	{"state-file", "state_file", "where the enabled/disabled choice persists across restarts"},
	{"exit-when-disabled", "exit_when_disabled", "exit (instead of idling with the control socket open) while disabled"},
}

// Flags holds the flags of `dnstun run` registered on a FlagSet. After
// the FlagSet is parsed, Options reads the file named by --config and lets
// each flag given on the command line override its key.
type Flags struct {
	Config string // --config
	fs     *flag.FlagSet
	goos   string
	cli    *File // the flags' values, over the defaults
}

// NewFlags registers RunFlags and --config on fs, with the defaults of
// the running OS.
func NewFlags(fs *flag.FlagSet) *Flags { return newFlags(fs, runtime.GOOS) }

func newFlags(fs *flag.FlagSet, goos string) *Flags {
	fl := &Flags{fs: fs, goos: goos, cli: DefaultFor(goos)}
	root := reflect.ValueOf(fl.cli).Elem()
	for _, rf := range RunFlags {
		fs.Var(&fieldFlag{v: fieldByKey(root, rf.Key)}, rf.Name, rf.Usage)
	}
	fs.StringVar(&fl.Config, "config", "", "configuration file (YAML; see config/example.yaml); flags given here override it")
	return fl
}

// Options returns the validated options: the defaults, then the file of
// --config, then each flag given on the command line (a repeatable flag
// replaces the file's whole list).
func (fl *Flags) Options() (*Options, error) {
	f := DefaultFor(fl.goos)
	if fl.Config != "" {
		data, err := readFile(fl.Config)
		if err != nil {
			return nil, err
		}
		if f, err = decode(data, fl.Config); err != nil {
			return nil, err
		}
	}
	f.flags = map[string]string{}
	src, dst := reflect.ValueOf(fl.cli).Elem(), reflect.ValueOf(f).Elem()
	fl.fs.Visit(func(x *flag.Flag) {
		for _, rf := range RunFlags {
			if rf.Name == x.Name {
				fieldByKey(dst, rf.Key).Set(fieldByKey(src, rf.Key))
				f.flags[rf.Key] = rf.Name
			}
		}
	})
	return f.Options()
}

// fieldByKey returns the field of a File at a dotted key.
func fieldByKey(v reflect.Value, key string) reflect.Value {
	for part := range strings.SplitSeq(key, ".") {
		idx, _ := fields(v.Type())
		i, ok := idx[part]
		if !ok {
			panic("config: no key " + key)
		}
		v = v.Field(i)
	}
	return v
}

// fieldFlag is a flag.Value over one field of a File. A list flag is
// repeatable: its first use replaces the default list.
type fieldFlag struct {
	v       reflect.Value
	touched bool
}

func (f *fieldFlag) String() string {
	if !f.v.IsValid() {
		return ""
	}
	switch x := f.v.Interface().(type) {
	case []string:
		return strings.Join(x, ",")
	case time.Duration:
		return x.String()
	}
	return fmt.Sprint(f.v.Interface())
}

func (f *fieldFlag) IsBoolFlag() bool { return f.v.IsValid() && f.v.Kind() == reflect.Bool }

func (f *fieldFlag) Set(s string) error {
	switch {
	case f.v.Type() == durationType:
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("%q is not a duration (write for example 2s or 500ms)", s)
		}
		f.v.SetInt(int64(d))
	case f.v.Kind() == reflect.String:
		f.v.SetString(s)
	case f.v.Kind() == reflect.Slice:
		if !f.touched {
			f.v.Set(reflect.ValueOf([]string{}))
		}
		f.v.Set(reflect.Append(f.v, reflect.ValueOf(s)))
	case f.v.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("%q is not true or false", s)
		}
		f.v.SetBool(b)
	case f.v.Kind() == reflect.Int:
		i, err := strconv.Atoi(s)
		if err != nil {
			return fmt.Errorf("%q is not an integer", s)
		}
		f.v.SetInt(int64(i))
	case f.v.Kind() == reflect.Uint32:
		u, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			return fmt.Errorf("%q is not an integer from 0 to 4294967295", s)
		}
		f.v.SetUint(u)
	default:
		panic("config: no flag type for " + f.v.Type().String())
	}
	f.touched = true
	return nil
}

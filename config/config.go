// SPDX-License-Identifier: MIT

package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"reflect"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/dnstun/dnstun/cache"
	"github.com/dnstun/dnstun/engine"
	"github.com/dnstun/dnstun/listsrc"
	"github.com/dnstun/dnstun/tun"
	"github.com/dnstun/dnstun/upstream"
	"go.yaml.in/yaml/v3"
)

// File is dnstun's configuration: one field per flag of `dnstun run`, plus
// the control socket and the lifecycle options. Addresses are kept as
// written; Options checks them.
type File struct {
	Tun             string        `yaml:"tun"`                     // --tun
	MTU             int           `yaml:"mtu"`                     // --mtu
	Resolvers       []string      `yaml:"resolvers"`               // --resolver
	TunAddrs        []string      `yaml:"tun_addrs"`               // --tun-addr (empty: one default per resolver family)
	TunQueues       int           `yaml:"tun_queues"`              // --tun-queues (0 = one per CPU)
	Upstreams       []string      `yaml:"upstreams"`               // --upstream (empty: the nameservers of resolv_conf)
	Bootstrap       []string      `yaml:"bootstrap"`               // --bootstrap (empty: the system's resolvers)
	UpstreamMode    string        `yaml:"upstream_mode"`           // --upstream-mode
	Upstream0x20    bool          `yaml:"upstream_0x20"`           // --upstream-0x20
	Sockets         int           `yaml:"upstream_sockets"`        // --upstream-sockets
	SocketQueries   int           `yaml:"upstream_socket_queries"` // --upstream-socket-queries
	ResolvConf      string        `yaml:"resolv_conf"`             // --resolv-conf
	Blocklists      []string      `yaml:"blocklists"`              // --blocklist (paths or http(s) URLs)
	Rules           []string      `yaml:"rules"`                   // --rule: inline rules, any list format
	BypassSignals   bool          `yaml:"bypass_signals"`          // --bypass-signals
	ListCache       string        `yaml:"list_cache"`              // --list-cache
	ListRefresh     time.Duration `yaml:"list_refresh"`            // --list-refresh
	ListWatch       time.Duration `yaml:"list_watch"`              // --list-watch
	BlockMode       string        `yaml:"block_mode"`              // --block-mode
	BlockTTL        uint32        `yaml:"block_ttl"`               // --block-ttl
	Cache           string        `yaml:"cache"`                   // --cache: its size in bytes ("64MiB"; "0" turns it off)
	CacheMinTTL     time.Duration `yaml:"cache_min_ttl"`           // --cache-min-ttl
	CacheMaxTTL     time.Duration `yaml:"cache_max_ttl"`           // --cache-max-ttl
	CacheServeStale time.Duration `yaml:"cache_serve_stale"`       // --cache-serve-stale (0 = off)
	UpstreamTimeout time.Duration `yaml:"upstream_timeout"`        // --upstream-timeout
	Timeout         time.Duration `yaml:"timeout"`                 // --timeout
	MaxPending      int           `yaml:"max_pending"`             // --max-pending
	ClientRate      int           `yaml:"client_rate"`             // --client-rate (0 = no bound)
	TCPIdleTimeout  time.Duration `yaml:"tcp_idle_timeout"`        // --tcp-idle-timeout
	LogLevel        string        `yaml:"log_level"`               // --log-level
	Attribution     bool          `yaml:"attribution"`             // --attribution
	QueryLogFile    string        `yaml:"querylog_file"`           // --querylog-file ("" = none)
	QueryLogSize    string        `yaml:"querylog_file_size"`      // --querylog-file-size
	QueryLogKeep    int           `yaml:"querylog_file_keep"`      // --querylog-file-keep
	Metrics         string        `yaml:"metrics"`                 // --metrics ("" = off)
	Dnstap          string        `yaml:"dnstap"`                  // --dnstap ("" = off)
	Mode            string        `yaml:"mode"`                    // --mode: tun or flow
	Listen          string        `yaml:"listen"`                  // --listen (flow mode)
	Capture         Capture       `yaml:"capture"`
	Control         Control       `yaml:"control"`
	// StateFile keeps the enabled/disabled choice across restarts.
	StateFile string `yaml:"state_file"` // --state-file
	// ExitWhenDisabled makes the process exit (instead of idling with the
	// control socket open) while dnstun is disabled; the service manager
	// is told not to restart it (see package service).
	ExitWhenDisabled bool `yaml:"exit_when_disabled"` // --exit-when-disabled

	name  string            // the file's name in errors
	pos   map[string]Pos    // where each key's value was, by dotted path
	flags map[string]string // the keys a command-line flag set, to the flag's name
}

// Capture holds the --capture options.
type Capture struct {
	Enabled  bool          `yaml:"enabled"`   // --capture
	StateDir string        `yaml:"state_dir"` // --state-dir
	NFT      bool          `yaml:"nft"`       // --nft
	Resolved string        `yaml:"resolved"`  // --resolved: auto, on, off
	Watchdog time.Duration `yaml:"watchdog"`  // --watchdog (0 = off)
}

// Control holds the control socket's options.
type Control struct {
	Socket string `yaml:"socket"` // --control: the unix socket's path ("" = none)
	Group  string `yaml:"group"`  // --control-group: a group whose members may use it besides root ("" = root only)
}

// Pos is a position in a file, 1-based.
type Pos struct{ Line, Column int }

// The defaults: DefaultFor is the one table of them. The flags of `dnstun
// run`, example.yaml and the config `dnstun install` writes all come from
// it (tests hold them together); the engine's own defaults for a zero
// Config are the same constants.
const (
	DefaultMTU             = tun.DefaultMTU
	DefaultTunQueues       = 1 // not 0 (one per CPU) yet: see tun_queues in example.yaml
	DefaultResolvConf      = upstream.ResolvConfPath
	DefaultBlockMode       = "nxdomain"
	DefaultBlockTTL        = engine.DefaultBlockTTL
	DefaultUpstreamTimeout = engine.DefaultUpstreamTimeout
	DefaultTimeout         = engine.DefaultTotalTimeout
	DefaultMaxPending      = engine.DefaultMaxPending
	DefaultClientRate      = 5000
	DefaultTCPIdleTimeout  = engine.DefaultTCPIdleTimeout
	DefaultLogLevel        = "info"
	DefaultQueryLogSize    = "10MiB"
	DefaultQueryLogKeep    = 3
	DefaultUpstreamMode    = "failover"
	DefaultSockets         = 8
	DefaultSocketQueries   = 32
	DefaultCache           = "64MiB"
	DefaultCacheMaxTTL     = cache.DefaultMaxTTL
	DefaultMode            = "tun"
	DefaultListen          = "127.0.0.1:53"
	DefaultResolved        = "auto"
	DefaultWatchdog        = 2 * time.Second
	DefaultListCache       = listsrc.DefaultCacheDir
	DefaultListRefresh     = 24 * time.Hour
	DefaultListWatch       = 2 * time.Second
	DefaultStateFile       = "/var/lib/dnstun/state.json"
)

// DefaultResolvers are the virtual resolver addresses served on the TUN,
// and DefaultTunAddr4/6 the TUN's own address for each family a resolver
// uses. They sit where common VPNs and proxies do not: 198.19.0.0/16 is
// the upper half of the RFC 2544 benchmarking block (mihomo's and Clash's
// fake-IP ranges use 198.18.0.0/16, Tailscale 100.64.0.0/10, Docker and
// LANs RFC 1918), and fd64:6e73:7475::/48 is a unique local prefix (RFC
// 4193) whose global ID spells "dnstu". They are host routes on the TUN
// only and vanish with it.
var (
	DefaultResolvers = []string{"198.19.53.53", "fd64:6e73:7475::53"}
	DefaultTunAddr4  = netip.MustParseAddr("198.19.53.1")
	DefaultTunAddr6  = netip.MustParseAddr("fd64:6e73:7475::1")
)

// RunDir is where dnstun keeps its runtime state (lock, journal, control
// socket) on goos.
func RunDir(goos string) string {
	if goos == "darwin" {
		return "/var/run/dnstun"
	}
	return "/run/dnstun"
}

// DefaultSocket is the control socket's default path on goos.
func DefaultSocket(goos string) string { return RunDir(goos) + "/control.sock" }

// Default returns the defaults for this OS.
func Default() *File { return DefaultFor(runtime.GOOS) }

// DefaultFor returns the defaults for goos.
func DefaultFor(goos string) *File {
	tun := "dnstun0"
	if goos == "darwin" {
		tun = "utun"
	}
	return &File{
		Tun:             tun,
		MTU:             DefaultMTU,
		TunQueues:       DefaultTunQueues,
		Resolvers:       append([]string(nil), DefaultResolvers...),
		ResolvConf:      DefaultResolvConf,
		BypassSignals:   true,
		ListCache:       DefaultListCache,
		ListRefresh:     DefaultListRefresh,
		ListWatch:       DefaultListWatch,
		BlockMode:       DefaultBlockMode,
		BlockTTL:        DefaultBlockTTL,
		UpstreamMode:    DefaultUpstreamMode,
		Sockets:         DefaultSockets,
		SocketQueries:   DefaultSocketQueries,
		Cache:           DefaultCache,
		CacheMaxTTL:     DefaultCacheMaxTTL,
		UpstreamTimeout: DefaultUpstreamTimeout,
		Timeout:         DefaultTimeout,
		MaxPending:      DefaultMaxPending,
		ClientRate:      DefaultClientRate,
		TCPIdleTimeout:  DefaultTCPIdleTimeout,
		LogLevel:        DefaultLogLevel,
		Attribution:     true,
		QueryLogSize:    DefaultQueryLogSize,
		QueryLogKeep:    DefaultQueryLogKeep,
		Mode:            DefaultMode,
		Listen:          DefaultListen,
		Capture: Capture{
			StateDir: RunDir(goos),
			NFT:      true,
			Resolved: DefaultResolved,
			Watchdog: DefaultWatchdog,
		},
		Control:   Control{Socket: DefaultSocket(goos)},
		StateFile: DefaultStateFile,
	}
}

// Error is one problem in a configuration file or with a flag.
type Error struct {
	Flag   string // the flag that set the value ("" when it came from a file)
	File   string
	Line   int    // 1-based; 0 when unknown
	Column int    // 1-based; 0 when unknown
	Key    string // the dotted key the problem is about, if any
	Msg    string
	Hint   string // what to do about it, if anything helps
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Flag != "" {
		// A value from the command line: name the flag, not the key.
		fmt.Fprintf(&b, "--%s: %s", e.Flag, e.Msg)
		if e.Hint != "" {
			fmt.Fprintf(&b, " (%s)", e.Hint)
		}
		return b.String()
	}
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
		if e.Column > 0 {
			fmt.Fprintf(&b, ":%d", e.Column)
		}
	}
	b.WriteString(": ")
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	if e.Hint != "" {
		b.WriteString(" (")
		b.WriteString(e.Hint)
		b.WriteString(")")
	}
	return b.String()
}

// MaxSize bounds a configuration file.
const MaxSize = 1 << 20

// Load reads, parses and validates the file at path.
func Load(path string) (*File, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(data, path)
}

func readFile(path string) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	data, err := io.ReadAll(io.LimitReader(fh, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return data, nil
}

// Parse parses and validates data, naming it name in errors. Absent keys
// keep their defaults. The error, if any, joins one *Error per problem.
func Parse(data []byte, name string) (*File, error) {
	f, err := decode(data, name)
	if err != nil {
		return nil, err
	}
	if _, err := f.Options(); err != nil {
		return nil, err
	}
	return f, nil
}

// decode parses data without validating the values: the flags may still
// override them (see Flags.Options).
func decode(data []byte, name string) (f *File, err error) {
	if name == "" {
		name = "config"
	}
	if len(data) > MaxSize {
		return nil, &Error{File: name, Msg: fmt.Sprintf("file larger than %d bytes", MaxSize)}
	}
	defer func() {
		// The YAML library is not supposed to panic; if it ever does on
		// some input, that input is still only a bad file.
		if r := recover(); r != nil {
			f, err = nil, &Error{File: name, Msg: fmt.Sprintf("cannot parse: %v", r)}
		}
	}()
	f = Default()
	f.name = name
	f.pos = map[string]Pos{}
	d := &decoder{file: name, pos: f.pos}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil && err != io.EOF {
		return nil, syntaxError(name, err)
	}
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		root := doc.Content[0]
		if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
			// A file of comments only: all defaults.
		} else {
			d.value(root, reflect.ValueOf(f).Elem(), "")
		}
		var more yaml.Node
		if err := dec.Decode(&more); err != io.EOF {
			line := 0
			if err == nil {
				line = more.Line
			}
			d.errs = append(d.errs, &Error{File: name, Line: line, Msg: "more than one YAML document", Hint: "remove the second '---'"})
		}
	}
	if len(d.errs) > 0 {
		return nil, errors.Join(d.errs...)
	}
	return f, nil
}

var lineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func syntaxError(name string, err error) error {
	msg := err.Error()
	if m := lineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &Error{File: name, Line: line, Msg: "YAML syntax: " + m[2], Hint: "check the indentation and the quoting on this line and the one before"}
	}
	return &Error{File: name, Msg: "YAML syntax: " + strings.TrimPrefix(msg, "yaml: ")}
}

// decoder walks the node tree into a File, strictly, recording where each
// key's value was.
type decoder struct {
	file string
	errs []error
	pos  map[string]Pos
}

func (d *decoder) fail(n *yaml.Node, key, msg, hint string) {
	d.errs = append(d.errs, &Error{File: d.file, Line: n.Line, Column: n.Column, Key: key, Msg: msg, Hint: hint})
}

var durationType = reflect.TypeFor[time.Duration]()

// describe names what a node is, for "want X, got Y" messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	switch n.Tag {
	case "!!str":
		return fmt.Sprintf("the string %q", n.Value)
	case "!!int":
		return "the integer " + n.Value
	case "!!bool":
		return "the boolean " + n.Value
	case "!!float":
		return "the number " + n.Value
	case "!!null":
		return "no value"
	}
	return fmt.Sprintf("a %s value", n.Tag)
}

// value decodes n into v; path is the dotted key ("" for the root).
func (d *decoder) value(n *yaml.Node, v reflect.Value, path string) {
	key := path
	if n.Kind == yaml.AliasNode || n.Anchor != "" {
		d.fail(n, key, "YAML anchors and aliases are not supported", "write the value out")
		return
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" && v.Kind() == reflect.String && strings.EqualFold(n.Value, "null") {
		// block_mode: null means the null block mode, not "no value".
		d.pos[path] = Pos{n.Line, n.Column}
		v.SetString(strings.ToLower(n.Value))
		return
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" && path != "" {
		d.fail(n, key, "has no value", "give a value, or remove the line to keep the default")
		return
	}
	if n.Kind == yaml.ScalarNode && n.Style&yaml.TaggedStyle != 0 {
		d.fail(n, key, "explicit YAML tags are not supported", "remove "+n.Tag)
		return
	}
	if path != "" {
		d.pos[path] = Pos{n.Line, n.Column}
	}
	t := v.Type()
	switch {
	case t == durationType:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
			hint := "write a Go duration string such as 2s or 500ms"
			if n.Tag == "!!int" {
				hint = "a number has no unit: write " + n.Value + "s for seconds"
			}
			d.fail(n, key, "want a duration, got "+describe(n), hint)
			return
		}
		dur, err := time.ParseDuration(n.Value)
		if err != nil {
			d.fail(n, key, fmt.Sprintf("%q is not a duration", n.Value), "write a Go duration string such as 2s, 1m30s or 500ms")
			return
		}
		v.SetInt(int64(dur))
	case t.Kind() == reflect.Struct:
		if n.Kind != yaml.MappingNode {
			what := "the file"
			if path != "" {
				what = "this section"
			}
			d.fail(n, key, "want a mapping of keys to values, got "+describe(n), what+" holds key: value lines")
			return
		}
		d.mapping(n, v, path)
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.String:
		if n.Kind != yaml.SequenceNode {
			hint := "write a list: [a, b] or one '- item' per line"
			if n.Kind == yaml.ScalarNode {
				hint = fmt.Sprintf("write a list, even of one: [%s]", n.Value)
			}
			d.fail(n, key, "want a list of strings, got "+describe(n), hint)
			return
		}
		out := make([]string, 0, len(n.Content))
		ok := true
		for i, item := range n.Content {
			ik := fmt.Sprintf("%s[%d]", path, i)
			if item.Kind == yaml.AliasNode || item.Anchor != "" {
				d.fail(item, ik, "YAML anchors and aliases are not supported", "write the value out")
				ok = false
				continue
			}
			if item.Kind != yaml.ScalarNode || item.Tag != "!!str" {
				d.fail(item, ik, "want a string, got "+describe(item), "quote it")
				ok = false
				continue
			}
			d.pos[ik] = Pos{item.Line, item.Column}
			out = append(out, item.Value)
		}
		if ok {
			v.Set(reflect.ValueOf(out))
		}
	case t.Kind() == reflect.String:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
			hint := ""
			if n.Kind == yaml.ScalarNode {
				hint = fmt.Sprintf("quote it if you mean the text: %q", n.Value)
			}
			d.fail(n, key, "want a string, got "+describe(n), hint)
			return
		}
		v.SetString(n.Value)
	case t.Kind() == reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
			d.fail(n, key, "want true or false, got "+describe(n), "YAML 1.2: yes/no/on/off are strings here")
			return
		}
		var b bool
		if err := n.Decode(&b); err != nil {
			d.fail(n, key, "want true or false, got "+describe(n), "")
			return
		}
		v.SetBool(b)
	case t.Kind() == reflect.Int || t.Kind() == reflect.Uint32:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
			hint := ""
			if n.Tag == "!!str" {
				if _, err := strconv.Atoi(n.Value); err == nil {
					hint = "remove the quotes"
				}
			}
			d.fail(n, key, "want an integer, got "+describe(n), hint)
			return
		}
		var i int64
		if err := n.Decode(&i); err != nil {
			d.fail(n, key, fmt.Sprintf("%s is out of range", n.Value), "")
			return
		}
		if t.Kind() == reflect.Uint32 {
			if i < 0 || i > 1<<32-1 {
				d.fail(n, key, fmt.Sprintf("%d is out of range", i), "want 0 to 4294967295")
				return
			}
			v.SetUint(uint64(i))
			return
		}
		v.SetInt(i)
	default:
		panic("config: no decoder for " + t.String())
	}
}

// fields maps a struct type's YAML keys to field indexes.
func fields(t reflect.Type) (map[string]int, []string) {
	m := map[string]int{}
	var names []string
	for i := 0; i < t.NumField(); i++ {
		tag := t.Field(i).Tag.Get("yaml")
		if tag == "" || tag == "-" {
			continue
		}
		m[tag] = i
		names = append(names, tag)
	}
	return m, names
}

func (d *decoder) mapping(n *yaml.Node, v reflect.Value, path string) {
	m, names := fields(v.Type())
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.Tag != "!!str" {
			if k.Kind == yaml.ScalarNode && k.Tag == "!!merge" {
				d.fail(k, path, "YAML merge keys (<<) are not supported", "write the keys out")
			} else {
				d.fail(k, path, "want a key name, got "+describe(k), "")
			}
			continue
		}
		full := k.Value
		if path != "" {
			full = path + "." + k.Value
		}
		if line, dup := seen[k.Value]; dup {
			d.fail(k, "", fmt.Sprintf("duplicate key %q", full), fmt.Sprintf("first set on line %d; keep one", line))
			continue
		}
		seen[k.Value] = k.Line
		idx, ok := m[k.Value]
		if !ok {
			d.fail(k, "", fmt.Sprintf("unknown key %q", full), suggest(k.Value, path, names))
			continue
		}
		d.value(val, v.Field(idx), full)
	}
}

// sectionKeys lists each section's keys, for hints about keys written in
// the wrong section.
var sectionKeys = func() map[string][]string {
	out := map[string][]string{}
	t := reflect.TypeFor[File]()
	_, out[""] = fields(t)
	for _, s := range []string{"capture", "control"} {
		for i := 0; i < t.NumField(); i++ {
			if t.Field(i).Tag.Get("yaml") == s {
				_, out[s] = fields(t.Field(i).Type)
			}
		}
	}
	return out
}()

// suggest returns a hint for an unknown key: a near miss in the same
// section, or the same key in another section.
func suggest(key, section string, names []string) string {
	norm := func(s string) string { return strings.ToLower(strings.NewReplacer("-", "_", " ", "_").Replace(s)) }
	best, bestD := "", 3
	for _, n := range names {
		d := distance(norm(key), n)
		if norm(key) == n || norm(key)+"s" == n || norm(key) == n+"s" {
			d = 0
		}
		if d < bestD {
			best, bestD = n, d
		}
	}
	if best != "" && bestD <= max(1, len(best)/3) {
		full := best
		if section != "" {
			full = section + "." + best
		}
		return fmt.Sprintf("did you mean %q?", full)
	}
	secs := make([]string, 0, len(sectionKeys))
	for s := range sectionKeys {
		secs = append(secs, s)
	}
	sort.Strings(secs)
	for _, s := range secs {
		if s == section {
			continue
		}
		for _, n := range sectionKeys[s] {
			if n == norm(key) {
				if s == "" {
					return fmt.Sprintf("%q is a top-level key, not in %s", n, section)
				}
				return fmt.Sprintf("did you mean %q? it belongs in the %s section", s+"."+n, s)
			}
		}
	}
	where := "top-level keys"
	if section != "" {
		where = section + " keys"
	}
	return where + ": " + strings.Join(names, ", ")
}

// distance is the Levenshtein distance between a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := 1
			if a[i-1] == b[j-1] {
				c = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+c)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

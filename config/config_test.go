// SPDX-License-Identifier: MIT

package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/dnstun/dnstun/tun"
)

func strip(f *File) File {
	c := *f
	c.name, c.pos, c.flags = "", nil, nil
	return c
}

// TestExampleGolden: the shipped example parses to exactly this.
func TestExampleGolden(t *testing.T) {
	f, err := Parse(Example, "example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tun := "dnstun0"
	if runtime.GOOS == "darwin" {
		tun = "utun"
	}
	want := File{
		Tun:             tun,
		MTU:             1500,
		TunQueues:       1,
		Resolvers:       []string{"198.19.53.53", "fd64:6e73:7475::53"},
		ResolvConf:      "/etc/resolv.conf",
		Blocklists:      []string{},
		Rules:           []string{},
		BypassSignals:   true,
		ListCache:       "/var/lib/dnstun/lists",
		ListRefresh:     24 * time.Hour,
		ListWatch:       2 * time.Second,
		BlockMode:       "nxdomain",
		BlockTTL:        10,
		UpstreamMode:    "failover",
		Sockets:         8,
		SocketQueries:   32,
		Cache:           "64MiB",
		CacheMaxTTL:     24 * time.Hour,
		UpstreamTimeout: 2 * time.Second,
		Timeout:         5 * time.Second,
		MaxPending:      4096,
		TCPIdleTimeout:  10 * time.Second,
		LogLevel:        "info",
		Mode:            "tun",
		Listen:          "127.0.0.1:53",
		Capture: Capture{
			Enabled:  false,
			StateDir: RunDir(runtime.GOOS),
			NFT:      true,
			Resolved: "auto",
			Watchdog: 2 * time.Second,
		},
		Control:      Control{Socket: RunDir(runtime.GOOS) + "/control.sock", Group: ""},
		StateFile:    "/var/lib/dnstun/state.json",
		Attribution:  true,
		QueryLogSize: "10MiB",
		QueryLogKeep: 3,
		ClientRate:   5000,
	}
	if got := strip(f); !reflect.DeepEqual(got, want) {
		t.Errorf("example.yaml parsed to\n%+v\nwant\n%+v", got, want)
	}
	// The example holds the defaults: it must agree with Default.
	def := strip(Default())
	def.Blocklists = []string{}
	def.Rules = []string{}
	if !reflect.DeepEqual(def, want) {
		t.Errorf("Default() = %+v, the example says %+v", def, want)
	}
	_, watchdog := f.pos["capture.watchdog"]
	_, upstreams := f.pos["upstreams"]
	if !watchdog || upstreams || f.name != "example.yaml" {
		t.Errorf("positions or name wrong: watchdog %v upstreams %v name %q", watchdog, upstreams, f.name)
	}
}

func TestParseFull(t *testing.T) {
	src := `tun: dt1
mtu: 1400
resolvers: [10.99.0.53]
tun_addrs: [10.99.0.1]
tun_queues: 0
upstreams: [192.0.2.1, "192.0.2.2:5353", "[2001:db8::1]:53"]
resolv_conf: /tmp/resolv.conf
blocklists: [/etc/dnstun/a.txt, /etc/dnstun/b.txt, "https://lists.example/ads.txt"]
list_cache: /var/cache/dt
list_refresh: 6h
list_watch: 0s
rules: ["192.0.2.10 printer.lan"]
bypass_signals: false
block_mode: null
block_ttl: 60
upstream_timeout: 500ms
timeout: 3s
max_pending: 100
log_level: debug
mode: flow
listen: "[::1]:5353"
capture: {enabled: false, state_dir: /var/tmp/dt, nft: false, resolved: "off", watchdog: 0s}
control:
  socket: /run/dt.sock
  group: dnstun
exit_when_disabled: true
`
	f, err := Parse([]byte(src), "full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := File{
		Tun: "dt1", MTU: 1400, Resolvers: []string{"10.99.0.53"}, TunAddrs: []string{"10.99.0.1"}, TunQueues: 0,
		Upstreams:  []string{"192.0.2.1", "192.0.2.2:5353", "[2001:db8::1]:53"},
		ResolvConf: "/tmp/resolv.conf", Blocklists: []string{"/etc/dnstun/a.txt", "/etc/dnstun/b.txt", "https://lists.example/ads.txt"},
		ListCache: "/var/cache/dt", ListRefresh: 6 * time.Hour, ListWatch: 0,
		Rules: []string{"192.0.2.10 printer.lan"}, BypassSignals: false,
		BlockMode: "null", BlockTTL: 60, UpstreamMode: "failover", Sockets: 8, SocketQueries: 32, Cache: "64MiB", CacheMaxTTL: 24 * time.Hour, UpstreamTimeout: 500 * time.Millisecond, Timeout: 3 * time.Second,
		MaxPending: 100, TCPIdleTimeout: 10 * time.Second, LogLevel: "debug", Mode: "flow", Listen: "[::1]:5353",
		Capture:          Capture{StateDir: "/var/tmp/dt", Resolved: "off"},
		Control:          Control{Socket: "/run/dt.sock", Group: "dnstun"},
		ExitWhenDisabled: true,
		StateFile:        "/var/lib/dnstun/state.json",
		Attribution:      true, QueryLogSize: "10MiB", QueryLogKeep: 3, ClientRate: 5000,
	}
	if got := strip(f); !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%+v\nwant\n%+v", got, want)
	}
}

func TestEmptyFileIsDefaults(t *testing.T) {
	for _, src := range []string{"", "# only a comment\n", "---\n"} {
		f, err := Parse([]byte(src), "empty.yaml")
		if err != nil {
			t.Fatalf("%q: %v", src, err)
		}
		if !reflect.DeepEqual(strip(f), strip(Default())) {
			t.Errorf("%q: not the defaults: %+v", src, strip(f))
		}
	}
}

// TestErrors covers every kind of error: each case names the message's
// key parts, which must all appear in order in one of the errors.
func TestErrors(t *testing.T) {
	cases := []struct {
		name string
		src  string
		want []string // substrings, in order, of one joined error line
	}{
		{"syntax", "mtu: 1500\n  tun: x\n", []string{"c.yaml:2:", "YAML syntax", "indentation"}},
		{"syntax tab", "mtu:\t[1,\n", []string{"c.yaml:", "YAML syntax"}},
		{"not a mapping", "- a\n- b\n", []string{"c.yaml:1:1: ", "want a mapping", "got a list"}},
		{"unknown near miss", "mtu: 1500\nupstream: [192.0.2.1]\n", []string{"c.yaml:2:1: ", `unknown key "upstream"`, `did you mean "upstreams"?`}},
		{"unknown typo", "blcok_mode: null\n", []string{"c.yaml:1:1: ", `unknown key "blcok_mode"`, `did you mean "block_mode"?`}},
		{"unknown dash", "block-mode: null\n", []string{"c.yaml:1:1: ", `unknown key "block-mode"`, `did you mean "block_mode"?`}},
		{"unknown nested", "capture:\n  enable: true\n", []string{"c.yaml:2:3: ", `unknown key "capture.enable"`, `did you mean "capture.enabled"?`}},
		{"wrong section", "watchdog: 1s\n", []string{"c.yaml:1:1: ", `unknown key "watchdog"`, `did you mean "capture.watchdog"? it belongs in the capture section`}},
		{"wrong section top", "capture:\n  mtu: 1400\n", []string{"c.yaml:2:3: ", `unknown key "capture.mtu"`, `"mtu" is a top-level key, not in capture`}},
		{"unknown far", "zzz: 1\n", []string{"c.yaml:1:1: ", `unknown key "zzz"`, "top-level keys: tun, mtu, resolvers"}},
		{"duplicate", "mtu: 1400\nmtu: 1500\n", []string{"c.yaml:2:1: ", `duplicate key "mtu"`, "first set on line 1"}},
		{"int as string", "mtu: \"1400\"\n", []string{"c.yaml:1:6: ", "mtu: want an integer", `got the string "1400"`, "remove the quotes"}},
		{"int as word", "max_pending: lots\n", []string{"c.yaml:1:14: ", "max_pending: want an integer"}},
		{"int overflow", "mtu: 99999999999999999999999\n", []string{"c.yaml:1:6: ", "mtu: want an integer"}},
		{"uint negative", "block_ttl: -1\n", []string{"c.yaml:1:12: ", "block_ttl: -1 is out of range"}},
		{"bool yes", "exit_when_disabled: yes\n", []string{"c.yaml:1:21: ", "exit_when_disabled: want true or false", `the string "yes"`, "yes/no/on/off are strings"}},
		{"string as int", "tun: 5\n", []string{"c.yaml:1:6: ", "tun: want a string, got the integer 5", `quote it if you mean the text: "5"`}},
		{"string as list", "log_level: [info]\n", []string{"c.yaml:1:12: ", "log_level: want a string, got a list"}},
		{"list as scalar", "upstreams: 192.0.2.1\n", []string{"c.yaml:1:12: ", "upstreams: want a list of strings", "write a list, even of one: [192.0.2.1]"}},
		{"list item int", "blocklists: [/a, 5]\n", []string{"c.yaml:1:18: ", "blocklists[1]: want a string, got the integer 5"}},
		{"section scalar", "capture: true\n", []string{"c.yaml:1:10: ", "capture: want a mapping", "this section holds key: value lines"}},
		{"null", "mtu:\n", []string{"c.yaml:1:", "mtu: has no value", "remove the line to keep the default"}},
		{"duration int", "timeout: 5\n", []string{"c.yaml:1:10: ", "timeout: want a duration, got the integer 5", "write 5s for seconds"}},
		{"duration bad", "timeout: five\n", []string{"c.yaml:1:10: ", `timeout: "five" is not a duration`, "such as 2s"}},
		{"duration negative", "upstream_timeout: -1s\n", []string{"c.yaml:1:19: ", "upstream_timeout: negative duration -1s"}},
		{"duration zero", "timeout: 0s\n", []string{"c.yaml:1:10: ", "timeout: must be more than 0"}},
		{"watchdog negative", "capture:\n  watchdog: -2s\n", []string{"c.yaml:2:13: ", "capture.watchdog: negative duration -2s"}},
		{"upstream over total", "upstream_timeout: 6s\n", []string{"c.yaml:1:19: ", "upstream_timeout: 6s is longer than timeout (5s)"}},
		{"bad resolver ip", "resolvers: [198.19.53.53, 300.1.1.1]\n", []string{"c.yaml:1:27: ", `resolvers[1]: "300.1.1.1" is not an IP address`}},
		{"no resolvers", "resolvers: []\n", []string{"c.yaml:1:12: ", "resolvers: no resolver address"}},
		{"bad tun addr", "tun_addrs: [x]\n", []string{"c.yaml:1:13: ", `tun_addrs[0]: "x" is not an IP address`}},
		{"resolver is tun addr", "resolvers: [10.0.0.1]\ntun_addrs: [10.0.0.1]\n", []string{"c.yaml:2:12: ", "tun_addrs: 10.0.0.1 is both a resolver and the TUN's own address"}},
		{"bad upstream", "upstreams:\n  - dns.google\n", []string{"c.yaml:2:5: ", `upstreams[0]: upstream "dns.google": plain DNS upstreams take an IP address`, "udp://192.0.2.53"}},
		{"upstream loops", "upstreams: [198.19.53.53]\n", []string{"c.yaml:1:13: ", "upstreams[0]: 198.19.53.53 is one of dnstun's own addresses"}},
		{"capture loopback upstream", "upstreams: [127.0.0.53]\ncapture: {enabled: true}\n", []string{"c.yaml:1:13: ", "upstreams[0]: 127.0.0.53:53 is a local stub"}},
		{"block mode", "block_mode: nxdomian\n", []string{"c.yaml:1:13: ", `block_mode: unknown block mode "nxdomian"`, "want nxdomain, null, nodata, refused, or IP addresses"}},
		{"block ttl big", "block_ttl: 4294967295\n", []string{"c.yaml:1:12: ", "block_ttl: 4294967295 is out of range", "RFC 2181"}},
		{"mtu small", "mtu: 100\n", []string{"c.yaml:1:6: ", "mtu: 100 is out of range", "1280"}},
		{"tun queues negative", "tun_queues: -1\n", []string{"c.yaml:1:13: ", "tun_queues: -1 is out of range", "want 0 (one per CPU) or 1 to"}},
		{"tun queues many", fmt.Sprintf("tun_queues: %d\n", tun.MaxQueues+1), []string{"c.yaml:1:13: ", fmt.Sprintf("tun_queues: %d", tun.MaxQueues+1)}},
		{"max pending", "max_pending: 0\n", []string{"c.yaml:1:14: ", "max_pending: 0 is out of range"}},
		{"log level", "log_level: verbose\n", []string{"c.yaml:1:12: ", `log_level: unknown log level "verbose"`, "want debug, info, warn or error"}},
		{"mode", "mode: proxy\n", []string{"c.yaml:1:7: ", `mode: unknown mode "proxy"`, "want tun or flow"}},
		{"listen", "listen: localhost:53\n", []string{"c.yaml:1:9: ", `listen: "localhost:53" is not IP:PORT`}},
		{"capture flow", "mode: flow\ncapture:\n  enabled: true\n", []string{"c.yaml:3:12: ", "capture.enabled: capture cannot be used with mode flow"}},
		{"resolved", "capture: {resolved: maybe}\n", []string{"c.yaml:1:21: ", `capture.resolved: unknown value "maybe"`, "want auto, on or off"}},
		{"relative path", "blocklists: [hosts.txt]\n", []string{"c.yaml:1:14: ", `blocklists[0]: block list "hosts.txt" is not an absolute path`}},
		{"socket relative", "control: {socket: ctl.sock}\n", []string{"c.yaml:1:19: ", `control.socket: "ctl.sock" is not an absolute path`}},
		{"group", "control: {group: \"a b\"}\n", []string{"c.yaml:1:18: ", `control.group: "a b" is not a group name`}},
		{"tun name", "tun: averyveryverylongname\n", []string{"c.yaml:1:6: ", "is not a usable interface name"}},
		{"alias", "resolvers: &r [10.0.0.53]\ntun_addrs: *r\n", []string{"c.yaml:1:12: ", "resolvers: YAML anchors and aliases are not supported"}},
		{"merge", "capture: {<<: {nft: true}}\n", []string{"c.yaml:1:11: ", "YAML merge keys (<<) are not supported"}},
		{"tag", "tun: !!binary ZG5zdHVu\n", []string{"c.yaml:1:6: ", "tun: explicit YAML tags are not supported"}},
		{"two documents", "mtu: 1400\n---\nmtu: 1500\n", []string{"c.yaml", "more than one YAML document"}},
		{"key not string", "1: x\n", []string{"c.yaml:1:1: ", "want a key name, got the integer 1"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := Parse([]byte(c.src), "c.yaml")
			if err == nil {
				t.Fatalf("no error; parsed %+v", strip(f))
			}
			if f != nil {
				t.Errorf("a File came back with an error")
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Errorf("error is not an *Error: %T %v", err, err)
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if containsInOrder(line, c.want) {
					return
				}
			}
			t.Errorf("error\n%v\nhas no line with, in order, %q", err, c.want)
		})
	}
}

func containsInOrder(s string, parts []string) bool {
	for _, p := range parts {
		i := strings.Index(s, p)
		if i < 0 {
			return false
		}
		s = s[i+len(p):]
	}
	return true
}

// TestAllErrorsReported: one run names every problem, in file order.
func TestAllErrorsReported(t *testing.T) {
	_, err := Parse([]byte("mtu: x\nupstream: []\nmode: y\n"), "m.yaml")
	if err == nil {
		t.Fatal("no error")
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "m.yaml:1:6: mtu:") || !strings.HasPrefix(lines[1], "m.yaml:2:1: unknown key") {
		t.Errorf("got %q", lines)
	}
}

// TestValidateAfterOverride: flags override the file, then Options runs
// again; a key from the file still cites its line, one from a flag none.
func TestValidateAfterOverride(t *testing.T) {
	f, err := Parse([]byte("mode: tun\nlog_level: info\n"), "o.yaml")
	if err != nil {
		t.Fatal(err)
	}
	f.Mode = "bogus"
	f.MaxPending = -1
	_, err = f.Options()
	if err == nil || !strings.Contains(err.Error(), `o.yaml:1:7: mode: unknown mode "bogus"`) || !strings.Contains(err.Error(), "o.yaml: max_pending: -1 is out of range") {
		t.Errorf("got %v", err)
	}
	if _, err := Default().Options(); err != nil {
		t.Errorf("defaults invalid: %v", err)
	}
	if _, err := DefaultFor("darwin").Options(); err != nil {
		t.Errorf("darwin defaults invalid: %v", err)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "dnstun.yaml")
	if err := os.WriteFile(p, []byte("mtu: 1400\nmtu_: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(p)
	if err == nil || !strings.HasPrefix(err.Error(), p+":2:1: unknown key \"mtu_\" (did you mean \"mtu\"?)") {
		t.Errorf("got %v", err)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	big := make([]byte, MaxSize+10)
	for i := range big {
		big[i] = '#'
	}
	os.WriteFile(p, big, 0o644)
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("big file: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(Example)
	f.Add([]byte("mtu: 1400\nupstreams: [192.0.2.1]\n"))
	f.Add([]byte("capture: {enabled: true, watchdog: 1s}\ncontrol:\n  group: x\n"))
	f.Add([]byte("a: &x [1]\nb: *x\n"))
	f.Add([]byte("mtu: 1\n---\n- x\n"))
	f.Add([]byte("{<<: {}}"))
	f.Add([]byte("resolvers: [\"\\u0000\"]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse(data, "fuzz.yaml")
		if (file == nil) == (err == nil) {
			t.Fatalf("file %v and err %v", file, err)
		}
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.yaml") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		if _, err := file.Options(); err != nil {
			t.Fatalf("parsed but invalid: %v", err)
		}
	})
}

// TestTunQueues: tun_queues is the TUN's queue count as given; 0 is one per
// CPU dnstun may use, at most tun.MaxQueues.
func TestTunQueues(t *testing.T) {
	for _, c := range []struct{ given, want int }{
		{0, min(runtime.GOMAXPROCS(0), tun.MaxQueues)},
		{1, 1},
		{tun.MaxQueues, tun.MaxQueues},
	} {
		f, err := Parse(fmt.Appendf(nil, "tun_queues: %d\n", c.given), "q.yaml")
		if err != nil {
			t.Fatal(err)
		}
		o, err := f.Options()
		if err != nil {
			t.Fatal(err)
		}
		if o.TunQueues != c.given || o.Queues() != c.want {
			t.Errorf("tun_queues %d: TunQueues %d, Queues() %d; want %d, %d", c.given, o.TunQueues, o.Queues(), c.given, c.want)
		}
	}
}

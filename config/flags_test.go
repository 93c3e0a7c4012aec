// SPDX-License-Identifier: MIT

package config

import (
	"flag"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dnstun/dnstun/engine"
	"github.com/dnstun/dnstun/filter"
	"github.com/dnstun/dnstun/upstream"
)

// leafKeys lists the dotted keys of every value of a File.
func leafKeys(t reflect.Type, prefix string) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		tag := t.Field(i).Tag.Get("yaml")
		if tag == "" {
			continue
		}
		if t.Field(i).Type.Kind() == reflect.Struct && t.Field(i).Type != durationType {
			out = append(out, leafKeys(t.Field(i).Type, prefix+tag+".")...)
			continue
		}
		out = append(out, prefix+tag)
	}
	return out
}

// TestEveryKeyHasOneFlag: the file and the command line hold the same
// settings, one flag per key.
func TestEveryKeyHasOneFlag(t *testing.T) {
	keys := leafKeys(reflect.TypeFor[File](), "")
	for _, k := range keys {
		n := 0
		for _, rf := range RunFlags {
			if rf.Key == k {
				n++
			}
		}
		if n != 1 {
			t.Errorf("key %q has %d flags, want 1", k, n)
		}
	}
	names := map[string]bool{}
	for _, rf := range RunFlags {
		if !slices.Contains(keys, rf.Key) {
			t.Errorf("flag --%s names key %q, which the file does not have", rf.Name, rf.Key)
		}
		if names[rf.Name] {
			t.Errorf("flag --%s twice", rf.Name)
		}
		names[rf.Name] = true
	}
}

func parseFlags(t *testing.T, goos string, args ...string) (*Options, error) {
	t.Helper()
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fl := newFlags(fs, goos)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	return fl.Options()
}

// TestOneTableOfDefaults: the flags with nothing given, the defaults and
// example.yaml (what `dnstun install` writes) are the same options, on
// each OS; the flag help shows the table's values.
func TestOneTableOfDefaults(t *testing.T) {
	for _, goos := range []string{"linux", "darwin"} {
		fromFlags, err := parseFlags(t, goos)
		if err != nil {
			t.Fatalf("%s: defaults refused: %v", goos, err)
		}
		fromTable, err := DefaultFor(goos).Options()
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(fromFlags, fromTable) {
			t.Errorf("%s: flag defaults %+v\ntable %+v", goos, fromFlags, fromTable)
		}
		if goos == "darwin" && (fromFlags.Capture.StateDir != "/var/run/dnstun" || fromFlags.Tun != "utun") {
			t.Errorf("darwin defaults: state dir %q tun %q", fromFlags.Capture.StateDir, fromFlags.Tun)
		}
	}
	ex, err := Parse(Example, "example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	exo, _ := ex.Options()
	def, _ := Default().Options()
	exo.ConfigFile = ""
	exo.Rules = nil
	if !reflect.DeepEqual(exo, def) {
		t.Errorf("example.yaml %+v\ndefaults %+v", exo, def)
	}
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	newFlags(fs, "linux")
	for flagName, want := range map[string]string{"timeout": "5s", "max-pending": "4096", "resolver": "198.19.53.53,fd64:6e73:7475::53", "state-dir": "/run/dnstun", "bypass-signals": "true", "block-ttl": "10"} {
		if got := fs.Lookup(flagName).DefValue; got != want {
			t.Errorf("--%s help default %q, want %q", flagName, got, want)
		}
	}
	if DefaultMaxPending != engine.DefaultMaxPending || DefaultTimeout != engine.DefaultTotalTimeout {
		t.Error("config and engine defaults differ")
	}
}

// TestFlagsOverrideFields: the file first, then each flag given replaces
// its key (a repeatable flag the whole list); keys no flag names keep the
// file's value.
func TestFlagsOverrideFields(t *testing.T) {
	p := filepath.Join(t.TempDir(), "d.yaml")
	os.WriteFile(p, []byte("upstreams: [192.0.2.1, 192.0.2.2]\nblock_mode: null\nmax_pending: 100\n"), 0o644)
	o, err := parseFlags(t, "linux", "--config", p, "--upstream", "192.0.2.9", "--max-pending", "200")
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Upstreams) != 1 || o.Upstreams[0].String() != "192.0.2.9:53" {
		t.Errorf("upstreams %v, want the flag's only", o.Upstreams)
	}
	if o.BlockMode != filter.ModeNull || o.MaxPending != 200 || o.ConfigFile != p {
		t.Errorf("block mode %v (file's), max pending %d (flag's), file %q", o.BlockMode, o.MaxPending, o.ConfigFile)
	}
	// A bad value from a flag names the flag; from the file, its line.
	_, err = parseFlags(t, "linux", "--config", p, "--block-mode", "drop")
	if err == nil || !strings.HasPrefix(err.Error(), `--block-mode: unknown block mode "drop"`) {
		t.Errorf("flag error: %v", err)
	}
	os.WriteFile(p, []byte("mtu: 1500\nblock_mode: drop\n"), 0o644)
	_, err = parseFlags(t, "linux", "--config", p)
	if err == nil || !strings.HasPrefix(err.Error(), p+`:2:13: block_mode: unknown block mode "drop"`) {
		t.Errorf("file error: %v", err)
	}
}

// TestFileAndFlagAgree: each value is accepted or refused alike from the
// file and from the flag, and an accepted value is honoured as given (the
// three drifts of issue 10, and their neighbours).
func TestFileAndFlagAgree(t *testing.T) {
	for _, tc := range []struct {
		name    string
		yaml    string
		args    []string
		wantErr string // "" = accepted
		check   func(*Options) bool
	}{
		{"block mode addresses", "block_mode: 192.0.2.1,2001:db8::1\n", []string{"--block-mode", "192.0.2.1,2001:db8::1"}, "",
			func(o *Options) bool { return o.BlockMode == filter.ModeCustom && len(o.BlockAddrs) == 2 }},
		{"block mode word", "block_mode: refused\n", []string{"--block-mode", "refused"}, "",
			func(o *Options) bool { return o.BlockMode == filter.ModeRefused }},
		{"block mode bad", "block_mode: drop\n", []string{"--block-mode", "drop"}, "unknown block mode", nil},
		{"max pending at the engine's limit", "max_pending: 32768\n", []string{"--max-pending", "32768"}, "",
			func(o *Options) bool { return o.MaxPending == engine.MaxPendingLimit }},
		{"max pending over the limit", "max_pending: 1048576\n", []string{"--max-pending", "1048576"}, "1048576 is out of range", nil},
		{"max pending zero", "max_pending: 0\n", []string{"--max-pending", "0"}, "0 is out of range", nil},
		{"upstream timeout longer than timeout", "upstream_timeout: 6s\ntimeout: 5s\n", []string{"--upstream-timeout", "6s", "--timeout", "5s"}, "longer than timeout", nil},
		{"upstream timeout equal to timeout", "upstream_timeout: 5s\n", []string{"--upstream-timeout", "5s"}, "",
			func(o *Options) bool { return o.UpstreamTimeout == o.Timeout }},
		{"no control socket", "control:\n  socket: \"\"\n", []string{"--control", ""}, "",
			func(o *Options) bool { return o.Control.Socket == "" }},
		{"v4-only resolver gets only a v4 tun address", "resolvers: [198.19.0.53]\n", []string{"--resolver", "198.19.0.53"}, "",
			func(o *Options) bool { return slices.Equal(o.TunAddrs, []netip.Addr{DefaultTunAddr4}) }},
		{"resolver is the tun address", "resolvers: [198.19.53.1]\n", []string{"--resolver", "198.19.53.1"}, "both a resolver and the TUN's own address", nil},
		{"bad resolver", "resolvers: [x]\n", []string{"--resolver", "x"}, "not an IP address", nil},
		{"upstream loops", "upstreams: [198.19.53.53]\n", []string{"--upstream", "198.19.53.53"}, "one of dnstun's own addresses", nil},
		{"upstream host name", "upstreams: [dns.example]\n", []string{"--upstream", "dns.example"}, "host name", nil},
		{"upstream with zone", "upstreams: [\"fe80::1%eth0\"]\n", []string{"--upstream", "fe80::1%eth0"}, "zone", nil},
		{"upstream port", "upstreams: [\"192.0.2.1:5353\"]\n", []string{"--upstream", "192.0.2.1:5353"}, "",
			func(o *Options) bool { return o.Upstreams[0].Port == 5353 }},
		{"upstream DoT by name", "upstreams: [\"tls://dns.example\"]\n", []string{"--upstream", "tls://dns.example"}, "",
			func(o *Options) bool {
				return o.Upstreams[0].Proto == upstream.ProtoTLS && o.Upstreams[0].Host == "dns.example" && o.Upstreams[0].Port == 853
			}},
		{"upstream DoH", "upstreams: [\"https://192.0.2.1/q\"]\n", []string{"--upstream", "https://192.0.2.1/q"}, "",
			func(o *Options) bool { return o.Upstreams[0].String() == "https://192.0.2.1:443/q" }},
		{"bad upstream scheme", "upstreams: [\"sdns://x\"]\n", []string{"--upstream", "sdns://x"}, "sdns", nil},
		{"split DNS", "upstreams: [192.0.2.1, \"[/corp.example/lab.example/]192.0.2.2\", \"[/pub.corp.example/]#\"]\n",
			[]string{"--upstream", "192.0.2.1", "--upstream", "[/corp.example/lab.example/]192.0.2.2", "--upstream", "[/pub.corp.example/]#"}, "",
			func(o *Options) bool {
				return len(o.Upstreams) == 1 && len(o.Domains) == 3 && o.Domains[0].Domain == "corp.example" &&
					o.Domains[1].Upstreams[0].String() == "192.0.2.2:53" && o.Domains[2].UseDefault && !o.FollowsSystem()
			}},
		{"split DNS only follows the system", "upstreams: [\"[/corp.example/]192.0.2.2\"]\n", []string{"--upstream", "[/corp.example/]192.0.2.2"}, "",
			func(o *Options) bool { return len(o.Upstreams) == 0 && len(o.Domains) == 1 && o.FollowsSystem() }},
		{"upstream mode", "upstream_mode: parallel\n", []string{"--upstream-mode", "parallel"}, "",
			func(o *Options) bool { return o.UpstreamMode == engine.Parallel }},
		{"bad upstream mode", "upstream_mode: random\n", []string{"--upstream-mode", "random"}, "want one of failover, parallel, fastest", nil},
		{"bootstrap", "bootstrap: [192.0.2.53]\n", []string{"--bootstrap", "192.0.2.53"}, "",
			func(o *Options) bool { return len(o.Bootstrap) == 1 && o.Bootstrap[0].String() == "192.0.2.53:53" }},
		{"bootstrap loops", "bootstrap: [198.19.53.53]\n", []string{"--bootstrap", "198.19.53.53"}, "bootstrapping through dnstun would loop", nil},
		{"socket queries", "upstream_socket_queries: 16\n", []string{"--upstream-socket-queries", "16"}, "",
			func(o *Options) bool { return o.SocketQueries == 16 }},
		{"socket queries 0", "upstream_socket_queries: 0\n", []string{"--upstream-socket-queries", "0"}, "want 1 (a fresh source port per query) to 65535", nil},
		{"sockets", "upstream_sockets: 1\n", []string{"--upstream-sockets", "1"}, "",
			func(o *Options) bool { return o.Sockets == 1 }},
		{"sockets 257", "upstream_sockets: 257\n", []string{"--upstream-sockets", "257"}, "want 1 to 256", nil},
		{"cache size", "cache: 1GiB\n", []string{"--cache", "1GiB"}, "",
			func(o *Options) bool { return o.CacheBytes == 1<<30 }},
		{"cache off", "cache: \"0\"\n", []string{"--cache", "0"}, "",
			func(o *Options) bool { return o.CacheBytes == 0 }},
		{"cache decimal", "cache: 2MB\n", []string{"--cache", "2MB"}, "",
			func(o *Options) bool { return o.CacheBytes == 2000000 }},
		{"cache bad size", "cache: lots\n", []string{"--cache", "lots"}, "want a number of bytes", nil},
		{"cache too small", "cache: 1KiB\n", []string{"--cache", "1KiB"}, "below the smallest cache", nil},
		{"cache serve-stale", "cache_serve_stale: 1h\n", []string{"--cache-serve-stale", "1h"}, "",
			func(o *Options) bool { return o.CacheStaleFor == time.Hour }},
		{"cache serve-stale too long", "cache_serve_stale: 48h\n", []string{"--cache-serve-stale", "48h"}, "at most 24h", nil},
		{"cache min over max", "cache_min_ttl: 2h\ncache_max_ttl: 1h\n", []string{"--cache-min-ttl", "2h", "--cache-max-ttl", "1h"}, "more than cache_max_ttl", nil},
		{"cache ttl fraction", "cache_min_ttl: 1500ms\n", []string{"--cache-min-ttl", "1500ms"}, "whole seconds", nil},
		{"0x20", "upstream_0x20: true\n", []string{"--upstream-0x20"}, "",
			func(o *Options) bool { return o.Upstream0x20 }},
		{"local stub with capture", "upstreams: [127.0.0.53]\ncapture:\n  enabled: true\n", []string{"--upstream", "127.0.0.53", "--capture"}, "local stub", nil},
		{"flow mode", "mode: flow\nlisten: 127.0.0.1:5300\n", []string{"--mode", "flow", "--listen", "127.0.0.1:5300"}, "",
			func(o *Options) bool { return o.Mode == "flow" && o.Listen.String() == "127.0.0.1:5300" }},
		{"bad mode", "mode: socks\n", []string{"--mode", "socks"}, "unknown mode", nil},
		{"bad listen", "mode: flow\nlisten: localhost\n", []string{"--mode", "flow", "--listen", "localhost"}, "not IP:PORT", nil},
		{"capture with flow", "mode: flow\ncapture:\n  enabled: true\n", []string{"--mode", "flow", "--capture"}, "capture cannot be used with mode flow", nil},
		{"per-list settings", "blocklists: [\"/x/a.txt mode=null ttl=30\", \"https://l.example/b.txt mode=192.0.2.1\"]\n",
			[]string{"--blocklist", "/x/a.txt mode=null ttl=30", "--blocklist", "https://l.example/b.txt mode=192.0.2.1"}, "",
			func(o *Options) bool {
				a, b := o.Blocklists[0], o.Blocklists[1]
				return a.Source == "/x/a.txt" && a.Opts.Mode == filter.ModeNull && a.Opts.TTL == 30 &&
					b.Source == "https://l.example/b.txt" && b.Opts.Mode == filter.ModeCustom && len(b.Opts.BlockAddrs) == 1
			}},
		{"bad per-list setting", "blocklists: [\"/x/a.txt colour=red\"]\n", []string{"--blocklist", "/x/a.txt colour=red"}, "unknown setting", nil},
		{"relative list path", "blocklists: [a.txt]\n", []string{"--blocklist", "a.txt"}, "not an absolute path", nil},
		{"block ttl zero", "block_ttl: 0\n", []string{"--block-ttl", "0"}, "0 is out of range", nil},
		{"block ttl", "block_ttl: 1\n", []string{"--block-ttl", "1"}, "",
			func(o *Options) bool { return o.BlockTTL == 1 }},
		{"per-list ttl zero", "blocklists: [\"/x/a.txt ttl=0\"]\n", []string{"--blocklist", "/x/a.txt ttl=0"}, "want seconds, 1 to", nil},
		{"log level", "log_level: loud\n", []string{"--log-level", "loud"}, "unknown log level", nil},
		{"resolved", "capture:\n  resolved: maybe\n", []string{"--resolved", "maybe"}, "want auto, on or off", nil},
		{"state file relative", "state_file: state.json\n", []string{"--state-file", "state.json"}, "not an absolute path", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "c.yaml")
			os.WriteFile(p, []byte(tc.yaml), 0o644)
			fromFile, ferr := parseFlags(t, "linux", "--config", p)
			fromFlag, gerr := parseFlags(t, "linux", tc.args...)
			for _, r := range []struct {
				what string
				o    *Options
				err  error
			}{{"file", fromFile, ferr}, {"flag", fromFlag, gerr}} {
				switch {
				case tc.wantErr != "" && (r.err == nil || !strings.Contains(r.err.Error(), tc.wantErr)):
					t.Errorf("%s: err %v, want it to say %q", r.what, r.err, tc.wantErr)
				case tc.wantErr == "" && r.err != nil:
					t.Errorf("%s: refused: %v", r.what, r.err)
				case tc.wantErr == "" && !tc.check(r.o):
					t.Errorf("%s: not honoured as given: %+v", r.what, r.o)
				}
			}
		})
	}
}

// FuzzParseListSpec: any blocklists entry is parsed or refused with an
// error, never a panic; an accepted one keeps its source and a TTL in range.
func FuzzParseListSpec(f *testing.F) {
	for _, s := range []string{"/etc/dnstun/a.txt", "/a mode=null ttl=30", "https://l.example/b.txt mode=192.0.2.1,2001:db8::1", "/a ttl=99999999999", "/a colour=red", "", "  ", "/a mode="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ls, err := ParseListSpec(s)
		if err != nil {
			return
		}
		if ls.Source == "" || ls.Source != strings.Fields(s)[0] || ls.Opts.TTL > maxTTL {
			t.Errorf("%q parsed to %+v", s, ls)
		}
	})
}

// SPDX-License-Identifier: MIT

package tun

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/dnstun/dnstun/internal/golden"
)

// defaultCfg is what `dnstun run` asks for with its default flags.
var defaultCfg = Config{
	MTU: 1500,
	Addrs: []netip.Prefix{
		netip.MustParsePrefix("198.19.53.1/32"),
		netip.MustParsePrefix("fd64:6e73:7475::1/128"),
	},
	Routes: []netip.Prefix{
		netip.MustParsePrefix("198.19.53.53/32"),
		netip.MustParsePrefix("fd64:6e73:7475::53/128"),
	},
}

func render(cmds [][]string) string {
	var b strings.Builder
	for _, c := range cmds {
		b.WriteString(strings.Join(c, " "))
		b.WriteByte('\n')
	}
	return b.String()
}

func TestDarwinCommandsGolden(t *testing.T) {
	cmds, err := DarwinCommands("utun6", defaultCfg)
	if err != nil {
		t.Fatal(err)
	}
	var checks [][]string
	for _, c := range DarwinChecks("utun6", defaultCfg) {
		checks = append(checks, c.Argv)
	}
	golden.Check(t, "darwin-commands", "# configure\n"+render(cmds)+"# check\n"+render(checks))
	for _, c := range cmds {
		for _, a := range c {
			if a == "no_dad" {
				t.Errorf("%v: no_dad is not a macOS ifconfig word", c)
			}
		}
		if c[0] == darwinIfconfig && len(c) > 3 && (c[2] == "inet" || c[2] == "inet6") && c[len(c)-1] != "alias" {
			t.Errorf("%v: without alias a second address replaces the first", c)
		}
	}
	// A mapped address is configured as IPv4, a wider prefix is masked.
	cmds, _ = DarwinCommands("utun0", Config{Addrs: []netip.Prefix{netip.MustParsePrefix("::ffff:198.19.53.1/32")},
		Routes: []netip.Prefix{netip.MustParsePrefix("198.19.53.7/24")}})
	if got := render(cmds); !strings.Contains(got, "inet 198.19.53.1/32 198.19.53.1 alias\n") || !strings.Contains(got, "-inet 198.19.53.0/24 -interface utun0\n") || !strings.Contains(got, "mtu 1500\n") {
		t.Errorf("mapped/masked:\n%s", got)
	}
	for _, bad := range []string{"", "utun 6", "../x"} {
		if _, err := DarwinCommands(bad, defaultCfg); err == nil {
			t.Errorf("name %q accepted", bad)
		}
	}
}

// fakeMac answers the configure and check commands from fixtures.
type fakeMac struct {
	calls   []string
	answers map[string][]string // argv -> outputs, the last one repeats
	fail    map[string]error
	sleeps  int
}

func (f *fakeMac) run(argv []string) (string, error) {
	k := strings.Join(argv, " ")
	f.calls = append(f.calls, k)
	outs := f.answers[k]
	out := ""
	if len(outs) > 0 {
		out = outs[0]
		if len(outs) > 1 {
			f.answers[k] = outs[1:]
		}
	}
	return out, f.fail[k]
}

func (f *fakeMac) sleep(time.Duration) { f.sleeps++ }

func newFakeMac(t *testing.T) *fakeMac {
	return &fakeMac{answers: map[string][]string{
		"/sbin/ifconfig utun6":                         {golden.MacFixture(t, "ifconfig-utun.txt")},
		"/sbin/route -n get -inet 198.19.53.53":        {golden.MacFixture(t, "route-get-resolver.txt")},
		"/sbin/route -n get -inet6 fd64:6e73:7475::53": {golden.MacFixture(t, "route-get-resolver6.txt")},
	}, fail: map[string]error{}}
}

func TestConfigureDarwin(t *testing.T) {
	f := newFakeMac(t)
	if err := configureDarwin(f.run, f.sleep, time.Second, "utun6", defaultCfg); err != nil {
		t.Fatal(err)
	}
	cmds, _ := DarwinCommands("utun6", defaultCfg)
	want := strings.Split(strings.TrimSuffix(render(cmds), "\n"), "\n")
	want = append(want, "/sbin/ifconfig utun6", "/sbin/route -n get -inet 198.19.53.53", "/sbin/route -n get -inet6 fd64:6e73:7475::53")
	if strings.Join(f.calls, "\n") != strings.Join(want, "\n") {
		t.Errorf("order:\n%s\nwant:\n%s", strings.Join(f.calls, "\n"), strings.Join(want, "\n"))
	}
}

func TestConfigureDarwinFailures(t *testing.T) {
	t.Run("route add exits 0 but the route is missing", func(t *testing.T) {
		f := newFakeMac(t)
		f.answers["/sbin/route -n get -inet 198.19.53.53"] = []string{golden.MacFixture(t, "route-get-resolver-missing.txt")}
		err := configureDarwin(f.run, f.sleep, 300*time.Millisecond, "utun6", defaultCfg)
		if err == nil || !strings.Contains(err.Error(), `goes via "en0", not utun6`) {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("no route at all", func(t *testing.T) {
		f := newFakeMac(t)
		f.answers["/sbin/route -n get -inet6 fd64:6e73:7475::53"] = []string{golden.MacFixture(t, "route-get-noroute.txt")}
		f.fail["/sbin/route -n get -inet6 fd64:6e73:7475::53"] = errors.New("exit status 1")
		err := configureDarwin(f.run, f.sleep, 0, "utun6", defaultCfg)
		if err == nil || !strings.Contains(err.Error(), "no route") || !strings.Contains(err.Error(), "fd64:6e73:7475::53") {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("a tentative address is waited for", func(t *testing.T) {
		f := newFakeMac(t)
		f.answers["/sbin/ifconfig utun6"] = []string{golden.MacFixture(t, "ifconfig-utun-tentative.txt"), golden.MacFixture(t, "ifconfig-utun.txt")}
		if err := configureDarwin(f.run, f.sleep, time.Second, "utun6", defaultCfg); err != nil || f.sleeps != 1 {
			t.Fatalf("err %v after %d sleeps", err, f.sleeps)
		}
	})
	t.Run("an address that stays tentative", func(t *testing.T) {
		f := newFakeMac(t)
		f.answers["/sbin/ifconfig utun6"] = []string{golden.MacFixture(t, "ifconfig-utun-tentative.txt")}
		err := configureDarwin(f.run, f.sleep, 300*time.Millisecond, "utun6", defaultCfg)
		if err == nil || !strings.Contains(err.Error(), "fd64:6e73:7475::1 is tentative") || f.sleeps != 3 {
			t.Fatalf("err %v after %d sleeps", err, f.sleeps)
		}
	})
	t.Run("down and without its IPv6 address", func(t *testing.T) {
		f := newFakeMac(t)
		f.answers["/sbin/ifconfig utun6"] = []string{golden.MacFixture(t, "ifconfig-utun-down.txt")}
		err := configureDarwin(f.run, f.sleep, 0, "utun6", defaultCfg)
		if err == nil || !strings.Contains(err.Error(), "not up") {
			t.Fatalf("err %v", err)
		}
		err = CheckDarwinIfconfig(strings.Replace(golden.MacFixture(t, "ifconfig-utun-down.txt"), "8050<", "8051<UP,", 1), "utun6", defaultCfg)
		if err == nil || !strings.Contains(err.Error(), "fd64:6e73:7475::1 is missing") {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("ifconfig fails", func(t *testing.T) {
		f := newFakeMac(t)
		k := "/sbin/ifconfig utun6 mtu 1500"
		f.answers[k] = []string{"ifconfig: ioctl (SIOCSIFMTU): Invalid argument\n"}
		f.fail[k] = errors.New("exit status 1")
		err := configureDarwin(f.run, f.sleep, 0, "utun6", defaultCfg)
		if err == nil || !strings.Contains(err.Error(), k) || !strings.Contains(err.Error(), "Invalid argument") || len(f.calls) != 1 {
			t.Fatalf("err %v after %v", err, f.calls)
		}
	})
}

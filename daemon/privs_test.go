// SPDX-License-Identifier: MIT

package daemon

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/dnstun/dnstun/config"
)

func TestPrivilegesFromOptions(t *testing.T) {
	const (
		admin   = CapNetAdmin
		bind    = CapNetBindService
		ptrace  = CapSysPtrace
		dacRead = CapDacReadSearch
		dacOver = CapDacOverride
	)
	for _, tc := range []struct {
		name string
		o    config.Options
		want []Capability
	}{
		{"tun, attribution (the defaults)", config.Options{Mode: "tun", Attribution: true}, []Capability{dacRead, admin, ptrace}},
		{"tun with capture", config.Options{Mode: "tun", Attribution: true, Capture: config.CaptureOptions{Enabled: true}}, []Capability{dacRead, admin, ptrace}},
		{"tun, attribution off", config.Options{Mode: "tun"}, []Capability{admin}},
		{"flow on port 53", config.Options{Mode: "flow", Listen: netip.MustParseAddrPort("127.0.0.1:53"), Attribution: true}, []Capability{dacRead, bind, ptrace}},
		{"flow on port 53, attribution off", config.Options{Mode: "flow", Listen: netip.MustParseAddrPort("127.0.0.1:53")}, []Capability{bind}},
		{"flow on a high port: nothing", config.Options{Mode: "flow", Listen: netip.MustParseAddrPort("127.0.0.1:5353")}, nil},
		{"dnstap to a socket", config.Options{Mode: "tun", Dnstap: "unix:/run/dnstap.sock"}, []Capability{dacOver, admin}},
		{"dnstap to a file", config.Options{Mode: "tun", Dnstap: "file:/var/log/dnstun.tap"}, []Capability{admin}},
		// Start-only needs are never kept.
		{"control group", config.Options{Mode: "tun", Control: config.ControlOptions{Socket: "/run/dnstun/control.sock", Group: "adm"}}, []Capability{admin}},
		{"metrics on port 80", config.Options{Mode: "tun", Metrics: netip.MustParseAddrPort("127.0.0.1:80")}, []Capability{admin}},
	} {
		ps := Privileges(&tc.o)
		var got []Capability
		for _, p := range ps {
			got = append(got, p.Cap)
			if p.Why == "" || strings.Contains(p.String(), "capability ") {
				t.Errorf("%s: %v has no reason or name", tc.name, p)
			}
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	o := config.Options{Mode: "tun", Capture: config.CaptureOptions{Enabled: true}}
	if why := Privileges(&o)[0].Why; !strings.Contains(why, "policy rules") || !strings.Contains(why, "SO_MARK") {
		t.Errorf("capture's reason: %q", why)
	}
}

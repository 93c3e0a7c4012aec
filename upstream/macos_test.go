// SPDX-License-Identifier: MIT

package upstream

import (
	"fmt"
	"testing"
)

func TestParseScutilDNS(t *testing.T) {
	out := `<dictionary> {
  DomainName : lan
  SearchDomains : <array> {
    0 : lan
  }
  ServerAddresses : <array> {
    0 : 192.168.1.1
    1 : fe80::1%en0
    2 : 2001:db8::53
  }
  __CONFIGURATION_ID__ : Default: 0
}
`
	if got := fmt.Sprint(ParseScutilDNS(out)); got != "[192.168.1.1:53 [fe80::1%en0]:53 [2001:db8::53]:53]" {
		t.Errorf("got %s", got)
	}
	if got := ParseScutilDNS("  No such key\n"); len(got) != 0 {
		t.Errorf("no key: %v", got)
	}
}

func TestParseRouteInterface(t *testing.T) {
	out := `   route to: default
destination: default
       mask: default
    gateway: 192.168.1.1
  interface: en0
      flags: <UP,GATEWAY,DONE,STATIC,PRCLONING,GLOBAL>
`
	if got := ParseRouteInterface(out); got != "en0" {
		t.Errorf("got %q", got)
	}
	if got := ParseRouteInterface("route: writing to routing socket: not in table\n"); got != "" {
		t.Errorf("no route: %q", got)
	}
}

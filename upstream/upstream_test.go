// SPDX-License-Identifier: MIT

package upstream

import (
	"strings"
	"testing"
)

func TestParseResolvConf(t *testing.T) {
	in := `# generated
nameserver 10.0.0.1
nameserver   fe80::1%eth0  # link-local
options edns0
search example.org
nameserver ::ffff:192.0.2.1
nameserver not-an-ip
nameserver
domain x
`
	got, err := ParseResolvConf(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.0.0.1:53", "[fe80::1%eth0]:53", "192.0.2.1:53"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Errorf("nameserver %d = %v, want %s", i, got[i], want[i])
		}
	}
}

func TestParseAddrPort(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"192.0.2.1", "192.0.2.1:53", true},
		{"192.0.2.1:5353", "192.0.2.1:5353", true},
		{"[2001:db8::1]:853", "[2001:db8::1]:853", true},
		{"2001:db8::1", "[2001:db8::1]:53", true},
		{"[2001:db8::1]", "[2001:db8::1]:53", true},
		{"dns.example:53", "", false},
		{"", "", false},
	} {
		got, err := ParseAddrPort(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("ParseAddrPort(%q) err = %v, want ok=%v", tc.in, err, tc.ok)
			continue
		}
		if tc.ok && got.String() != tc.want {
			t.Errorf("ParseAddrPort(%q) = %v, want %s", tc.in, got, tc.want)
		}
	}
}

// TestConnLoopback sends over a real connected socket to a loopback
// listener and reads the echo, and checks that Send/Recv do not allocate.

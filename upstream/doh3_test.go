// SPDX-License-Identifier: MIT

package upstream

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/dnstun/dnstun/internal/quictest"
)

// The tests shared with DoQ are in quic_test.go; these are HTTP's own.

// TestDoH3BadAnswers: an HTTP error status, a content type other than
// application/dns-message, or a wrong path fail the query at once.
func TestDoH3BadAnswers(t *testing.T) {
	r := newQUICRig(t, ProtoH3, quictest.Config{})
	c := dialQUICTest(t, r.spec(ProtoH3), r.opt())
	for _, tc := range []struct {
		mode quictest.Mode
		want string
	}{
		{quictest.BadStatus, "500"},
		{quictest.BadType, `"text/plain"`},
	} {
		r.srv.SetMode(tc.mode)
		c.send(t, 70, quictest.NameA, dns.TypeA)
		f := c.failure(t, time.Second)
		if f.id != 70 || !strings.Contains(f.err.Error(), tc.want) {
			t.Errorf("mode %d: failure of %d: %v; want query 70, saying %s", tc.mode, f.id, f.err, tc.want)
		}
	}
	r.srv.SetMode(quictest.Answer)
	c.exchange(t, 71, quictest.NameA, dns.TypeA)

	spec := r.spec(ProtoH3)
	spec.Path = "/elsewhere"
	c = dialQUICTest(t, spec, r.opt())
	c.send(t, 72, quictest.NameA, dns.TypeA)
	if f := c.failure(t, time.Second); !strings.Contains(f.err.Error(), "404") || !strings.Contains(f.err.Error(), "path") {
		t.Errorf("wrong path: %v; want 404 and a word on the path", f.err)
	}
}

// TestDoH3Spec: a path that is not absolute is refused at once.
func TestDoH3Spec(t *testing.T) {
	spec := quicSpec(ProtoH3, netip.MustParseAddrPort("127.0.0.1:443"))
	spec.Path = "dns-query"
	if _, err := NewExchanger(spec, DialOptions{}, func([]byte) {}, func(uint16, error) {}); err == nil || !strings.Contains(err.Error(), "must start with /") {
		t.Errorf("path %q: %v", spec.Path, err)
	}
}

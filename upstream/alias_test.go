// SPDX-License-Identifier: MIT

package upstream

import (
	"testing"

	"github.com/miekg/dns"
)

func TestSpliceAlias(t *testing.T) {
	r := new(dns.Msg)
	r.SetQuestion("target.example.", dns.TypeA)
	r.Response = true
	r.Id = 77
	rr, _ := dns.NewRR("target.example. 30 IN A 192.0.2.5")
	r.Answer = []dns.RR{rr}
	reply, _ := r.Pack()
	orig := make([]byte, 64)
	n, _ := dns.PackDomainName("Alias.Example.", orig, 0, nil, false)
	out := make([]byte, 4096)
	m, err := SpliceAlias(reply, orig[:n], 60, out)
	if err != nil {
		t.Fatal(err)
	}
	var got dns.Msg
	if err := got.Unpack(out[:m]); err != nil {
		t.Fatal(err)
	}
	if got.Id != 77 || got.Question[0].Name != "Alias.Example." || len(got.Answer) != 2 {
		t.Fatalf("spliced %v", got)
	}
	if c, ok := got.Answer[0].(*dns.CNAME); !ok || c.Target != "target.example." || c.Hdr.Ttl != 60 || c.Hdr.Name != "Alias.Example." {
		t.Errorf("first record %v", got.Answer[0])
	}
	if _, err := SpliceAlias(reply, orig[:n], 60, make([]byte, 20)); err == nil {
		t.Error("a reply that does not fit was accepted")
	}
}

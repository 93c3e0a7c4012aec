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

// FuzzSpliceAlias splices arbitrary upstream replies (a rewrite target's
// answer, from the network) under a client name: never a panic, never a
// write past out, and what it returns unpacks with the client's name as
// the question and the CNAME first.
func FuzzSpliceAlias(f *testing.F) {
	r := new(dns.Msg)
	r.SetQuestion("target.example.", dns.TypeA)
	r.Response = true
	rr, _ := dns.NewRR("target.example. 30 IN A 192.0.2.5")
	r.Answer = []dns.RR{rr}
	reply, _ := r.Pack()
	f.Add(reply, []byte("\x05alias\x07example\x00"))
	f.Add([]byte{0, 1, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1}, []byte{0})
	f.Add([]byte{}, []byte("\x03bad"))
	f.Fuzz(func(t *testing.T, reply, orig []byte) {
		out := make([]byte, 512)
		n, err := SpliceAlias(reply, orig, 60, out)
		if err != nil {
			return
		}
		if n <= 0 || n > len(out) {
			t.Fatalf("returned %d for a %d-byte buffer", n, len(out))
		}
		var m dns.Msg
		if err := m.Unpack(out[:n]); err != nil {
			t.Fatalf("the spliced reply does not unpack: %v", err)
		}
		want, _, _ := dns.UnpackDomainName(orig, 0)
		if len(m.Question) != 1 || m.Question[0].Name != want || len(m.Answer) == 0 || m.Answer[0].Header().Rrtype != dns.TypeCNAME {
			t.Fatalf("spliced reply %v: want the question %q and a CNAME first", &m, want)
		}
	})
}

// SPDX-License-Identifier: MIT

package packet

import (
	"fmt"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

func TestReadAnswers(t *testing.T) {
	m := new(dns.Msg)
	m.SetQuestion("www.example.com.", dns.TypeA)
	m.Response = true
	m.Compress = true
	for _, s := range []string{
		"www.example.com. 60 IN CNAME Tracker.Cloak.EXAMPLE.",
		"tracker.cloak.example. 60 IN CNAME edge.cdn.example.",
		"edge.cdn.example. 60 IN A 192.0.2.1",
		"edge.cdn.example. 60 IN AAAA 2001:db8::1",
		"edge.cdn.example. 60 IN TXT \"x\"",
	} {
		rr, err := dns.NewRR(s)
		if err != nil {
			t.Fatal(err)
		}
		m.Answer = append(m.Answer, rr)
	}
	msg, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	var q Question
	if ReadReply(msg, &q) != OK {
		t.Fatal("ReadReply")
	}
	var a Answers
	if !ReadAnswers(msg, &q, &a) {
		t.Fatal("ReadAnswers failed")
	}
	var names []string
	for _, n := range a.Names() {
		names = append(names, string(n))
	}
	if got := strings.Join(names, ","); got != "tracker.cloak.example,edge.cdn.example" {
		t.Errorf("names %s", got)
	}
	if got := fmt.Sprint(a.Addrs()); got != "[192.0.2.1 2001:db8::1]" {
		t.Errorf("addrs %s", got)
	}
	if allocs := testing.AllocsPerRun(100, func() { ReadAnswers(msg, &q, &a); a.Names() }); allocs != 0 {
		t.Errorf("ReadAnswers allocates %v times", allocs)
	}
	// Truncated and looping messages fail without panicking.
	for i := q.End; i < len(msg); i++ {
		ReadAnswers(msg[:i], &q, &a)
	}
	loop := append([]byte(nil), msg...)
	// Point the first CNAME's target at itself.
	cn := strings.Index(string(loop), "\x07Tracker")
	if cn < 0 {
		t.Fatal("no target in the packed message")
	}
	loop[cn], loop[cn+1] = 0xc0|byte(cn>>8), byte(cn)
	if ReadAnswers(loop, &q, &a) {
		t.Error("a self-pointing name was accepted")
	}
}

func FuzzReadAnswers(f *testing.F) {
	m := new(dns.Msg)
	m.SetQuestion("a.example.", dns.TypeA)
	m.Response = true
	rr, _ := dns.NewRR("a.example. 1 IN CNAME b.example.")
	m.Answer = append(m.Answer, rr)
	b, _ := m.Pack()
	f.Add(b)
	f.Fuzz(func(t *testing.T, msg []byte) {
		var q Question
		if ReadReply(msg, &q) != OK {
			return
		}
		var a Answers
		if ReadAnswers(msg, &q, &a) {
			for _, n := range a.Names() {
				if len(n) > 253 {
					t.Fatalf("name of %d bytes", len(n))
				}
			}
		}
	})
}

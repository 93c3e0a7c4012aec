// SPDX-License-Identifier: MIT

package upstream

import (
	"fmt"

	"github.com/miekg/dns"
)

// SpliceAlias turns an upstream's reply for a rewrite target (the query was
// asked for target instead of the client's name) into the reply to the
// client's question: the question becomes the client's name (origWire, in
// wire format) and a CNAME record from it to the target (ttl) comes first,
// followed by the upstream's records. It writes the result into out and
// returns its length. This is the slow path of $dnsrewrite CNAME answers,
// and allocates.
func SpliceAlias(reply, origWire []byte, ttl uint32, out []byte) (int, error) {
	var m dns.Msg
	if err := m.Unpack(reply); err != nil {
		return 0, fmt.Errorf("splice alias: %w", err)
	}
	if len(m.Question) != 1 {
		return 0, fmt.Errorf("splice alias: reply has %d questions", len(m.Question))
	}
	orig, _, err := dns.UnpackDomainName(origWire, 0)
	if err != nil {
		return 0, fmt.Errorf("splice alias: client name: %w", err)
	}
	target := m.Question[0].Name
	m.Question[0].Name = orig
	cname := &dns.CNAME{Hdr: dns.RR_Header{Name: orig, Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: ttl}, Target: target}
	m.Answer = append([]dns.RR{cname}, m.Answer...)
	m.Compress = true
	b, err := m.PackBuffer(out)
	if err != nil {
		return 0, fmt.Errorf("splice alias: %w", err)
	}
	if len(b) > len(out) || &b[0] != &out[0] {
		return 0, fmt.Errorf("splice alias: reply of %d bytes does not fit", len(b))
	}
	// miekg/dns reads some records it does not write back whole (a TSIG
	// whose lengths lie): the client must get a message it can read.
	var check dns.Msg
	if err := check.Unpack(b); err != nil {
		return 0, fmt.Errorf("splice alias: the upstream's records do not survive a rewrite: %w", err)
	}
	return len(b), nil
}

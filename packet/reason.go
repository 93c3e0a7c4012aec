// SPDX-License-Identifier: MIT

package packet

// Reason says why a packet or message is not processed further. Reason 0
// (OK) means fine.
type Reason uint8

const (
	OK Reason = iota

	// IP/UDP level (Decode): the packet is dropped and counted.

	// DropShort: empty, shorter than its IP header, or its IP header, IPv4
	// total length or IPv6 payload length exceeds the buffer (a truncated
	// packet).
	DropShort
	// DropVersion: the version nibble is neither 4 nor 6.
	DropVersion
	// DropBadHeader: IHL < 5, IPv4 total length smaller than the header plus
	// a UDP header, IPv6 payload length 0 (jumbogram) or smaller than a UDP
	// header, malformed IPv4 options, or a UDP length that differs from the
	// IP payload length.
	DropBadHeader
	// DropFragment: IPv4 MF set or fragment offset != 0; IPv6 fragment
	// header (next header 44).
	DropFragment
	// DropIPv6Ext: an IPv6 extension header other than fragment (hop-by-hop,
	// routing, destination options, AH, ESP, mobility, HIP, shim6,
	// experimental): we do not walk extension chains.
	DropIPv6Ext
	// DropNotUDP: the IP payload is not UDP.
	DropNotUDP
	// DropNotDNS: UDP destination port != 53.
	DropNotDNS

	// DNS level (ReadQuestion, ReadReply).

	// DropShortDNS: message shorter than the 12-byte header; never answered.
	DropShortDNS
	// DropResponse: QR=1 where a query was expected (or QR=0 where a reply
	// was); never answered, so we cannot be used to reflect or amplify.
	DropResponse
	// NotImp: opcode != QUERY; answer NOTIMP.
	NotImp
	// FormErr: the header is valid but the message is not a well-formed
	// single-question query; answer FORMERR.
	FormErr

	NumReasons
)

var reasonNames = [NumReasons]string{
	OK:            "ok",
	DropShort:     "short",
	DropVersion:   "bad_version",
	DropBadHeader: "bad_header",
	DropFragment:  "fragment",
	DropIPv6Ext:   "ipv6_ext",
	DropNotUDP:    "not_udp",
	DropNotDNS:    "not_dns",
	DropShortDNS:  "short_dns",
	DropResponse:  "response",
	NotImp:        "notimp",
	FormErr:       "formerr",
}

// String returns a short snake_case name, suitable as a counter label.
func (r Reason) String() string {
	if r < NumReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// DNS response codes used by Rcode (RFC 1035 §4.1.1).
const (
	rcodeFormErr = 1
	rcodeNotImp  = 4
)

// Rcode says how to answer a message rejected with r: (4 NOTIMP, true),
// (1 FORMERR, true), or (0, false) meaning drop silently. OK also returns
// (0, false): there is nothing to reject.
func (r Reason) Rcode() (rcode uint8, answer bool) {
	switch r {
	case NotImp:
		return rcodeNotImp, true
	case FormErr:
		return rcodeFormErr, true
	}
	return 0, false
}

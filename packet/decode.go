// SPDX-License-Identifier: MIT

package packet

import (
	"encoding/binary"
	"net/netip"
)

// Header sizes written by the builders.
const (
	IPv4HeaderLen = 20 // RFC 791 §3.1, without options
	IPv6HeaderLen = 40 // RFC 8200 §3
	UDPHeaderLen  = 8  // RFC 768
	// MaxHeaderLen is the largest IP+UDP header the builders write: a
	// payload at MaxHeaderLen can be wrapped for either family.
	MaxHeaderLen = IPv6HeaderLen + UDPHeaderLen
)

const (
	protoUDP = 17     // IANA protocol number for UDP
	dnsPort  = 53     // RFC 1035 §4.2.1
	maxIPLen = 0xffff // largest IPv4 total length; we keep IPv6 within it too
)

// Parsed holds what Decode found. Offsets, not slices; addresses copied.
type Parsed struct {
	Family     uint8          // 4 or 6
	Src, Dst   netip.AddrPort // from the IP and UDP headers (copied, not aliases)
	PayloadOff int            // offset of the UDP payload (the DNS message) in the packet
	PayloadLen int            // UDP length - 8
}

// Parser decodes IPv4/IPv6 + UDP packets. It holds no state: it is kept
// so that callers own one per goroutine, as with every decoder here, and a
// decoder that needs scratch space can be given it without changing them.
type Parser struct{}

// NewParser returns a Parser ready for Decode.
func NewParser() *Parser { return &Parser{} }

// Decode checks and decodes one packet pkt, which starts at the IP header
// (no link header). On OK, out describes a UDP datagram to port 53;
// otherwise out is zeroed. Bytes beyond the IPv4 total length or the IPv6
// payload length are ignored, as the kernel does. The UDP checksum is not
// verified (the packets come from the local stack through the TUN), nor is
// the IPv4 header checksum.
//
// Every check is made on the raw bytes, and the fields are read from them
// directly; nothing allocates and nothing of pkt is kept. gopacket decoded
// these packets a second time until issue 17, and found nothing the checks
// had not: it is now the oracle the tests and FuzzDecode hold Decode to
// (every packet Decode accepts, gopacket decodes to the same addresses,
// ports and payload).
func (p *Parser) Decode(pkt []byte, out *Parsed) Reason {
	*out = Parsed{}
	if len(pkt) == 0 {
		return DropShort
	}
	var r Reason
	switch pkt[0] >> 4 {
	case 4:
		r = check4(pkt)
	case 6:
		r = check6(pkt)
	default:
		return DropVersion
	}
	if r != OK {
		return r
	}
	if pkt[0]>>4 == 4 {
		ihl := int(pkt[0]&0x0f) * 4
		out.Family = 4
		out.Src = netip.AddrPortFrom(netip.AddrFrom4([4]byte(pkt[12:16])), binary.BigEndian.Uint16(pkt[ihl:]))
		out.Dst = netip.AddrPortFrom(netip.AddrFrom4([4]byte(pkt[16:20])), dnsPort)
		out.PayloadOff = ihl + UDPHeaderLen
		out.PayloadLen = int(binary.BigEndian.Uint16(pkt[ihl+4:])) - UDPHeaderLen
	} else {
		out.Family = 6
		out.Src = netip.AddrPortFrom(netip.AddrFrom16([16]byte(pkt[8:24])), binary.BigEndian.Uint16(pkt[IPv6HeaderLen:]))
		out.Dst = netip.AddrPortFrom(netip.AddrFrom16([16]byte(pkt[24:40])), dnsPort)
		out.PayloadOff = IPv6HeaderLen + UDPHeaderLen
		out.PayloadLen = int(binary.BigEndian.Uint16(pkt[IPv6HeaderLen+4:])) - UDPHeaderLen
	}
	return OK
}

// check4 validates an IPv4 header and the UDP header behind it on the raw
// bytes (RFC 791 §3.1, RFC 768).
func check4(pkt []byte) Reason {
	if len(pkt) < IPv4HeaderLen {
		return DropShort
	}
	ihl := int(pkt[0]&0x0f) * 4 // IHL: header length in 32-bit words, byte 0 low nibble
	if ihl < IPv4HeaderLen {
		return DropBadHeader
	}
	if ihl > len(pkt) {
		return DropShort
	}
	total := int(binary.BigEndian.Uint16(pkt[2:4])) // total length, bytes 2-3
	if total < ihl+UDPHeaderLen {
		// Also rejects total length 0, which gopacket would take as TSO.
		return DropBadHeader
	}
	if total > len(pkt) {
		return DropShort
	}
	// Flags (3 bits) and fragment offset (13 bits), bytes 6-7: MF is 0x2000.
	if ff := binary.BigEndian.Uint16(pkt[6:8]); ff&0x2000 != 0 || ff&0x1fff != 0 {
		return DropFragment
	}
	if pkt[9] != protoUDP { // protocol, byte 9
		return DropNotUDP
	}
	if !options4Valid(pkt[IPv4HeaderLen:ihl]) {
		return DropBadHeader
	}
	return checkUDP(pkt[ihl:total])
}

// options4Valid walks IPv4 options (RFC 791 §3.1, "Options") with the same
// rules gopacket's decoder applies, so that it never returns an error: type
// 0 ends the list, type 1 is a one-byte no-op, any other type has a length
// byte that counts type and length, must exceed 2 and must fit.
func options4Valid(o []byte) bool {
	for len(o) > 0 {
		switch o[0] {
		case 0:
			return true
		case 1:
			o = o[1:]
		default:
			if len(o) < 2 {
				return false
			}
			n := int(o[1])
			if n <= 2 || n > len(o) {
				return false
			}
			o = o[n:]
		}
	}
	return true
}

// check6 validates an IPv6 fixed header (RFC 8200 §3) and the UDP header
// behind it. Extension headers are not walked: a fragment header is a
// fragment, any other extension header is dropped.
func check6(pkt []byte) Reason {
	if len(pkt) < IPv6HeaderLen {
		return DropShort
	}
	plen := int(binary.BigEndian.Uint16(pkt[4:6])) // payload length, bytes 4-5
	if plen == 0 {
		// Jumbogram (RFC 2675) or garbage; never DNS.
		return DropBadHeader
	}
	if IPv6HeaderLen+plen > len(pkt) {
		return DropShort
	}
	switch pkt[6] { // next header, byte 6
	case protoUDP:
	case 44: // Fragment (RFC 8200 §4.5)
		return DropFragment
	case 0, 43, 60, 51, 50, 135, 139, 140, 253, 254:
		// Hop-by-hop, Routing, Destination Options, AH, ESP, Mobility,
		// HIP, Shim6, experimental (RFC 8200 §4, IANA "IPv6 Extension
		// Header Types").
		return DropIPv6Ext
	default:
		return DropNotUDP
	}
	return checkUDP(pkt[IPv6HeaderLen : IPv6HeaderLen+plen])
}

// checkUDP validates the UDP header (RFC 768) at the start of the IP payload
// u: its length field (bytes 4-5) must equal len(u) and the destination port
// (bytes 2-3) must be 53.
func checkUDP(u []byte) Reason {
	if len(u) < UDPHeaderLen {
		return DropBadHeader
	}
	if int(binary.BigEndian.Uint16(u[4:6])) != len(u) {
		return DropBadHeader
	}
	if binary.BigEndian.Uint16(u[2:4]) != dnsPort {
		return DropNotDNS
	}
	return OK
}

// SPDX-License-Identifier: MIT

// Package pkttest builds and checks IP/UDP/DNS packets for tests, using
// independent oracles: gopacket serialisation (with FixLengths and
// ComputeChecksums) to build and to verify, and miekg/dns to pack and
// unpack DNS messages. It is a normal package, imported only by tests.
package pkttest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/miekg/dns"
)

// Pack packs m with miekg/dns, panicking on error (test inputs are fixed).
func Pack(m *dns.Msg) []byte {
	b, err := m.Pack()
	if err != nil {
		panic(fmt.Sprintf("pkttest: pack %v: %v", m.Question, err))
	}
	return b
}

// Query4 returns an IPv4/UDP packet from src to dst carrying m.
func Query4(src, dst netip.AddrPort, m *dns.Msg) []byte {
	return UDP4(src, dst, Pack(m), nil)
}

// Query6 returns an IPv6/UDP packet from src to dst carrying m.
func Query6(src, dst netip.AddrPort, m *dns.Msg) []byte {
	return UDP6(src, dst, Pack(m), nil)
}

// Query returns Query4 or Query6 by the family of src.
func Query(src, dst netip.AddrPort, m *dns.Msg) []byte {
	if src.Addr().Is4() {
		return Query4(src, dst, m)
	}
	return Query6(src, dst, m)
}

// UDP4 serialises an IPv4/UDP packet with gopacket, lengths and checksums
// computed by gopacket. edit, if not nil, may change the IPv4 layer before
// serialisation (options, flags, fragment offset, protocol, TTL, ...).
func UDP4(src, dst netip.AddrPort, payload []byte, edit func(*layers.IPv4)) []byte {
	ip := &layers.IPv4{
		Version:  4,
		TTL:      64,
		Protocol: layers.IPProtocolUDP,
		Id:       0x1234,
		SrcIP:    net.IP(src.Addr().AsSlice()),
		DstIP:    net.IP(dst.Addr().AsSlice()),
	}
	if edit != nil {
		edit(ip)
	}
	udp := &layers.UDP{SrcPort: layers.UDPPort(src.Port()), DstPort: layers.UDPPort(dst.Port())}
	return serialize(ip, udp, payload)
}

// UDP6 is UDP4 for IPv6.
func UDP6(src, dst netip.AddrPort, payload []byte, edit func(*layers.IPv6)) []byte {
	ip := &layers.IPv6{
		Version:    6,
		HopLimit:   64,
		NextHeader: layers.IPProtocolUDP,
		SrcIP:      net.IP(src.Addr().AsSlice()),
		DstIP:      net.IP(dst.Addr().AsSlice()),
	}
	if edit != nil {
		edit(ip)
	}
	udp := &layers.UDP{SrcPort: layers.UDPPort(src.Port()), DstPort: layers.UDPPort(dst.Port())}
	return serialize(ip, udp, payload)
}

func serialize(ip gopacket.NetworkLayer, udp *layers.UDP, payload []byte) []byte {
	if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
		panic(err)
	}
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, ip.(gopacket.SerializableLayer), udp, gopacket.Payload(payload)); err != nil {
		panic(fmt.Sprintf("pkttest: serialize: %v", err))
	}
	return bytes.Clone(buf.Bytes())
}

// Msg returns a query for name (any case, with or without trailing dot) and
// qtype with ID id and RD set.
func Msg(id uint16, name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.Id = id
	return m
}

// MsgEDNS is Msg with an OPT RR advertising size and the DO bit.
func MsgEDNS(id uint16, name string, qtype uint16, size uint16, do bool) *dns.Msg {
	m := Msg(id, name, qtype)
	m.SetEdns0(size, do)
	return m
}

// VerifyUDP decodes pkt (starting at the IP header) with gopacket's full
// decoder and checks it independently of the code under test: no decoding
// error, no trailing bytes, and every header byte, including the IPv4
// header checksum, the lengths and the UDP checksum, equal to what
// gopacket produces when it re-serialises the decoded layers with
// FixLengths and ComputeChecksums (a UDP checksum of 0xFFFF stands for a
// computed 0, RFC 768). It returns the UDP payload.
func VerifyUDP(t testing.TB, pkt []byte) (payload []byte) {
	t.Helper()
	if len(pkt) == 0 {
		t.Fatalf("VerifyUDP: empty packet")
	}
	first := layers.LayerTypeIPv4
	if pkt[0]>>4 == 6 {
		first = layers.LayerTypeIPv6
	}
	p := gopacket.NewPacket(pkt, first, gopacket.Default)
	udp, ok := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
	if !ok {
		if el := p.ErrorLayer(); el != nil {
			t.Fatalf("VerifyUDP: gopacket decode: %v", el.Error())
		}
		t.Fatalf("VerifyUDP: no UDP layer in %v", p)
	}
	// An error past UDP is gopacket's own DNS decoder, which is stricter
	// than needed on odd names; DNS is checked with miekg/dns (Unpack).
	if p.Metadata().Truncated {
		t.Fatalf("VerifyUDP: truncated packet")
	}
	var ip gopacket.NetworkLayer
	var hl int
	switch l := p.NetworkLayer().(type) {
	case *layers.IPv4:
		if int(l.Length) != len(pkt) {
			t.Errorf("VerifyUDP: IPv4 total length %d, packet %d bytes", l.Length, len(pkt))
		}
		if l.Flags&layers.IPv4MoreFragments != 0 || l.FragOffset != 0 {
			t.Errorf("VerifyUDP: IPv4 fragment flags %v offset %d", l.Flags, l.FragOffset)
		}
		c := *l
		ip, hl = &c, int(l.IHL)*4
	case *layers.IPv6:
		if int(l.Length)+40 != len(pkt) {
			t.Errorf("VerifyUDP: IPv6 payload length %d, packet %d bytes", l.Length, len(pkt))
		}
		c := *l
		ip, hl = &c, 40
	default:
		t.Fatalf("VerifyUDP: network layer %T", l)
	}
	if udp.Checksum == 0 {
		t.Errorf("VerifyUDP: UDP checksum not set")
	}
	payload = udp.Payload
	u := &layers.UDP{SrcPort: udp.SrcPort, DstPort: udp.DstPort}
	want := serialize(ip, u, payload)
	got := bytes.Clone(pkt)
	// RFC 768: a computed 0 is transmitted as all ones; gopacket writes 0.
	if binary.BigEndian.Uint16(want[hl+6:]) == 0 && binary.BigEndian.Uint16(got[hl+6:]) == 0xffff {
		got[hl+6], got[hl+7] = 0, 0
	}
	if !bytes.Equal(got, want) {
		t.Errorf("VerifyUDP: packet differs from gopacket's re-serialisation (checksums or lengths wrong)\n got %x\nwant %x", got[:min(len(got), hl+8)], want[:min(len(want), hl+8)])
	}
	return payload
}

// Unpack unpacks a DNS message with miekg/dns, failing the test on error.
func Unpack(t testing.TB, payload []byte) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	if err := m.Unpack(payload); err != nil {
		t.Fatalf("Unpack: %v (% x)", err, payload)
	}
	return m
}

// SYN4 serialises an IPv4/TCP SYN from src to dst, checksums computed by
// gopacket: the first packet of a handshake, for half-open floods.
func SYN4(src, dst netip.AddrPort, seq uint32) []byte {
	ip := &layers.IPv4{
		Version:  4,
		TTL:      64,
		Protocol: layers.IPProtocolTCP,
		SrcIP:    net.IP(src.Addr().AsSlice()),
		DstIP:    net.IP(dst.Addr().AsSlice()),
	}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(src.Port()), DstPort: layers.TCPPort(dst.Port()), Seq: seq, SYN: true, Window: 65535}
	tcp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ip, tcp); err != nil {
		panic(fmt.Sprintf("pkttest: serialise SYN: %v", err))
	}
	return bytes.Clone(buf.Bytes())
}

// WriteFrame writes m to w with the two-byte length prefix of DNS over TCP
// (RFC 1035 §4.2.2).
func WriteFrame(w io.Writer, m *dns.Msg) error {
	b := Pack(m)
	_, err := w.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(b))), b...))
	return err
}

// ReadFrame reads one length-prefixed DNS message from r.
func ReadFrame(r io.Reader) (*dns.Msg, error) {
	var l [2]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		return nil, err
	}
	b := make([]byte, binary.BigEndian.Uint16(l[:]))
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	m := new(dns.Msg)
	return m, m.Unpack(b)
}

// SPDX-License-Identifier: MIT

package tlstest

import (
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestUnboundConfigText(t *testing.T) {
	c := UnboundConfig{
		Dir:      "/tmp/x",
		DNS:      []netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:53")},
		TLS:      []netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:853"), netip.MustParseAddrPort("[2001:db8::1]:853")},
		CertFile: "c.pem", KeyFile: "k.pem",
		Zones: []string{"test. static"},
		Data:  []string{`t.test. TXT "a b"`},
	}
	text, err := c.Text()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"interface: 192.0.2.1@53\n", "interface: 2001:db8::1@853\n", "tls-port: 853\n",
		`local-zone: "test." static`, `local-data: 't.test. TXT "a b"'`, `tls-service-pem: "c.pem"`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("config lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "https-port") {
		t.Errorf("config serves HTTPS without an HTTPS address:\n%s", text)
	}
	c.TLS = append(c.TLS, netip.MustParseAddrPort("192.0.2.1:8853"))
	if _, err := c.Text(); err == nil {
		t.Error("two TLS ports accepted; unbound has one tls-port")
	}
	c.TLS, c.CertFile = c.TLS[:1], ""
	if _, err := c.Text(); err == nil {
		t.Error("TLS without a certificate accepted")
	}
}

// TestLoopback starts unbound and asks it for a record over DNS over TLS,
// verifying its certificate against the test CA.
func TestLoopback(t *testing.T) {
	l := StartLoopback(t, "dns.test", []string{"test. static"}, []string{"a.test. 300 IN A 192.0.2.7"})
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", l.TLS.String(), &tls.Config{ServerName: l.ServerName, RootCAs: l.CA.Pool})
	if err != nil {
		t.Fatalf("%v: %v\n%s", l, err, l.Log())
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if got := c.ConnectionState().PeerCertificates[0]; !got.Equal(l.Leaf.Cert) {
		t.Errorf("unbound presents %v, want the leaf issued", got.Subject)
	}
	q := Query(7, "a.test.", 1)
	if _, err := c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(q))), q...)); err != nil {
		t.Fatal(err)
	}
	var l2 [2]byte
	if _, err := io.ReadFull(c, l2[:]); err != nil {
		t.Fatal(err)
	}
	msg := make([]byte, binary.BigEndian.Uint16(l2[:]))
	if _, err := io.ReadFull(c, msg); err != nil {
		t.Fatal(err)
	}
	// The answer ends with the A record's RDATA.
	if binary.BigEndian.Uint16(msg) != 7 || len(msg) < 4 || netip.AddrFrom4([4]byte(msg[len(msg)-4:])).String() != "192.0.2.7" {
		t.Errorf("answer % x, want ID 7 ending in 192.0.2.7", msg)
	}
}

// SPDX-License-Identifier: MIT

package upstream

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/miekg/dns"
)

// NewExchanger starts a transport to the upstream spec (any protocol but
// plain UDP). Connections are dialled on first use, so an upstream that
// cannot be reached yet does not stop the caller: its queries fail (fail
// callback) until it can. See Exchanger for the callbacks.
func NewExchanger(spec Spec, opt DialOptions, answer func(msg []byte), fail func(id uint16, err error)) (Exchanger, error) {
	if opt.Timeout <= 0 {
		opt.Timeout = 2 * time.Second
	}
	if opt.IdleTimeout <= 0 {
		opt.IdleTimeout = 30 * time.Second
	}
	if !spec.Addr.IsValid() && len(opt.Bootstrap) == 0 {
		return nil, fmt.Errorf("upstream %s: %q is a host name and no bootstrap resolver is set: give --bootstrap IP[:PORT] or an address in the URL", spec, spec.Host)
	}
	switch spec.Proto {
	case ProtoTCP, ProtoTLS:
		return newStream(spec, opt, answer, fail)
	case ProtoHTTPS:
		return newDoH(spec, opt, answer, fail)
	case ProtoH3:
		return newDoH3(spec, opt, answer, fail)
	case ProtoQUIC:
		return newDoQ(spec, opt, answer, fail)
	}
	return nil, fmt.Errorf("upstream %s: protocol %v has no exchanger (plain UDP goes through a Pool)", spec, spec.Proto)
}

// dialer returns a net.Dialer whose sockets carry opt's mark, so that
// they bypass dnstun's own steering.
func dialer(opt DialOptions) *net.Dialer {
	return &net.Dialer{
		Timeout: opt.Timeout,
		Control: func(network, address string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) { serr = control(network, fd, Options{Mark: opt.Mark}) })
			return errors.Join(err, serr)
		},
	}
}

// listenUDP opens an unconnected UDP socket for a QUIC transport, marked
// like every other upstream socket.
func listenUDP(opt DialOptions, v6 bool) (*net.UDPConn, error) {
	lc := net.ListenConfig{Control: dialer(opt).Control}
	network, laddr := "udp4", "0.0.0.0:0"
	if v6 {
		network, laddr = "udp6", "[::]:0"
	}
	c, err := lc.ListenPacket(context.Background(), network, laddr)
	if err != nil {
		return nil, fmt.Errorf("open a UDP socket for QUIC: %w", err)
	}
	return c.(*net.UDPConn), nil
}

// resolve returns the server's addresses: the URL's address, or the host
// name looked up (A, then AAAA) through the bootstrap resolvers over plain
// UDP on marked sockets, never through dnstun itself.
func resolve(ctx context.Context, spec Spec, opt DialOptions) ([]netip.AddrPort, error) {
	if ap, ok := spec.AddrPort(); ok {
		return []netip.AddrPort{ap}, nil
	}
	c := &dns.Client{Net: "udp", Timeout: opt.Timeout, Dialer: dialer(opt)}
	var out []netip.AddrPort
	var errs []error
	for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA} {
		m := new(dns.Msg)
		m.SetQuestion(dns.Fqdn(spec.Host), qt)
		for _, b := range opt.Bootstrap {
			r, _, err := c.ExchangeContext(ctx, m, b.String())
			if err != nil {
				errs = append(errs, fmt.Errorf("bootstrap %v: %w", b, err))
				continue
			}
			// SERVFAIL or REFUSED says nothing about the name: ask the
			// next resolver. NXDOMAIN and NOERROR are answers.
			if r.Rcode != dns.RcodeSuccess && r.Rcode != dns.RcodeNameError {
				errs = append(errs, fmt.Errorf("bootstrap %v: %s for %s %s", b, dns.RcodeToString[r.Rcode], spec.Host, dns.TypeToString[qt]))
				continue
			}
			for _, rr := range r.Answer {
				var a netip.Addr
				switch rr := rr.(type) {
				case *dns.A:
					a, _ = netip.AddrFromSlice(rr.A.To4())
				case *dns.AAAA:
					a, _ = netip.AddrFromSlice(rr.AAAA)
				}
				if a.IsValid() {
					out = append(out, netip.AddrPortFrom(a, spec.Port))
				}
			}
			break // this resolver answered: it is the authority for this run
		}
	}
	if len(out) == 0 {
		errs = append(errs, errors.New("no A or AAAA record"))
		return nil, fmt.Errorf("upstream %s: resolve %q through the bootstrap resolvers %v: %w", spec, spec.Host, opt.Bootstrap, errors.Join(errs...))
	}
	return out, nil
}

// tlsConfig verifies the server by its name in the URL (or its address)
// against opt.RootCAs or the system's roots, and, when the spec has pins,
// requires one of them in the verified chain.
func tlsConfig(spec Spec, opt DialOptions, alpn ...string) *tls.Config {
	cfg := &tls.Config{
		ServerName: spec.Host,
		RootCAs:    opt.RootCAs,
		NextProtos: alpn,
		MinVersion: tls.VersionTLS12,
		// A TLS session resumed is a round trip saved on a reconnect.
		ClientSessionCache: tls.NewLRUClientSessionCache(8),
	}
	if len(spec.Pins) > 0 {
		pins := spec.Pins
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			for _, chain := range cs.VerifiedChains {
				for _, c := range chain {
					if hasPin(pins, c) {
						return nil
					}
				}
			}
			leaf := "none"
			if len(cs.PeerCertificates) > 0 {
				leaf = PinString(sha256.Sum256(cs.PeerCertificates[0].RawSubjectPublicKeyInfo))
			}
			return fmt.Errorf("%w: the server's certificate has pin-sha256=%s", errPinMismatch, leaf)
		}
	}
	return cfg
}

// errPinMismatch is tlsConfig's verification error when no certificate of a
// verified chain carries a pinned key; transports test for it to explain
// the refusal.
var errPinMismatch = errors.New("no certificate in the server's verified chain has a pinned public key")

func hasPin(pins [][32]byte, c *x509.Certificate) bool {
	sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	for _, p := range pins {
		if p == sum {
			return true
		}
	}
	return false
}

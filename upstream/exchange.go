// SPDX-License-Identifier: MIT

package upstream

import (
	"crypto/x509"
	"errors"
	"log/slog"
	"net/netip"
	"strconv"
	"time"
)

// Proto is the transport an upstream is reached over.
type Proto uint8

const (
	ProtoUDP   Proto = iota // plain DNS over UDP (RFC 1035): IP[:port], udp://
	ProtoTCP                // plain DNS over TCP (RFC 7766): tcp://
	ProtoTLS                // DNS over TLS (RFC 7858): tls://host[:853]
	ProtoHTTPS              // DNS over HTTPS, HTTP/2 (RFC 8484): https://host[:443]/path
	ProtoH3                 // DNS over HTTPS, HTTP/3: h3://host[:443]/path
	ProtoQUIC               // DNS over QUIC (RFC 9250): quic://host[:853]
)

var protoNames = [...]string{"udp", "tcp", "tls", "https", "h3", "quic"}

func (p Proto) String() string {
	if int(p) < len(protoNames) {
		return protoNames[p]
	}
	return "unknown"
}

// Encrypted reports whether p authenticates the server (TLS or QUIC).
func (p Proto) Encrypted() bool { return p >= ProtoTLS }

// Spec is one upstream resolver as the user named it, parsed (ParseSpec).
type Spec struct {
	Proto Proto
	// Host is the server's name as written in the URL (the TLS server
	// name), or its IP address in text when the URL gives an address.
	Host string
	// Addr is the server's address when the URL gives one; the zero value
	// when Host is a name, to be resolved through the bootstrap resolvers.
	Addr netip.Addr
	// Port is the URL's port, or the protocol's default (53, 853, 443).
	Port uint16
	// Path is the DoH request path ("/dns-query" unless the URL gives one);
	// empty for other protocols.
	Path string
	// Pins are SHA-256 digests of acceptable SubjectPublicKeyInfo; when
	// set, the server's chain must contain one of them (in addition to
	// the usual verification).
	Pins [][32]byte
}

// AddrPort returns the server's address and port when the URL gives an
// address (not a name).
func (s Spec) AddrPort() (netip.AddrPort, bool) {
	if !s.Addr.IsValid() {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(s.Addr, s.Port), true
}

// DialOptions configure how a transport reaches its upstream.
type DialOptions struct {
	// Mark is the SO_MARK every socket carries on Linux (see Mark); 0
	// leaves sockets unmarked.
	Mark uint32
	// Bootstrap resolves host names in upstream URLs (plain DNS, marked
	// sockets, never through dnstun). NewExchanger refuses a URL with a
	// host name when it is empty: the daemon fills in the system's
	// resolvers when none are given.
	Bootstrap []netip.AddrPort
	// Timeout bounds one query: a query without an answer by then is
	// reported through the fail callback.
	Timeout time.Duration
	// IdleTimeout closes a connection nothing was sent on for this long.
	IdleTimeout time.Duration
	// RootCAs verifies servers' certificates; nil means the system's roots
	// (SSL_CERT_FILE and SSL_CERT_DIR respected, as Go does).
	RootCAs *x509.CertPool
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// Exchanger carries DNS messages to one upstream over a connection-oriented
// or encrypted transport (everything but plain UDP, which the engine sends
// through a Pool). Its work runs on its own goroutines.
//
// Answers are handed to the answer callback given to NewExchanger, with the
// ID the query was sent with (a transport whose protocol sends ID 0, as DoQ
// and DoH may, restores it). A query that cannot be answered (dial failed,
// certificate refused, connection reset, HTTP error, timeout) is reported
// to the fail callback with its ID and the reason, at most once, so the
// caller can fail over at once instead of waiting for its own deadline.
// Callbacks may run concurrently from several goroutines; msg is valid only
// during the call.
type Exchanger interface {
	// Send hands one query over and returns at once: msg is copied. It
	// fails without blocking when the transport is closed or its queue is
	// full.
	Send(msg []byte) error
	// Close closes every connection; queries in flight get no callback.
	Close() error
	// String is the upstream's URL, for logs and status.
	String() string
}

// String is the upstream as a URL, in the form ParseSpec reads.
func (s Spec) String() string {
	host := s.Host
	if s.Addr.Is6() {
		// Inside brackets a zone's % is written %25 (RFC 6874), as
		// ParseSpec reads it: a zone named "25" must not read back as an
		// escape.
		a := s.Addr.WithZone("").String()
		if z := s.Addr.Zone(); z != "" {
			a += "%25" + z
		}
		host = "[" + a + "]"
	}
	port := ":" + strconv.Itoa(int(s.Port))
	switch s.Proto {
	case ProtoUDP:
		return host + port
	case ProtoHTTPS, ProtoH3:
		return s.Proto.String() + "://" + host + port + s.Path
	}
	return s.Proto.String() + "://" + host + port
}

// ErrTimeout is the reason a transport gives to the fail callback for a
// query its upstream did not answer within DialOptions.Timeout (wrapped;
// test with errors.Is).
var ErrTimeout = errors.New("no answer in time")

// UDPSpecs returns plain UDP specs for addrs (the system's resolvers).
func UDPSpecs(addrs []netip.AddrPort) []Spec {
	out := make([]Spec, len(addrs))
	for i, a := range addrs {
		out[i] = Spec{Proto: ProtoUDP, Host: a.Addr().String(), Addr: a.Addr(), Port: a.Port()}
	}
	return out
}

// SPDX-License-Identifier: MIT

// Command quicupstream is the upstream of the benchmark's transports phase
// for DNS over QUIC (RFC 9250) and DNS over HTTPS over HTTP/3: the test
// server of internal/quictest (on quic-go), run as a process of its own so
// that it can be started inside the benchmark's upstream namespace, pinned
// to a core, and its CPU time read from /proc. No packaged server serves
// DoQ or DoH3 on Debian 12 (see internal/quictest), so its figures are
// those of this server, not comparable to unbound's.
//
//	quicupstream -doq 192.0.2.1:8853 -doh3 192.0.2.1:8443 -cert C -key K -names FILE
//
// It answers every name of FILE (the benchmark's query file: "name TYPE"
// per line, only the name is read) with A 192.0.2.80, TTL 0, and every
// other name with NXDOMAIN. It prints "quicupstream: serving" once both
// sockets are open, and exits on SIGINT or SIGTERM, printing how many
// queries each server read.
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/dnstun/dnstun/internal/dnstest"
	"github.com/dnstun/dnstun/internal/quictest"
)

func main() {
	doq := flag.String("doq", "", "UDP address to serve DNS over QUIC on (empty: none)")
	doh3 := flag.String("doh3", "", "UDP address to serve DNS over HTTP/3 on, path /dns-query (empty: none)")
	certFile := flag.String("cert", "", "server certificate (PEM)")
	keyFile := flag.String("key", "", "the certificate's private key (PEM)")
	names := flag.String("names", "", "file of the names to answer: \"name TYPE\" per line")
	version := flag.Bool("version", false, "print the quic-go version this was built with, and exit")
	flag.Parse()
	if *version {
		fmt.Println(quicVersion())
		return
	}
	if *doq == "" && *doh3 == "" {
		fail("nothing to serve: give -doq and/or -doh3")
	}
	cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
	if err != nil {
		fail(fmt.Sprintf("load -cert %q and -key %q: %v", *certFile, *keyFile, err))
	}
	zone, err := readZone(*names)
	if err != nil {
		fail(err.Error())
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	type served struct {
		what string
		s    *quictest.Server
	}
	var servers []served
	for _, s := range []struct {
		what, addr string
		serve      func(quictest.Config) (*quictest.Server, error)
	}{{"DoQ", *doq, quictest.ServeDoQ}, {"DoH3", *doh3, quictest.ServeDoH3}} {
		if s.addr == "" {
			continue
		}
		srv, err := s.serve(quictest.Config{Addr: s.addr, Cert: cert, Zone: zone})
		if err != nil {
			fail(fmt.Sprintf("%s on %s: %v", s.what, s.addr, err))
		}
		servers = append(servers, served{s.what, srv})
	}
	fmt.Fprintf(os.Stderr, "quicupstream: serving %d names (DoQ %q, DoH3 %q)\n", len(zone), *doq, *doh3)
	<-ctx.Done()
	for _, s := range servers {
		s.s.Close()
		fmt.Fprintf(os.Stderr, "quicupstream: %s read %d queries on %d connections, %d protocol errors\n",
			s.what, s.s.Streams(), s.s.Conns(), s.s.ProtocolErrors())
	}
}

// readZone reads the names of the query file at path into a zone that
// answers each with A 192.0.2.80, TTL 0.
func readZone(path string) (dnstest.Zone, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("-names: %w", err)
	}
	defer f.Close()
	var records []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, _, _ := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		if name == "" || strings.HasPrefix(name, "#") {
			continue
		}
		records = append(records, strings.TrimSuffix(name, ".")+". 0 IN A 192.0.2.80")
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("-names %s: %w", path, err)
	}
	if len(records) == 0 {
		return nil, fmt.Errorf("-names %s: no names", path)
	}
	return dnstest.ParseZone(records...)
}

// quicVersion is the version of quic-go in this binary's build info.
func quicVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/quic-go/quic-go" {
				return "quic-go " + d.Version
			}
		}
	}
	return "quic-go"
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "quicupstream:", msg)
	os.Exit(1)
}

// SPDX-License-Identifier: MIT

// Package dnstest is a small authoritative DNS server on miekg/dns for the
// demo and the tests: it answers from a fixed zone (NXDOMAIN for names it
// does not hold), counts the queries it sees, and can be told to stay
// silent, to simulate an upstream that does not answer.
package dnstest

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/miekg/dns"
)

// Zone maps a lower-case FQDN ("www.example.com.") to its records.
type Zone map[string][]dns.RR

// ParseZone builds a zone from records in presentation format, e.g.
// "www.example.com. 300 IN A 192.0.2.80".
func ParseZone(records ...string) (Zone, error) {
	z := Zone{}
	for _, s := range records {
		rr, err := dns.NewRR(s)
		if err != nil {
			return nil, fmt.Errorf("zone record %q: %w", s, err)
		}
		name := strings.ToLower(rr.Header().Name)
		z[name] = append(z[name], rr)
	}
	return z, nil
}

// Server answers DNS queries on one packet connection.
type Server struct {
	zone    Zone
	srv     *dns.Server
	silent  atomic.Bool
	queries atomic.Int64
	mu      sync.Mutex
	byName  map[string]int
	done    chan struct{}
}

// Serve starts answering on pc from zone. Close stops it and closes pc.
func Serve(pc net.PacketConn, zone Zone) *Server {
	return serve(&dns.Server{PacketConn: pc}, zone)
}

// ServeTCP starts answering DNS over TCP on l from zone.
func ServeTCP(l net.Listener, zone Zone) *Server {
	return serve(&dns.Server{Listener: l}, zone)
}

func serve(srv *dns.Server, zone Zone) *Server {
	s := &Server{zone: zone, byName: map[string]int{}, done: make(chan struct{}), srv: srv}
	started := make(chan struct{})
	srv.Handler = s
	srv.NotifyStartedFunc = func() { close(started) }
	go func() {
		defer close(s.done)
		srv.ActivateAndServe()
	}()
	select {
	case <-started:
	case <-s.done:
	}
	return s
}

// ServeDNS implements dns.Handler.
func (s *Server) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	s.queries.Add(1)
	if len(r.Question) == 1 {
		s.mu.Lock()
		s.byName[strings.ToLower(r.Question[0].Name)]++
		s.mu.Unlock()
	}
	if s.silent.Load() || len(r.Question) != 1 {
		return
	}
	q := r.Question[0]
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	rrs, ok := s.zone[strings.ToLower(q.Name)]
	if !ok {
		m.Rcode = dns.RcodeNameError
	}
	owner := q.Name
	for hops := 0; hops < 8; hops++ {
		var next []dns.RR
		for _, rr := range rrs {
			if rr.Header().Rrtype == q.Qtype || rr.Header().Rrtype == dns.TypeCNAME && q.Qtype != dns.TypeCNAME {
				c := dns.Copy(rr)
				c.Header().Name = owner
				m.Answer = append(m.Answer, c)
				if cn, isCNAME := rr.(*dns.CNAME); isCNAME && q.Qtype != dns.TypeCNAME {
					owner = cn.Target
					next = s.zone[strings.ToLower(cn.Target)]
				}
			}
		}
		if next == nil {
			break
		}
		rrs = next
	}
	if opt := r.IsEdns0(); opt != nil {
		m.SetEdns0(1232, opt.Do())
	}
	w.WriteMsg(m)
}

// SetSilent makes the server read queries without answering them.
func (s *Server) SetSilent(v bool) { s.silent.Store(v) }

// Queries returns how many queries the server has seen.
func (s *Server) Queries() int64 { return s.queries.Load() }

// QueriesFor returns how many queries for name (an FQDN, any case) it saw.
func (s *Server) QueriesFor(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byName[strings.ToLower(dns.Fqdn(name))]
}

// Close stops the server and closes its socket; afterwards the kernel
// answers queries to its port with ICMP port unreachable.
func (s *Server) Close() {
	s.srv.Shutdown()
	<-s.done
}

// Addr returns the address the server listens on.
func (s *Server) Addr() netip.AddrPort {
	var a net.Addr
	if s.srv.PacketConn != nil {
		a = s.srv.PacketConn.LocalAddr()
	} else {
		a = s.srv.Listener.Addr()
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

// Addrs returns the A and AAAA addresses of m's answer section, in order.
func Addrs(m *dns.Msg) []string {
	var out []string
	for _, rr := range m.Answer {
		switch rr := rr.(type) {
		case *dns.A:
			out = append(out, rr.A.String())
		case *dns.AAAA:
			out = append(out, rr.AAAA.String())
		}
	}
	return out
}

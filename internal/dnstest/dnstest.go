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
	"time"

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
	delay   atomic.Int64 // nanoseconds before each answer
	rcode   atomic.Int32 // answer every query with this rcode when > 0
	lower   atomic.Bool  // lower-case the question in answers (breaks 0x20)
	mu      sync.Mutex
	byName  map[string]int
	ports   map[uint16]int // queries by source port
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
	s := &Server{zone: zone, byName: map[string]int{}, ports: map[uint16]int{}, done: make(chan struct{}), srv: srv}
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
	s.mu.Lock()
	if len(r.Question) == 1 {
		s.byName[strings.ToLower(r.Question[0].Name)]++
	}
	if ap, err := netip.ParseAddrPort(w.RemoteAddr().String()); err == nil {
		s.ports[ap.Port()]++
	}
	s.mu.Unlock()
	if s.silent.Load() || len(r.Question) != 1 {
		return
	}
	if d := s.delay.Load(); d > 0 {
		time.Sleep(time.Duration(d))
	}
	q := r.Question[0]
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	if s.lower.Load() {
		m.Question[0].Name = strings.ToLower(q.Name)
	}
	if rc := s.rcode.Load(); rc > 0 {
		m.Rcode = int(rc)
		w.WriteMsg(m)
		return
	}
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
	if len(m.Answer) == 0 {
		// NXDOMAIN or NODATA: the enclosing zone's SOA, for negative
		// caching (RFC 2308 §3).
		for z := strings.ToLower(q.Name); z != ""; {
			if soa := s.soa(z); soa != nil {
				m.Ns = append(m.Ns, soa)
				break
			}
			_, rest, ok := strings.Cut(z, ".")
			if !ok {
				break
			}
			z = rest
		}
	}
	if opt := r.IsEdns0(); opt != nil {
		m.SetEdns0(1232, opt.Do())
	}
	w.WriteMsg(m)
}

// soa returns the zone's SOA record at name, if it holds one.
func (s *Server) soa(name string) dns.RR {
	for _, rr := range s.zone[name] {
		if rr.Header().Rrtype == dns.TypeSOA {
			return rr
		}
	}
	return nil
}

// SetSilent makes the server read queries without answering them.
func (s *Server) SetSilent(v bool) { s.silent.Store(v) }

// SetDelay makes the server wait d before each answer.
func (s *Server) SetDelay(d time.Duration) { s.delay.Store(int64(d)) }

// SetRcode makes the server answer every query with rcode and no records
// (0: answer from the zone again).
func (s *Server) SetRcode(rcode int) { s.rcode.Store(int32(rcode)) }

// SetLowerCase makes the server lower-case the question it repeats in its
// answers, as some servers do, which 0x20 case randomisation refuses.
func (s *Server) SetLowerCase(v bool) { s.lower.Store(v) }

// SourcePorts returns how many distinct source ports queries came from.
func (s *Server) SourcePorts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.ports)
}

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

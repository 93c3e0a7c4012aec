// SPDX-License-Identifier: MIT

// Package dnstest is a small authoritative DNS server on miekg/dns for the
// demo and the tests: it answers from a fixed zone (NXDOMAIN for names it
// does not hold), counts the queries it sees, and can be told to stay
// silent, to simulate an upstream that does not answer, to be slow, or to
// lie in the ways SetLie lists.
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
	lie     atomic.Int32 // a Lie
	liar    atomic.Pointer[net.PacketConn]
	lies    atomic.Int64
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
	lie := Lie(s.lie.Load())
	q := r.Question[0]
	if lie == LieType || lie == LieRecordType {
		q.Qtype = otherType(q.Qtype) // what the records are for
	}
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	if lie == LieType {
		m.Question[0].Qtype = q.Qtype
	}
	if s.lower.Load() {
		m.Question[0].Name = strings.ToLower(q.Name)
	}
	if rc := s.rcode.Load(); rc > 0 {
		m.Rcode = int(rc)
		s.write(w, m, lie)
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
	if opt := r.IsEdns0(); opt != nil && lie != LieOversize {
		m.SetEdns0(1232, opt.Do())
	}
	s.write(w, m, lie)
}

// Lie is a way an upstream server answers wrongly (SetLie).
type Lie int32

// The lies. Each applies to every answer while set; Lies counts them.
const (
	// Honest answers from the zone (the default).
	Honest Lie = iota
	// LieID answers with another message ID.
	LieID
	// LieSource sends the answer from the socket given to SetLiar (another
	// address or port than the one the query went to); without one, it
	// answers nothing.
	LieSource
	// LieQuestion answers for another name ("lie." in front of the one
	// asked), in the question and the records.
	LieQuestion
	// LieType answers another type: AAAA when A was asked, else A, in the
	// question and the records.
	LieType
	// LieRecordType repeats the question as asked but answers with the
	// records of another type (as LieType picks it).
	LieRecordType
	// LieMalformed repeats header and question, then cuts the message in
	// the middle of its last record (a TXT one it adds; EDNS dropped).
	LieMalformed
	// LieGarbage answers 5 bytes: the query's ID, QR set, and no more
	// (shorter than a DNS header).
	LieGarbage
	// LieTruncated answers over UDP with TC set and no records, as a
	// server does whose answer did not fit (over TCP it answers whole).
	LieTruncated
	// LieOversize adds 100 records to the answer (of the type asked: A,
	// AAAA, else TXT) and ignores the query's EDNS size: about 1.6 KB or
	// more, larger than any client's UDP size without EDNS, and than the
	// usual 1232 with it.
	LieOversize
)

// oversizeRecords is how many records LieOversize adds.
const oversizeRecords = 100

func otherType(t uint16) uint16 {
	if t == dns.TypeA {
		return dns.TypeAAAA
	}
	return dns.TypeA
}

// write sends m, or the lie made of it.
func (s *Server) write(w dns.ResponseWriter, m *dns.Msg, lie Lie) {
	_, udp := w.RemoteAddr().(*net.UDPAddr)
	switch lie {
	case LieID:
		m.Id ^= 0x5a5a
	case LieQuestion:
		m.Question[0].Name = "lie." + m.Question[0].Name
		for _, rr := range m.Answer {
			rr.Header().Name = "lie." + rr.Header().Name
		}
	case LieType, LieRecordType:
	case LieTruncated:
		if !udp {
			lie = Honest
			break
		}
		m.Truncated = true
		m.Answer, m.Ns = nil, nil
	case LieOversize:
		name, qt := m.Question[0].Name, m.Question[0].Qtype
		for i := range oversizeRecords {
			hdr := dns.RR_Header{Name: name, Rrtype: qt, Class: dns.ClassINET, Ttl: 300}
			switch qt {
			case dns.TypeA:
				m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: net.IPv4(203, 0, 113, byte(i)).To4()})
			case dns.TypeAAAA:
				m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr, AAAA: net.ParseIP(fmt.Sprintf("2001:db8:113::%x", i))})
			default:
				hdr.Rrtype = dns.TypeTXT
				m.Answer = append(m.Answer, &dns.TXT{Hdr: hdr, Txt: []string{fmt.Sprintf("%03d", i)}})
			}
		}
	case LieMalformed:
		m.Extra = nil
		m.Answer = append(m.Answer, &dns.TXT{Hdr: dns.RR_Header{Name: m.Question[0].Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 300},
			Txt: []string{"this record is cut short"}})
		b, err := m.Pack()
		if err != nil {
			return
		}
		s.lies.Add(1)
		w.Write(b[:len(b)-8])
		return
	case LieGarbage:
		s.lies.Add(1)
		w.Write([]byte{byte(m.Id >> 8), byte(m.Id), 0x81, 0x80, 0})
		return
	case LieSource:
		pc := s.liar.Load()
		if pc == nil || !udp {
			return
		}
		b, err := m.Pack()
		if err != nil {
			return
		}
		s.lies.Add(1)
		(*pc).WriteTo(b, w.RemoteAddr())
		return
	default:
		lie = Honest
	}
	if lie != Honest {
		s.lies.Add(1)
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

// SetLie makes the server answer every query with lie (Honest: from the
// zone again). Delay, rcode and lower case apply before the lie.
func (s *Server) SetLie(lie Lie) { s.lie.Store(int32(lie)) }

// SetLiar gives LieSource the socket it answers from (nil: none). The
// caller opens it (in the server's namespace) and closes it.
func (s *Server) SetLiar(pc net.PacketConn) {
	if pc == nil {
		s.liar.Store(nil)
		return
	}
	s.liar.Store(&pc)
}

// Lies returns how many lying answers the server has sent.
func (s *Server) Lies() int64 { return s.lies.Load() }

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

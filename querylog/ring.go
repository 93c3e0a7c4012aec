// SPDX-License-Identifier: MIT

package querylog

import (
	"net/netip"
	"strconv"
	"sync"
	"time"
)

// Decision is what dnstun did with a query.
type Decision uint8

const (
	Forwarded Decision = iota // sent to an upstream
	Blocked                   // answered with the block answer
	Local                     // answered from a local record
	Refused                   // refused at once (pending table full)
	Failed                    // SERVFAIL: no upstream answered in time
	Malformed                 // FORMERR or NOTIMP
	Cached                    // answered from the cache
	Stale                     // answered from an expired cache entry: the upstreams failed (RFC 8767)
)

var decisionNames = [...]string{"forward", "block", "local", "refused", "servfail", "formerr", "cache", "stale"}

func (d Decision) String() string {
	if int(d) < len(decisionNames) {
		return decisionNames[d]
	}
	return "decision" + strconv.Itoa(int(d))
}

// Addr is an IP address and port without pointers (netip.Addr holds
// one for IPv6 zones).
type Addr struct {
	IP   [16]byte // IPv4 as an IPv4-mapped IPv6 address
	Port uint16
	Is4  bool
	Set  bool
}

// AddrFrom converts ap.
func AddrFrom(ap netip.AddrPort) Addr {
	if !ap.IsValid() {
		return Addr{}
	}
	a := ap.Addr()
	return Addr{IP: a.As16(), Port: ap.Port(), Is4: a.Is4() || a.Is4In6(), Set: true}
}

// AddrPort converts back.
func (a Addr) AddrPort() netip.AddrPort {
	if !a.Set {
		return netip.AddrPort{}
	}
	ip := netip.AddrFrom16(a.IP)
	if a.Is4 {
		ip = ip.Unmap()
	}
	return netip.AddrPortFrom(ip, a.Port)
}

// Record is one query as the control protocol carries it (the querylog
// verb's entries; control.QueryLogEntry is this type). Its JSON form is part
// of the protocol: control/PROTOCOL.md documents every field, so a tag
// changes only together with that document and the protocol version. It is
// defined here, not in control, so that the data path imports nothing of the
// control plane.
type Record struct {
	Time          time.Time `json:"time"`
	Client        string    `json:"client"` // IP:port of the asking socket
	Name          string    `json:"name"`   // the question's name, as asked, without the final dot
	Type          string    `json:"type"`   // A, AAAA, ... or TYPEn
	Decision      string    `json:"decision"`
	Rcode         string    `json:"rcode"`              // NOERROR, NXDOMAIN, ... or RCODEn
	Upstream      string    `json:"upstream,omitempty"` // the upstream that answered, for forwarded queries
	LatencyMicros uint32    `json:"latency_us"`
}

// Entry is one query, fixed size.
type Entry struct {
	Time          int64 // Unix nanoseconds
	Client        Addr
	Upstream      Addr // the upstream that answered, for forwarded queries
	LatencyMicros uint32
	QType         uint16
	Rcode         uint8
	Decision      Decision
	NameLen       uint8
	Name          [255]byte // wire-format-free text, without the final dot
}

// SetName copies name (truncated to 255 bytes) into e without allocating.
func (e *Entry) SetName(name []byte) {
	e.NameLen = uint8(copy(e.Name[:], name))
}

// Ring is the bounded log.
type Ring struct {
	mu   sync.Mutex
	buf  []Entry
	next uint64 // total entries ever added
}

// New returns a ring of size entries (at least 1).
func New(size int) *Ring {
	return &Ring{buf: make([]Entry, max(size, 1))}
}

// Len is the ring's capacity.
func (r *Ring) Len() int { return len(r.buf) }

// Add records e, overwriting the oldest entry when the ring is full. It
// does not allocate.
func (r *Ring) Add(e *Entry) {
	r.mu.Lock()
	r.buf[r.next%uint64(len(r.buf))] = *e
	r.next++
	r.mu.Unlock()
}

// Record adds an entry built from its fields, written straight into the
// ring under the lock: only len(name) bytes of the name are copied. It does
// not allocate.
func (r *Ring) Record(t int64, client, upstream netip.AddrPort, latencyMicros uint32, qtype uint16, rcode uint8, d Decision, name []byte) {
	r.mu.Lock()
	e := &r.buf[r.next%uint64(len(r.buf))]
	e.Time = t
	e.Client = AddrFrom(client)
	e.Upstream = AddrFrom(upstream)
	e.LatencyMicros = latencyMicros
	e.QType, e.Rcode, e.Decision = qtype, rcode, d
	e.NameLen = uint8(copy(e.Name[:], name))
	r.next++
	r.mu.Unlock()
}

// Added is how many entries were ever added.
func (r *Ring) Added() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.next
}

// Snapshot returns up to n of the most recent entries, oldest first.
func (r *Ring) Snapshot(n int) []Record {
	if n <= 0 {
		return nil
	}
	r.mu.Lock()
	have := min(r.next, uint64(len(r.buf)))
	if uint64(n) > have {
		n = int(have)
	}
	raw := make([]Entry, n)
	start := r.next - uint64(n)
	for i := range raw {
		raw[i] = r.buf[(start+uint64(i))%uint64(len(r.buf))]
	}
	r.mu.Unlock()
	out := make([]Record, n)
	for i := range raw {
		out[i] = raw[i].Export()
	}
	return out
}

// Export converts e for the control protocol.
func (e *Entry) Export() Record {
	q := Record{
		Time:          time.Unix(0, e.Time).UTC(),
		Name:          string(e.Name[:e.NameLen]),
		Type:          TypeString(e.QType),
		Decision:      e.Decision.String(),
		Rcode:         RcodeString(e.Rcode),
		LatencyMicros: e.LatencyMicros,
	}
	if e.Client.Set {
		q.Client = e.Client.AddrPort().String()
	}
	if e.Upstream.Set {
		q.Upstream = e.Upstream.AddrPort().String()
	}
	return q
}

var typeNames = map[uint16]string{
	1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 13: "HINFO", 15: "MX", 16: "TXT",
	28: "AAAA", 33: "SRV", 35: "NAPTR", 43: "DS", 46: "RRSIG", 47: "NSEC", 48: "DNSKEY",
	52: "TLSA", 64: "SVCB", 65: "HTTPS", 99: "SPF", 255: "ANY", 257: "CAA",
}

// TypeString names a query type (TYPEn for the unnamed, RFC 3597).
func TypeString(t uint16) string {
	if s, ok := typeNames[t]; ok {
		return s
	}
	return "TYPE" + strconv.Itoa(int(t))
}

var rcodeNames = [...]string{"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED"}

// RcodeString names a response code.
func RcodeString(r uint8) string {
	if int(r) < len(rcodeNames) {
		return rcodeNames[r]
	}
	return "RCODE" + strconv.Itoa(int(r))
}

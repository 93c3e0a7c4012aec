// SPDX-License-Identifier: MIT

package querylog

import (
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dnstun/dnstun/attrib"
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
	Seq           uint64    `json:"seq"` // 1 for the first query the daemon logged, then one more for each
	Time          time.Time `json:"time"`
	Client        string    `json:"client"` // IP:port of the asking socket
	Proto         string    `json:"proto"`  // udp or tcp
	Name          string    `json:"name"`   // the question's name, as asked, without the final dot
	Type          string    `json:"type"`   // A, AAAA, ... or TYPEn
	Decision      string    `json:"decision"`
	Rcode         string    `json:"rcode"`              // NOERROR, NXDOMAIN, ... or RCODEn
	Upstream      string    `json:"upstream,omitempty"` // the upstream that answered, for forwarded queries
	LatencyMicros uint32    `json:"latency_us"`
	// The process that sent the query, when attribution found it.
	PID       int32   `json:"pid,omitempty"`
	UID       *uint32 `json:"uid,omitempty"`
	Process   string  `json:"process,omitempty"`    // its name (Linux: comm)
	Exe       string  `json:"exe,omitempty"`        // its executable's path
	SigningID string  `json:"signing_id,omitempty"` // macOS: its code-signing identifier
}

// Proto is a query's transport protocol: ProtoUDP or ProtoTCP (IANA
// protocol numbers, as attrib.Key has them).
const (
	ProtoUDP = 17
	ProtoTCP = 6
)

// Entry is one query, fixed size.
type Entry struct {
	Time          int64 // Unix nanoseconds
	Client        Addr
	Resolver      Addr // the address the client asked
	Upstream      Addr // the upstream that answered, for forwarded queries
	LatencyMicros uint32
	QType         uint16
	Rcode         uint8
	Decision      Decision
	Proto         uint8 // ProtoUDP or ProtoTCP
	NameLen       uint8
	Name          [255]byte // wire-format-free text, without the final dot
	// Owner is the process that sent the query, if attribution knew it
	// when the query was logged (else it is looked up when read).
	Owner *attrib.Owner
}

// Q is what the engine logs of one query.
type Q struct {
	Time             int64 // Unix nanoseconds
	Client, Resolver netip.AddrPort
	Upstream         netip.AddrPort
	LatencyMicros    uint32
	QType            uint16
	Rcode            uint8
	Decision         Decision
	Proto            uint8
	Name             []byte
	Owner            *attrib.Owner
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
	// owners looks up the process of an entry logged before attribution
	// knew it; nil: none.
	owners atomic.Pointer[OwnerLookup]
}

// OwnerLookup finds the process that owns a client's socket (attrib.Table's
// Lookup); it must not block.
type OwnerLookup func(k attrib.Key) *attrib.Owner

// SetOwnerLookup sets how entries logged without their process find it
// when read (nil: they are shown without one).
func (r *Ring) SetOwnerLookup(f OwnerLookup) {
	if f == nil {
		r.owners.Store(nil)
		return
	}
	r.owners.Store(&f)
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

// Record adds an entry built from q, written straight into the ring under
// the lock: only len(q.Name) bytes of the name are copied. It does not
// allocate.
func (r *Ring) Record(q *Q) {
	r.mu.Lock()
	e := &r.buf[r.next%uint64(len(r.buf))]
	e.Time = q.Time
	e.Client = AddrFrom(q.Client)
	e.Resolver = AddrFrom(q.Resolver)
	e.Upstream = AddrFrom(q.Upstream)
	e.LatencyMicros = q.LatencyMicros
	e.QType, e.Rcode, e.Decision, e.Proto = q.QType, q.Rcode, q.Decision, q.Proto
	e.NameLen = uint8(copy(e.Name[:], q.Name))
	e.Owner = q.Owner
	r.next++
	r.mu.Unlock()
}

// Added is how many entries were ever added: the sequence number of the
// newest (0: none yet).
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
	start := r.next - min(uint64(n), have)
	r.mu.Unlock()
	out, _, _ := r.Since(start, n)
	return out
}

// Since returns up to n entries logged after the entry with sequence
// number after (0: from the oldest kept), oldest first; last is the
// sequence number of the newest entry returned (after, when none), and
// lost how many entries after it were overwritten before this read (a
// follower that reads too slowly).
func (r *Ring) Since(after uint64, n int) (out []Record, last, lost uint64) {
	if n <= 0 {
		return nil, after, 0
	}
	r.mu.Lock()
	if after > r.next {
		after = r.next // a number from an earlier process, or a guess
	}
	last = after
	// Entry number i (from 0) has sequence number i+1.
	oldest := r.next - min(r.next, uint64(len(r.buf)))
	first := after
	if first < oldest {
		lost = oldest - first
		first = oldest
	}
	count := min(uint64(n), r.next-first)
	raw := make([]Entry, count)
	for i := range raw {
		raw[i] = r.buf[(first+uint64(i))%uint64(len(r.buf))]
	}
	r.mu.Unlock()
	lookup := r.owners.Load()
	out = make([]Record, count)
	for i := range raw {
		e := &raw[i]
		if e.Owner == nil && lookup != nil && e.Client.Set {
			e.Owner = (*lookup)(attrib.Key{Proto: e.Proto, Local: e.Client.AddrPort(), Remote: e.Resolver.AddrPort()})
		}
		out[i] = e.Export()
		out[i].Seq = first + uint64(i) + 1
	}
	if count > 0 {
		last = first + count
	}
	return out, last, lost
}

// Export converts e for the control protocol (Seq is the ring's to set).
func (e *Entry) Export() Record {
	q := Record{
		Time:          time.Unix(0, e.Time).UTC(),
		Name:          string(e.Name[:e.NameLen]),
		Type:          TypeString(e.QType),
		Proto:         "udp",
		Decision:      e.Decision.String(),
		Rcode:         RcodeString(e.Rcode),
		LatencyMicros: e.LatencyMicros,
	}
	if e.Proto == ProtoTCP {
		q.Proto = "tcp"
	}
	if e.Client.Set {
		q.Client = e.Client.AddrPort().String()
	}
	if e.Upstream.Set {
		q.Upstream = e.Upstream.AddrPort().String()
	}
	if o := e.Owner; o != nil {
		uid := o.UID
		q.PID, q.UID, q.Process, q.Exe, q.SigningID = o.PID, &uid, o.Name, o.Exe, o.SigningID
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

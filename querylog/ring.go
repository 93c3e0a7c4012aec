// SPDX-License-Identifier: MIT

package querylog

import (
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

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

// Entry is one query, fixed size. The fields a writer always sets come
// first, so that with the slot's lock and number they fill one cache line
// and a short name the next: a writer touches two lines of its slot.
type Entry struct {
	Time int64 // Unix nanoseconds
	// Owner is the process that sent the query, if attribution knew it
	// when the query was logged (else it is looked up when read).
	Owner         *attrib.Owner
	LatencyMicros uint32
	QType         uint16
	Rcode         uint8
	Decision      Decision
	Proto         uint8 // ProtoUDP or ProtoTCP
	NameLen       uint8
	Client        Addr
	Resolver      Addr      // the address the client asked
	Upstream      Addr      // the upstream that answered, for forwarded queries
	Name          [255]byte // wire-format-free text, without the final dot
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
//
// A writer takes the next sequence number with one atomic add and writes
// its entry into that number's slot under the slot's own lock, so writers
// on different cores (the TUN readers of a multi-queue TUN, the upstream
// receiver) do not queue behind one lock while they copy an entry. A
// reader locks one slot at a time.
type Ring struct {
	next  atomic.Uint64 // the newest sequence number handed out (0: none yet)
	slots []slot
	// owners looks up the process of an entry logged before attribution
	// knew it; nil: none.
	owners atomic.Pointer[OwnerLookup]
}

// slot holds entry number seq (1, 2, ...; 0: never written). Slots are
// padded to whole cache lines, so that writers of consecutive numbers on
// two cores do not share one.
type slot struct {
	slotBody
	_ [64 - unsafe.Sizeof(slotBody{})%64]byte
}

type slotBody struct {
	mu  sync.Mutex
	seq uint64
	e   Entry
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
	return &Ring{slots: make([]slot, max(size, 1))}
}

// Len is the ring's capacity.
func (r *Ring) Len() int { return len(r.slots) }

// Add records e, overwriting the oldest entry when the ring is full. It
// does not allocate.
func (r *Ring) Add(e *Entry) {
	seq := r.next.Add(1)
	sl := r.slot(seq)
	sl.mu.Lock()
	if sl.seq < seq {
		sl.e, sl.seq = *e, seq
	}
	sl.mu.Unlock()
}

// Record adds an entry built from q, written straight into its slot: only
// len(q.Name) bytes of the name are copied. It does not allocate.
func (r *Ring) Record(q *Q) { r.record(r.next.Add(1), q) }

// record writes entry number seq, taken from r.next, into its slot. A
// writer a whole ring behind (descheduled between taking its number and
// locking the slot) finds a newer entry there and leaves it.
func (r *Ring) record(seq uint64, q *Q) {
	// The first two lines of the slot prefetchAhead entries on are
	// fetched while this one is written (see prefetchWrite).
	next := unsafe.Pointer(r.slot(seq + prefetchAhead))
	prefetchWrite(next)
	prefetchWrite(unsafe.Add(next, 64))
	sl := r.slot(seq)
	sl.mu.Lock()
	if sl.seq < seq {
		e := &sl.e
		e.Time = q.Time
		e.Client = AddrFrom(q.Client)
		e.Resolver = AddrFrom(q.Resolver)
		e.Upstream = AddrFrom(q.Upstream)
		e.LatencyMicros = q.LatencyMicros
		e.QType, e.Rcode, e.Decision, e.Proto = q.QType, q.Rcode, q.Decision, q.Proto
		e.NameLen = uint8(copy(e.Name[:], q.Name))
		e.Owner = q.Owner
		sl.seq = seq
	}
	sl.mu.Unlock()
}

// prefetchAhead is how many entries ahead a writer prefetches a slot: far
// enough that a writer on another core is not writing it at that moment
// (the neighbouring number is often taken by the other core's writer, and
// fetching it would take its line away mid-write), near enough that the
// line is still in this core's cache when its turn comes.
const prefetchAhead = 8

// slot is where entry number seq goes.
func (r *Ring) slot(seq uint64) *slot { return &r.slots[(seq-1)%uint64(len(r.slots))] }

// Added is how many entries were ever added: the sequence number of the
// newest (0: none yet). An entry whose writer is still copying it counts.
func (r *Ring) Added() uint64 {
	return r.next.Load()
}

// Snapshot returns up to n of the most recent entries, oldest first.
func (r *Ring) Snapshot(n int) []Record {
	if n <= 0 {
		return nil
	}
	next := r.next.Load()
	have := min(next, uint64(len(r.slots)))
	out, _, _ := r.Since(next-min(uint64(n), have), n)
	return out
}

// Since returns up to n entries logged after the entry with sequence
// number after (0: from the oldest kept), oldest first; last is the
// sequence number of the newest entry returned or lost (after, when
// none), and lost how many entries after after were overwritten before
// this read got to them (a follower that reads too slowly). It stops
// before an entry whose writer has its number but has not written it
// yet: the next call returns it.
func (r *Ring) Since(after uint64, n int) (out []Record, last, lost uint64) {
	if n <= 0 {
		return nil, after, 0
	}
	next := r.next.Load()
	if after > next {
		after = next // a number from an earlier process, or a guess
	}
	size := uint64(len(r.slots))
	// Entries up to next-size are overwritten already (or being).
	first := max(after, next-min(next, size))
	lost = first - after
	last = first
	count := min(uint64(n), next-first)
	raw := make([]Entry, 0, count)
	seqs := make([]uint64, 0, count)
	for seq := first + 1; seq <= first+count; seq++ {
		sl := r.slot(seq)
		sl.mu.Lock()
		got := sl.seq
		if got == seq {
			raw = append(raw, sl.e)
		}
		sl.mu.Unlock()
		if got < seq {
			break // taken, not written yet
		}
		if got > seq {
			lost++ // overwritten while this read went on
		} else {
			seqs = append(seqs, seq)
		}
		last = seq
	}
	lookup := r.owners.Load()
	out = make([]Record, len(raw))
	for i := range raw {
		e := &raw[i]
		if e.Owner == nil && lookup != nil && e.Client.Set {
			e.Owner = (*lookup)(attrib.Key{Proto: e.Proto, Local: e.Client.AddrPort(), Remote: e.Resolver.AddrPort()})
		}
		out[i] = e.Export()
		out[i].Seq = seqs[i]
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

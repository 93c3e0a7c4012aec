// Package loadgen is a DNS load generator over UDP and TCP: it sends a
// query mix to one resolver address and measures throughput, loss and
// latency. It is the engine of `dnstun bench` and of the bench/ end-to-end
// comparisons (dnstun's virtual resolver, dnsmasq, unbound, the upstream
// itself).
//
// # Modes
//
// ClosedLoop keeps exactly Config.Concurrency queries outstanding, spread
// over Config.Sockets connected UDP sockets (each its own source port). A
// query is replaced as soon as it is answered or declared lost. It
// measures capacity: QPS is what the target sustains at that concurrency,
// and latency is measured from the actual send time.
//
// OpenLoop sends at Config.Rate on a fixed schedule: query g is due at
// start + g/Rate, round-robin over the sockets, whatever the target does.
// A single pacer sleeps until the next due time (a runtime timer for the
// coarse part, then nanosleep(2) on a dedicated thread with 1 µs timer
// slack, because Go's runtime timers round sub-millisecond sleeps up to
// ~1 ms); when it is behind it sends immediately and keeps the schedule.
//
// # TCP
//
// With Config.Transport TCP (closed loop only) every message is preceded by
// its two-byte length (RFC 1035 §4.2.2). Concurrency queries in flight are
// spread over ceil(Concurrency/Pipeline) lanes; each lane is one goroutine
// that owns one connection at a time: it connects (DialContext, bounded by
// Timeout), writes up to Pipeline queries in one write, reads answers (any
// order, matched by ID and question like UDP answers) and refills the
// window, until the connection has carried QueriesPerConn queries; then it
// closes it and connects again. QueriesPerConn 1 is connect, query,
// answer, close. The queries written right after a connect are timed from
// the start of the connect, so their latency includes the handshake (what
// a client that opens a connection per query waits); Result.Connect is the
// handshake alone.
//
// The IDs of one connection are consecutive and distinct (QueriesPerConn
// is at most 65535). A query unanswered Timeout after its send is Lost and
// its connection kept (an answer arriving later on it is Late); a connection the
// server closes or resets makes its unanswered queries Lost at once and
// counts in Result.Closed (they are not retried); a failed connect counts
// in Result.ConnFailed and Errors, and the lane backs off (1 ms doubling
// to 100 ms) before the next. When sending stops each lane waits for its
// queries in flight, at most Timeout; a cancelled run interrupts every
// connection at once (deadlines in the past) and reports InFlight as UDP
// does. Per query, a lane does one write and (mostly) one read into fixed
// buffers; allocation is per connection (the dial), not per query.
//
// # Coordinated omission
//
// A closed-loop client slows down together with a slow target, so queries
// that "should" have been sent during a stall are never sent and the stall
// barely shows in the percentiles (coordinated omission). In open loop the
// latency of every query is measured from its scheduled send time, not
// from when the client got round to sending it, so a stall of the target
// (or of the client) shows up in full in the latency of every query
// scheduled during it. Result.SendLag reports how late the pacer actually
// sent; if it is large the client, not the target, is the bottleneck and
// the run should use more sockets or a lower rate.
//
// # Matching and loss
//
// Each socket has a table of 65536 slots indexed by query ID holding the
// send (or scheduled) time and the name index. IDs are issued
// sequentially, skipping slots still in flight. A datagram counts as an
// answer when QR=1, QDCOUNT=1, its ID is in flight and its question equals
// the query's (name ASCII case-insensitively, so 0x20 randomisation is
// fine; type and class exactly). Anything else is counted as Mismatched
// and the query stays in flight. A query unanswered after Config.Timeout
// is Lost (checked by a sweep at most every Timeout/16); a correct answer
// arriving after that counts as Late, not Answered.
//
// At the end of a run that stopped by itself (Duration or MaxQueries),
// Run waits until every query is answered or past its deadline (at most
// Timeout after the last send), so Sent == Answered + Lost. When the
// context is cancelled Run returns at once: queries still within their
// Timeout are reported as InFlight and Sent == Answered + Lost + InFlight.
// Result.Elapsed runs from the start to the later of the end of sending
// and the last answer; QPS = Answered / Elapsed.
//
// # Percentiles
//
// Latencies go into a log-linear histogram (HDR style) in nanoseconds: one
// bucket per nanosecond below 256 ns, then each power of two split into
// 128 equal buckets, up to 2^40 ns (~18 min; larger values are clamped).
// Percentiles report the bucket midpoint clamped to the exact min and
// max, so a reported percentile is within 0.4% of the exact sample
// percentile; Min, Max and Mean are exact. Recording is a few
// instructions and never allocates.
//
// # Cost
//
// The steady state does not allocate: query packets are built once per
// name (by hand, no DNS library) and copied into a per-socket buffer with
// the ID patched in; histograms and counters are per goroutine and merged
// at the end. Each socket has one receiver goroutine; closed loop has one
// sender per socket, open loop a single pacer.
package loadgen

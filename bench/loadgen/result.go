package loadgen

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Result holds the measurements of one run.
//
// Accounting: every sent query ends as exactly one of Answered, Lost or
// InFlight, so Sent == Answered + Lost + InFlight. After a run that
// stopped by itself (Duration or MaxQueries) InFlight is 0: Run waits up
// to Timeout for the last answers and counts the rest as Lost. InFlight is
// non-zero only when ctx was cancelled: then Run does not wait, and
// queries still within their Timeout are reported as InFlight.
type Result struct {
	// Sent counts queries written to a socket successfully.
	Sent int64
	// Answered counts responses with QR=1, the ID of an in-flight query
	// and the same question (name case-insensitive), within Timeout.
	Answered int64
	// Lost counts queries not answered within Timeout.
	Lost int64
	// InFlight counts queries still waiting when a cancelled run stopped.
	InFlight int64
	// Errors counts socket errors (failed writes, read errors such as
	// ECONNREFUSED). A failed write is not counted in Sent.
	Errors int64
	// Mismatched counts datagrams that do not answer an in-flight query:
	// malformed, QR=0, QDCOUNT != 1, unknown ID or a different question.
	// They are not counted as answers; the query they claimed to answer
	// stays in flight.
	Mismatched int64
	// Late counts correct answers that arrived after their query had
	// already been counted Lost (Timeout too short for the target).
	Late int64
	// Rcodes counts Answered by response code (header RCODE, 4 bits).
	Rcodes map[int]int64
	// Elapsed is from the start of the run to the later of the end of the
	// sending phase and the last answer.
	Elapsed time.Duration
	// QPS is Answered / Elapsed.
	QPS float64
	// Latency of answered queries: closed loop from the actual send
	// time, open loop from the scheduled send time.
	Latency Percentiles
	// SendLag (open loop only) is how late the client sent relative to
	// the schedule; a large SendLag means the client is the bottleneck.
	SendLag Percentiles
	// Histogram is the full latency histogram.
	Histogram *Histogram

	// TCP only.

	// Conns counts connections established; ConnFailed connection
	// attempts that failed (refused, timed out after Timeout), also
	// counted in Errors. The query a failed connection was opened for is
	// not sent.
	Conns, ConnFailed int64
	// Closed counts connections the server closed or reset while queries
	// were in flight on them, or before QueriesPerConn queries had been
	// sent; their unanswered queries count as Lost at once (they are not
	// retried on a new connection).
	Closed int64
	// Connect is the time to establish a connection (the TCP handshake).
	Connect Percentiles

	// FirstError is the first error met (dial, write or read), for
	// reports; "" when there was none.
	FirstError string
}

var rcodeNames = map[int]string{
	0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP",
	5: "REFUSED", 6: "YXDOMAIN", 7: "YXRRSET", 8: "NXRRSET", 9: "NOTAUTH", 10: "NOTZONE",
}

// String returns a compact multi-line summary.
func (r *Result) String() string {
	var b strings.Builder
	pct := func(n int64) float64 {
		if r.Sent == 0 {
			return 0
		}
		return 100 * float64(n) / float64(r.Sent)
	}
	fmt.Fprintf(&b, "sent %d  answered %d (%.2f%%)  lost %d (%.2f%%)",
		r.Sent, r.Answered, pct(r.Answered), r.Lost, pct(r.Lost))
	if r.InFlight > 0 {
		fmt.Fprintf(&b, "  in-flight %d", r.InFlight)
	}
	fmt.Fprintf(&b, "  mismatched %d  late %d  errors %d\n", r.Mismatched, r.Late, r.Errors)
	fmt.Fprintf(&b, "elapsed %v  qps %.1f\n", r.Elapsed.Round(time.Millisecond), r.QPS)
	fmt.Fprintf(&b, "latency %v\n", r.Latency)
	if r.Conns > 0 || r.ConnFailed > 0 {
		fmt.Fprintf(&b, "tcp: connections %d  failed %d  closed by the server %d\n", r.Conns, r.ConnFailed, r.Closed)
		fmt.Fprintf(&b, "connect %v\n", r.Connect)
	}
	if r.FirstError != "" {
		fmt.Fprintf(&b, "first error: %s\n", r.FirstError)
	}
	if r.SendLag.Count > 0 {
		fmt.Fprintf(&b, "send lag %v\n", r.SendLag)
	}
	codes := make([]int, 0, len(r.Rcodes))
	for c := range r.Rcodes {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	b.WriteString("rcodes")
	for _, c := range codes {
		name, ok := rcodeNames[c]
		if !ok {
			name = fmt.Sprintf("RCODE%d", c)
		}
		fmt.Fprintf(&b, " %s %d", name, r.Rcodes[c])
	}
	return b.String()
}

package loadgen

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"time"
)

// Mode selects how queries are issued.
type Mode int

const (
	// ClosedLoop keeps exactly Concurrency queries outstanding: a new
	// query is sent as soon as one is answered or lost. It measures the
	// capacity of the target (and of the path to it).
	ClosedLoop Mode = iota
	// OpenLoop sends at a fixed Rate on a precomputed schedule whatever
	// the target does, and measures latency from the scheduled send time.
	OpenLoop
)

func (m Mode) String() string {
	switch m {
	case ClosedLoop:
		return "closed-loop"
	case OpenLoop:
		return "open-loop"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Transport says how queries travel to the target.
type Transport int

const (
	// UDP sends each query in one datagram (the default).
	UDP Transport = iota
	// TCP sends queries over TCP connections, each message preceded by
	// its two-byte length (RFC 1035 §4.2.2, RFC 7766 §8); closed loop
	// only.
	TCP
)

func (t Transport) String() string {
	switch t {
	case UDP:
		return "udp"
	case TCP:
		return "tcp"
	}
	return fmt.Sprintf("Transport(%d)", int(t))
}

// Limits and defaults.
const (
	MaxDuration = 10 * time.Minute // Duration is capped to this
	// MaxQueriesPerConn bounds Config.QueriesPerConn: the queries of one
	// connection have distinct IDs.
	MaxQueriesPerConn = idSpace - 1
	// MaxPipeline bounds Config.Pipeline.
	MaxPipeline        = 256
	DefaultConcurrency = 16
	DefaultTimeout     = 2 * time.Second
	maxSocketsDefault  = 8
	openSocketsDefault = 4
	idSpace            = 1 << 16
	// idBudget is the number of outstanding queries (answered or not
	// yet lost) an open-loop socket may be expected to hold; the rest of
	// the 16-bit ID space is headroom for sweep granularity.
	idBudget = 40000
)

// Config describes one load run.
type Config struct {
	// Target is the resolver address queries are sent to.
	Target netip.AddrPort
	// Names is the query mix, cycled in order (or in a shuffled order
	// when Seed != 0).
	Names []Query
	// Seed, when non-zero, shuffles the order of Names once with this
	// seed before cycling.
	Seed uint64
	// Mode is ClosedLoop (default) or OpenLoop.
	Mode Mode
	// Concurrency is the number of queries in flight in closed loop
	// (default 16).
	Concurrency int
	// Rate is the open-loop send rate in queries per second.
	Rate float64
	// Duration bounds the sending phase (required, > 0, capped at
	// MaxDuration).
	Duration time.Duration
	// MaxQueries stops sending after this many queries (0 = no limit).
	MaxQueries int
	// Timeout is how long a query may stay unanswered before it counts
	// as lost (default 2 s).
	Timeout time.Duration
	// Sockets is the number of UDP sockets (source ports) to spread the
	// queries over. Default: min(Concurrency, 8) in closed loop; 4 in
	// open loop, raised when Rate*Timeout would exhaust the per-socket
	// 16-bit ID space.
	Sockets int
	// Dial opens the sockets; nil means net.Dial. It is called with
	// ("udp", Target.String()) and must return a connected datagram
	// conn supporting read deadlines; with Transport TCP, with ("tcp",
	// Target.String()), and a dial still running after Timeout is
	// abandoned (its connection closed when it arrives): prefer
	// DialContext there.
	Dial func(network, address string) (net.Conn, error)

	// Transport is UDP (default) or TCP.
	Transport Transport
	// QueriesPerConn (TCP) is how many queries one connection carries
	// before the client closes it and opens the next: 1 (the default)
	// is connect, query, answer, close. At most MaxQueriesPerConn.
	QueriesPerConn int
	// Pipeline (TCP) is how many queries one connection keeps in
	// flight: queries are written without waiting for the answers to
	// the earlier ones, and answers are matched by ID in any order.
	// Default 1 (query, answer, next query); at most MaxPipeline and
	// QueriesPerConn. Concurrency queries in flight are spread over
	// ceil(Concurrency/Pipeline) connections open at a time.
	Pipeline int
	// DialContext, when set, opens the connections (TCP) and sockets
	// (UDP, when Dial is nil). A TCP dial gets a context that ends after
	// Timeout or when the run is cancelled. Nil: net.Dialer's.
	DialContext func(ctx context.Context, network, address string) (net.Conn, error)
}

// normalize validates c and fills in defaults.
func (c Config) normalize() (Config, error) {
	if !c.Target.IsValid() {
		return c, errors.New("loadgen: invalid target address")
	}
	if len(c.Names) == 0 {
		return c, errors.New("loadgen: no query names")
	}
	if c.Duration <= 0 {
		return c, errors.New("loadgen: Duration must be > 0")
	}
	c.Duration = min(c.Duration, MaxDuration)
	if c.MaxQueries < 0 {
		return c, errors.New("loadgen: MaxQueries must be >= 0")
	}
	if c.Timeout < 0 {
		return c, errors.New("loadgen: Timeout must be >= 0")
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Sockets < 0 {
		return c, errors.New("loadgen: Sockets must be >= 0")
	}
	switch c.Transport {
	case UDP:
		if c.QueriesPerConn != 0 || c.Pipeline != 0 {
			return c, errors.New("loadgen: QueriesPerConn and Pipeline are for TCP")
		}
	case TCP:
		return c.normalizeTCP()
	default:
		return c, fmt.Errorf("loadgen: unknown transport %v", c.Transport)
	}
	switch c.Mode {
	case ClosedLoop:
		if c.Concurrency < 0 {
			return c, errors.New("loadgen: Concurrency must be >= 0")
		}
		if c.Concurrency == 0 {
			c.Concurrency = DefaultConcurrency
		}
		if c.Sockets == 0 {
			c.Sockets = min(c.Concurrency, maxSocketsDefault)
		}
		c.Sockets = min(c.Sockets, c.Concurrency) // an idle socket is useless
		if (c.Concurrency+c.Sockets-1)/c.Sockets >= idSpace {
			return c, fmt.Errorf("loadgen: Concurrency %d needs more than %d sockets (%d queries per socket max)",
				c.Concurrency, c.Sockets, idSpace-1)
		}
	case OpenLoop:
		if !(c.Rate > 0) || math.IsInf(c.Rate, 0) {
			return c, errors.New("loadgen: open loop needs Rate > 0")
		}
		// Outstanding per socket ~ Rate/Sockets * Timeout.
		need := int(math.Ceil(c.Rate * c.Timeout.Seconds() / idBudget))
		if c.Sockets == 0 {
			c.Sockets = max(openSocketsDefault, need)
		} else if c.Sockets < need {
			return c, fmt.Errorf("loadgen: Rate %.0f with Timeout %v needs at least %d sockets for query IDs",
				c.Rate, c.Timeout, need)
		}
	default:
		return c, fmt.Errorf("loadgen: unknown mode %v", c.Mode)
	}
	if c.Dial == nil {
		c.Dial = net.Dial
		if dc := c.DialContext; dc != nil {
			c.Dial = func(network, address string) (net.Conn, error) {
				return dc(context.Background(), network, address)
			}
		}
	}
	return c, nil
}

// normalizeTCP is normalize's TCP half (Target, Names, Duration,
// MaxQueries, Timeout and Sockets checked).
func (c Config) normalizeTCP() (Config, error) {
	if c.Mode != ClosedLoop {
		return c, fmt.Errorf("loadgen: TCP supports the closed loop only, not %v", c.Mode)
	}
	if c.Sockets != 0 {
		return c, errors.New("loadgen: Sockets is for UDP; TCP opens ceil(Concurrency/Pipeline) connections")
	}
	if c.Concurrency < 0 {
		return c, errors.New("loadgen: Concurrency must be >= 0")
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.QueriesPerConn < 0 || c.QueriesPerConn > MaxQueriesPerConn {
		return c, fmt.Errorf("loadgen: QueriesPerConn must be 0..%d", MaxQueriesPerConn)
	}
	if c.QueriesPerConn == 0 {
		c.QueriesPerConn = 1
	}
	if c.Pipeline < 0 || c.Pipeline > MaxPipeline {
		return c, fmt.Errorf("loadgen: Pipeline must be 0..%d", MaxPipeline)
	}
	c.Pipeline = min(max(c.Pipeline, 1), c.QueriesPerConn, c.Concurrency)
	if c.DialContext == nil {
		if c.Dial == nil {
			c.DialContext = (&net.Dialer{}).DialContext
		} else {
			c.DialContext = abandonAfterCtx(c.Dial)
		}
	}
	return c, nil
}

// abandonAfterCtx turns a dial function without a context into one that
// returns when ctx ends; the abandoned dial's connection is closed when it
// arrives.
func abandonAfterCtx(dial func(network, address string) (net.Conn, error)) func(context.Context, string, string) (net.Conn, error) {
	return func(ctx context.Context, network, address string) (net.Conn, error) {
		type result struct {
			c   net.Conn
			err error
		}
		ch := make(chan result, 1)
		go func() {
			c, err := dial(network, address)
			ch <- result{c, err}
		}()
		select {
		case x := <-ch:
			return x.c, x.err
		case <-ctx.Done():
			go func() {
				if x := <-ch; x.c != nil {
					x.c.Close()
				}
			}()
			return nil, fmt.Errorf("dial %s %s: %w", network, address, ctx.Err())
		}
	}
}

package loadgen

import (
	"bytes"
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

var testNames = []Query{
	{"example.com", 1}, {"www.example.org", 28}, {"Mixed.Case.Example.NET", 16},
	{"mail.example.com.", 15}, {"a.b.c.d.e.f.example", 1},
}

func TestReadNames(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []Query
		wantErr string
	}{
		{"dnsperf", "www.example.com A\nexample.net AAAA\nexample.org MX\n",
			[]Query{{"www.example.com", 1}, {"example.net", 28}, {"example.org", 15}}, ""},
		{"default A and lowercase type", "example.com\nexample.com txt\n",
			[]Query{{"example.com", 1}, {"example.com", 16}}, ""},
		{"comments and blanks", "# header\n\n  ; dnsperf comment\nexample.com A # trailing\n\t\nx.y TYPE65\n",
			[]Query{{"example.com", 1}, {"x.y", 65}}, ""},
		{"crlf and tabs", "example.com\tHTTPS\r\nfoo.bar.\tSRV\r\n",
			[]Query{{"example.com", 65}, {"foo.bar.", 33}}, ""},
		{"bad type names line", "example.com A\nexample.com BOGUS\n", nil, "line 2: unknown record type \"BOGUS\""},
		{"too many fields", "a.example A extra\n", nil, "line 1:"},
		{"empty label", "ok.example\n\nbad..example A\n", nil, "line 3: name \"bad..example\": empty label"},
		{"long label", strings.Repeat("x", 64) + ".example\n", nil, "line 1:"},
		{"empty", "# nothing\n", nil, "no queries"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadNames(strings.NewReader(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestParseType(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint16
		ok   bool
	}{
		{"A", 1, true}, {"aaaa", 28, true}, {"TYPE65", 65, true}, {"99", 99, true},
		{"CAA", 257, true}, {"TYPE", 0, false}, {"TYPE70000", 0, false}, {"", 0, false},
	} {
		got, err := ParseType(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseType(%q) = %d, %v", tc.in, got, err)
		}
	}
	if s := TypeString(28); s != "AAAA" {
		t.Errorf("TypeString(28) = %q", s)
	}
}

func TestTemplates(t *testing.T) {
	tm, err := buildTemplates([]Query{{"www.Example.com.", 28}, {".", 2}})
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0,
		3, 'w', 'w', 'w', 7, 'E', 'x', 'a', 'm', 'p', 'l', 'e', 3, 'c', 'o', 'm', 0, 0, 28, 0, 1}
	if !bytes.Equal(tm.packet(0), want) {
		t.Fatalf("packet 0 = %v", tm.packet(0))
	}
	if !bytes.Equal(tm.packet(1)[hdrLen:], []byte{0, 0, 2, 0, 1}) {
		t.Fatalf("root packet = %v", tm.packet(1))
	}
	q := tm.question(0)
	upper := bytes.ToUpper(q)
	if !sameQuestion(upper, q) {
		t.Error("case-folded question should match")
	}
	other := slices.Clone(q)
	other[len(other)-3] = 1 // type A instead of AAAA
	if sameQuestion(other, q) {
		t.Error("different type matched")
	}
	if sameQuestion(q[:len(q)-1], q) {
		t.Error("short question matched")
	}
}

func TestHistogramPercentiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	dists := []struct {
		name string
		gen  func() time.Duration
	}{
		{"uniform 1us-10ms", func() time.Duration { return time.Microsecond + time.Duration(rng.Int64N(int64(10*time.Millisecond))) }},
		{"exponential mean 200us", func() time.Duration { return time.Duration(rng.ExpFloat64() * 200e3) }},
		{"lognormal", func() time.Duration { return time.Duration(math.Exp(rng.NormFloat64()*1.5+11)) + time.Microsecond }},
		{"bimodal 50us/2s", func() time.Duration {
			if rng.IntN(100) < 95 {
				return 50*time.Microsecond + time.Duration(rng.IntN(5000))
			}
			return 2*time.Second + time.Duration(rng.IntN(1e6))
		}},
	}
	for _, d := range dists {
		t.Run(d.name, func(t *testing.T) {
			var h Histogram
			vals := make([]time.Duration, 200000)
			var sum float64
			for i := range vals {
				vals[i] = d.gen()
				h.Record(vals[i])
				sum += float64(vals[i])
			}
			slices.Sort(vals)
			for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
				rank := int(math.Ceil(q * float64(len(vals))))
				exact := vals[rank-1]
				got := h.Quantile(q)
				if rel := math.Abs(float64(got-exact)) / float64(exact); rel > 0.01 {
					t.Errorf("q%.3f = %v, exact %v (%.2f%% off)", q, got, exact, 100*rel)
				}
			}
			p := h.Percentiles()
			if p.Max != vals[len(vals)-1] || p.Min != vals[0] {
				t.Errorf("min/max = %v/%v, want %v/%v", p.Min, p.Max, vals[0], vals[len(vals)-1])
			}
			if mean := sum / float64(len(vals)); math.Abs(float64(p.Mean)-mean) > 1 {
				t.Errorf("mean %v, want %v", p.Mean, time.Duration(mean))
			}
		})
	}
}

func TestHistogramBuckets(t *testing.T) {
	// Every value maps to a bucket whose midpoint is within 0.4%, and
	// bucket indices are monotonic.
	prev := -1
	for v := uint64(0); v < 1<<40; v = v + 1 + v/300 {
		i := bucketOf(v)
		if i < prev || i >= nBuckets {
			t.Fatalf("bucketOf(%d) = %d after %d", v, i, prev)
		}
		prev = i
		if v > 0 {
			if rel := math.Abs(float64(bucketMid(i))-float64(v)) / float64(v); rel > 0.004 {
				t.Fatalf("value %d reported as %d (%.3f%%)", v, bucketMid(i), 100*rel)
			}
		}
	}
	var h Histogram
	h.Record(-5)
	h.Record(time.Hour)
	if h.Quantile(0) != 0 || h.Quantile(1) != maxRecord {
		t.Errorf("clamping: %v %v", h.Quantile(0), h.Quantile(1))
	}
}

func TestHistogramRecordAllocs(t *testing.T) {
	var h Histogram
	d := time.Duration(0)
	if a := testing.AllocsPerRun(1000, func() { d += 777; h.Record(d) }); a != 0 {
		t.Fatalf("Record allocates %v per call", a)
	}
}

func cfgFor(r *responder) Config {
	return Config{Target: r.addr, Names: testNames, Duration: 5 * time.Second, Timeout: 500 * time.Millisecond}
}

func checkAccounting(t *testing.T, res *Result) {
	t.Helper()
	t.Logf("\n%v", res)
	if res.Sent != res.Answered+res.Lost+res.InFlight {
		t.Errorf("Sent %d != Answered %d + Lost %d + InFlight %d", res.Sent, res.Answered, res.Lost, res.InFlight)
	}
	var rc int64
	for _, n := range res.Rcodes {
		rc += n
	}
	if rc != res.Answered {
		t.Errorf("rcode total %d != Answered %d", rc, res.Answered)
	}
	if uint64(res.Answered) != res.Latency.Count {
		t.Errorf("latency count %d != Answered %d", res.Latency.Count, res.Answered)
	}
}

func TestClosedLoop(t *testing.T) {
	srv := startResponder(t, 0, 0, nil)
	cfg := cfgFor(srv)
	cfg.Duration = time.Second
	start := time.Now()
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkAccounting(t, res)
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("run took %v", took)
	}
	if res.Sent == 0 || res.QPS <= 0 || res.Lost != 0 || res.InFlight != 0 || res.Mismatched != 0 || res.Errors != 0 {
		t.Errorf("unexpected result %+v", res)
	}
	if res.Elapsed < time.Second || res.Elapsed > 1500*time.Millisecond {
		t.Errorf("elapsed %v", res.Elapsed)
	}
	if res.Rcodes[0] != res.Answered {
		t.Errorf("rcodes %v", res.Rcodes)
	}
	if got := srv.received.Load(); got != res.Sent {
		t.Errorf("responder got %d, Sent %d", got, res.Sent)
	}
}

func TestDropEveryTenth(t *testing.T) {
	srv := startResponder(t, 10, 0, nil)
	cfg := cfgFor(srv)
	cfg.MaxQueries = 2000
	cfg.Concurrency = 100
	cfg.Timeout = 200 * time.Millisecond
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkAccounting(t, res)
	if res.Sent != 2000 || res.InFlight != 0 {
		t.Fatalf("Sent %d InFlight %d", res.Sent, res.InFlight)
	}
	// Exactly 200 are dropped; a slow answer (race detector, busy CI)
	// may add a few Lost, which then show up as Late.
	if res.Lost < 200 || res.Lost > 200+res.Late+10 {
		t.Errorf("Lost %d, want ~200 (dropped %d, late %d)", res.Lost, srv.dropped.Load(), res.Late)
	}
}

func TestOpenLoop(t *testing.T) {
	const delay = 2 * time.Millisecond
	srv := startResponder(t, 0, delay, nil)
	cfg := cfgFor(srv)
	cfg.Mode = OpenLoop
	cfg.Rate = 2000
	cfg.Duration = time.Second
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkAccounting(t, res)
	if res.Sent < 1900 || res.Sent > 2100 {
		t.Errorf("Sent %d, want 2000±5%%", res.Sent)
	}
	if res.Lost != 0 {
		t.Errorf("Lost %d", res.Lost)
	}
	// Never below the server's delay; the upper bound only catches a
	// gross error, as the machines are shared and a busy core adds
	// milliseconds.
	if p := res.Latency.P50; p < delay || p > delay+10*time.Millisecond {
		t.Errorf("P50 %v, want about %v", p, delay)
	}
	if res.QPS < 1800 || res.QPS > 2100 {
		t.Errorf("QPS %.0f", res.QPS)
	}
}

func TestOpenLoopLatencyFromSchedule(t *testing.T) {
	// A target slower than the rate: latency is measured from the
	// schedule, so it grows past the server's own delay instead of
	// being hidden (coordinated omission). One "server" answering 1 in
	// 1 ms serially at 2000 qps builds a queue.
	srv := startResponder(t, 0, 0, nil)
	cfg := cfgFor(srv)
	cfg.Mode = OpenLoop
	cfg.Rate = 1000
	cfg.Duration = 300 * time.Millisecond
	cfg.Sockets = 1
	// Stall the socket's schedule: dial through a conn whose first
	// Write blocks 100 ms. Queries scheduled meanwhile are sent late
	// and their latency includes the stall.
	cfg.Dial = func(network, addr string) (net.Conn, error) {
		c, err := net.Dial(network, addr)
		return &stallConn{Conn: c, stall: 100 * time.Millisecond}, err
	}
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkAccounting(t, res)
	// The schedule is kept through the stall; a query due in the last
	// milliseconds may miss the end on a busy machine.
	if res.Sent < 297 || res.Sent > 300 {
		t.Errorf("Sent %d, want 300 (schedule kept)", res.Sent)
	}
	if res.Latency.Max < 90*time.Millisecond || res.SendLag.Max < 90*time.Millisecond {
		t.Errorf("latency max %v, send lag max %v: stall not accounted", res.Latency.Max, res.SendLag.Max)
	}
}

type stallConn struct {
	net.Conn
	stall  time.Duration
	writes atomic.Int64
}

func (c *stallConn) Write(b []byte) (int, error) {
	if c.writes.Add(1) == 1 {
		time.Sleep(c.stall)
	}
	return c.Conn.Write(b)
}

func TestMismatched(t *testing.T) {
	tests := []struct {
		name     string
		mangle   func([]byte)
		answered bool
	}{
		{"echo", nil, true},
		{"0x20 case change", func(b []byte) { copy(b[hdrLen:], bytes.ToUpper(b[hdrLen:len(b)-4])) }, true},
		{"rcode nxdomain", func(b []byte) { b[3] |= 3 }, true},
		{"QR clear", func(b []byte) { b[2] &^= 0x80 }, false},
		{"wrong ID", func(b []byte) { b[0] ^= 0x80 }, false},
		{"other name", func(b []byte) { b[hdrLen+1] ^= 0x01 }, false},
		{"other type", func(b []byte) { b[len(b)-3] ^= 0x40 }, false},
		{"two questions", func(b []byte) { b[5] = 2 }, false},
		{"truncated", func(b []byte) { b[2] |= 0x80; b[5] = 0 }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := startResponder(t, 0, 0, tc.mangle)
			cfg := cfgFor(srv)
			cfg.MaxQueries = 50
			cfg.Concurrency = 50
			cfg.Timeout = 100 * time.Millisecond
			res, err := Run(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			checkAccounting(t, res)
			if res.Sent != 50 {
				t.Fatalf("Sent %d", res.Sent)
			}
			if tc.answered {
				if res.Answered != 50 || res.Mismatched != 0 {
					t.Errorf("Answered %d Mismatched %d, want 50/0", res.Answered, res.Mismatched)
				}
			} else if res.Answered != 0 || res.Mismatched != 50 || res.Lost != 50 {
				t.Errorf("Answered %d Mismatched %d Lost %d, want 0/50/50", res.Answered, res.Mismatched, res.Lost)
			}
		})
	}
}

func TestAllLostTimeout(t *testing.T) {
	srv := startResponder(t, 1, 0, nil) // drops everything
	cfg := cfgFor(srv)
	cfg.Duration = 300 * time.Millisecond
	cfg.Timeout = 50 * time.Millisecond
	cfg.Concurrency = 4
	start := time.Now()
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkAccounting(t, res)
	// Each slot frees after ~Timeout (+ sweep granularity): about
	// 4 * 300/50 = 24 queries, all lost.
	if res.Answered != 0 || res.Lost != res.Sent || res.Sent < 12 || res.Sent > 40 {
		t.Errorf("Sent %d Lost %d", res.Sent, res.Lost)
	}
	if took := time.Since(start); took > 300*time.Millisecond+200*time.Millisecond {
		t.Errorf("took %v: drain should stop at the last deadline", took)
	}
}

func TestCancel(t *testing.T) {
	srv := startResponder(t, 1, 0, nil) // drops everything
	cfg := cfgFor(srv)
	cfg.Timeout = 10 * time.Second
	cfg.Duration = 10 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	res, err := Run(ctx, cfg)
	if !errors.Is(err, context.DeadlineExceeded) || res == nil {
		t.Fatalf("err %v, res %v", err, res)
	}
	checkAccounting(t, res)
	if took := time.Since(start); took > time.Second {
		t.Errorf("cancel took %v", took)
	}
	if res.InFlight != 16 || res.Sent != 16 || res.Lost != 0 {
		t.Errorf("InFlight %d Sent %d Lost %d, want 16/16/0", res.InFlight, res.Sent, res.Lost)
	}
}

func TestMaxQueriesAndDial(t *testing.T) {
	srv := startResponder(t, 0, 0, nil)
	for _, mode := range []Mode{ClosedLoop, OpenLoop} {
		t.Run(mode.String(), func(t *testing.T) {
			var dials atomic.Int64
			cfg := cfgFor(srv)
			cfg.Mode = mode
			cfg.Rate = 20000
			cfg.MaxQueries = 777
			cfg.Sockets = 3
			cfg.Seed = 42
			cfg.Dial = func(network, addr string) (net.Conn, error) {
				dials.Add(1)
				if network != "udp" || addr != srv.addr.String() {
					t.Errorf("dial %s %s", network, addr)
				}
				return net.Dial(network, addr)
			}
			res, err := Run(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			checkAccounting(t, res)
			if res.Sent != 777 || res.Answered != 777 || dials.Load() != 3 {
				t.Errorf("Sent %d Answered %d dials %d", res.Sent, res.Answered, dials.Load())
			}
		})
	}
}

func TestSocketErrors(t *testing.T) {
	// A closed port on loopback: ICMP port unreachable makes the
	// connected socket report ECONNREFUSED. Counted as Errors, not
	// answers, and the run still ends on time.
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	addr := c.LocalAddr().(*net.UDPAddr).AddrPort()
	c.Close()
	cfg := Config{Target: addr, Names: testNames, Duration: 200 * time.Millisecond, Timeout: 50 * time.Millisecond, Concurrency: 2}
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkAccounting(t, res)
	if res.Answered != 0 || res.Errors == 0 {
		t.Errorf("Answered %d Errors %d", res.Answered, res.Errors)
	}
}

func TestConfigErrors(t *testing.T) {
	ok := Config{Target: netip.MustParseAddrPort("127.0.0.1:53"), Names: testNames, Duration: time.Second}
	tests := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"no target", func(c *Config) { c.Target = netip.AddrPort{} }, "target"},
		{"no names", func(c *Config) { c.Names = nil }, "names"},
		{"no duration", func(c *Config) { c.Duration = 0 }, "Duration"},
		{"open no rate", func(c *Config) { c.Mode = OpenLoop }, "Rate"},
		{"bad mode", func(c *Config) { c.Mode = 7 }, "mode"},
		{"bad name", func(c *Config) { c.Names = []Query{{"a..b", 1}} }, "empty label"},
		{"too few sockets for rate", func(c *Config) { c.Mode = OpenLoop; c.Rate = 1e6; c.Sockets = 2 }, "sockets"},
		{"concurrency per socket", func(c *Config) { c.Concurrency = 200000; c.Sockets = 2 }, "sockets"},
		{"dial error", func(c *Config) {
			c.Dial = func(string, string) (net.Conn, error) { return nil, errors.New("dial refused") }
		}, "dial refused"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.mod(&c)
			_, err := Run(context.Background(), c)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want containing %q", err, tc.want)
			}
		})
	}
	c, err := ok.normalize()
	if err != nil || c.Concurrency != 16 || c.Sockets != 8 || c.Timeout != 2*time.Second {
		t.Errorf("defaults: %+v %v", c, err)
	}
	ok.Duration = time.Hour
	ok.Mode, ok.Rate = OpenLoop, 100000
	c, _ = ok.normalize()
	if c.Duration != MaxDuration || c.Sockets != 5 {
		t.Errorf("open defaults: duration %v sockets %d", c.Duration, c.Sockets)
	}
}

// TestSteadyStateAllocs checks that the per-query path does not allocate:
// a run with 10x the queries allocates (almost) no more than a short one.
func TestSteadyStateAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip()
	}
	srv := startResponder(t, 0, 0, nil)
	cfg := cfgFor(srv)
	cfg.Sockets = 2
	run := func(n int) float64 {
		cfg.MaxQueries = n
		return testing.AllocsPerRun(1, func() {
			if _, err := Run(context.Background(), cfg); err != nil {
				t.Fatal(err)
			}
		})
	}
	run(100) // warm up
	small, large := run(500), run(5000)
	t.Logf("allocs: 500 queries %v, 5000 queries %v", small, large)
	if large-small > 50 {
		t.Errorf("allocations grow with query count: %v -> %v", small, large)
	}
}

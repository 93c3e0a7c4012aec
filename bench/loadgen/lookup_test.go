package loadgen

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// startNameServer is a loopback UDP name server for the lookup tests: a
// name whose first label starts with "blocked" is NXDOMAIN, one starting
// with "drop" gets no answer, any other has the A record 192.0.2.80 and
// the AAAA record 2001:db8::80 (TTL 0, recursion available, as a
// resolver answers).
func startNameServer(tb testing.TB) (netip.AddrPort, *atomic.Int64) {
	tb.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		tb.Fatal(err)
	}
	var queries atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		var buf [512]byte
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf[:])
			if err != nil {
				return
			}
			queries.Add(1)
			if a := nameServerAnswer(buf[:n]); a != nil {
				c.WriteToUDPAddrPort(a, from)
			}
		}
	}()
	tb.Cleanup(func() { c.Close(); <-done })
	return c.LocalAddr().(*net.UDPAddr).AddrPort(), &queries
}

func nameServerAnswer(q []byte) []byte {
	if len(q) < hdrLen+5 {
		return nil
	}
	i := hdrLen
	for i < len(q) && q[i] != 0 {
		i += int(q[i]) + 1
	}
	if i+5 > len(q) {
		return nil
	}
	first := strings.ToLower(string(q[hdrLen+1 : hdrLen+1+int(q[hdrLen])]))
	if strings.HasPrefix(first, "drop") {
		return nil
	}
	qtype := binary.BigEndian.Uint16(q[i+1:])
	out := append([]byte(nil), q[:i+5]...) // header and question; no OPT
	out[2] |= 0x80                         // QR
	out[3] = 0x80                          // RA, NOERROR
	clear(out[6:12])                       // ANCOUNT, NSCOUNT, ARCOUNT
	if strings.HasPrefix(first, "blocked") {
		out[3] |= 3 // NXDOMAIN
		return out
	}
	var rdata []byte
	switch qtype {
	case 1:
		rdata = []byte{192, 0, 2, 80}
	case 28:
		a := netip.MustParseAddr("2001:db8::80").As16()
		rdata = a[:]
	default:
		return out // no data
	}
	out[7] = 1 // ANCOUNT
	out = append(out, 0xc0, hdrLen, byte(qtype>>8), byte(qtype), 0, 1, 0, 0, 0, 0, 0, byte(len(rdata)))
	return append(out, rdata...)
}

// TestLookups resolves found and blocked names through Go's resolver in
// both modes: every lookup is answered, opens two sockets (A and AAAA in
// parallel, a fresh socket each) and returns two addresses when found.
func TestLookups(t *testing.T) {
	server, queries := startNameServer(t)
	// Distinct names: Go's resolver merges concurrent lookups of one name.
	var names []string
	for i := range 100 {
		names = append(names, fmt.Sprintf("a%d.allowed.test.", i), fmt.Sprintf("blocked-%d.test.", i))
	}
	for _, mode := range []Mode{ClosedLoop, OpenLoop} {
		t.Run(mode.String(), func(t *testing.T) {
			q0 := queries.Load()
			res, err := Lookups(context.Background(), LookupConfig{
				Server: server, Names: names, Seed: 3, Mode: mode, Concurrency: 8, Rate: 1000,
				Duration: 2 * time.Second, MaxLookups: 200, Timeout: time.Second,
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%+v", res)
			if res.Lookups != 200 || res.Found != 100 || res.NotFound != 100 || res.Failed != 0 || res.InFlight != 0 {
				t.Errorf("lookups %d: found %d, not found %d, failed %d, in flight %d; want 200: 100, 100, 0, 0 (first error %q)",
					res.Lookups, res.Found, res.NotFound, res.Failed, res.InFlight, res.FirstError)
			}
			if res.Addrs != 2*res.Found {
				t.Errorf("%d addresses for %d names found, want 2 each", res.Addrs, res.Found)
			}
			if got := queries.Load() - q0; res.Sockets != 400 || got != 400 {
				t.Errorf("%d sockets, %d queries for 200 lookups; want 400 of each (A and AAAA, a socket each)", res.Sockets, got)
			}
			if res.Latency.Count != 200 || res.Latency.P50 <= 0 || res.LPS <= 0 {
				t.Errorf("latency %v, %.0f lookups/s", res.Latency, res.LPS)
			}
			if mode == OpenLoop && (res.SendLag.Count != 200 || res.Elapsed < 199*time.Millisecond) {
				t.Errorf("open loop at 1000/s: %d lags, elapsed %v; want 200 and about 200 ms", res.SendLag.Count, res.Elapsed)
			}
		})
	}
}

// TestLookupsFailed: a name the server does not answer fails after the
// lookup's Timeout with the error kept, and a run is bounded by Duration.
func TestLookupsFailed(t *testing.T) {
	server, _ := startNameServer(t)
	t0 := time.Now()
	res, err := Lookups(context.Background(), LookupConfig{
		Server: server, Names: []string{"drop.test."}, Concurrency: 2,
		Duration: 100 * time.Millisecond, Timeout: 300 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(t0); res.Lookups != 2 || res.Failed != 2 || took > 2*time.Second {
		t.Errorf("%+v in %v; want 2 lookups, both failed, within 2 s", res, took)
	}
	if !strings.Contains(res.FirstError, "lookup drop.test. via "+server.String()) || res.Latency.Count != 0 {
		t.Errorf("first error %q, latency %v; want the lookup's error with the server it went to, and no latency", res.FirstError, res.Latency)
	}
	for _, bad := range []LookupConfig{
		{Names: []string{"x."}, Duration: time.Second},
		{Server: server, Duration: time.Second},
		{Server: server, Names: []string{"x."}},
		{Server: server, Names: []string{"x."}, Duration: time.Second, Network: "tcp"},
		{Server: server, Names: []string{"x."}, Duration: time.Second, Mode: OpenLoop},
	} {
		if _, err := Lookups(context.Background(), bad); err == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
}

// TestLookupsCancelled: a cancelled run returns at once with the lookups
// still running counted in flight.
func TestLookupsCancelled(t *testing.T) {
	server, _ := startNameServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	res, err := Lookups(ctx, LookupConfig{
		Server: server, Names: []string{"drop.test."}, Concurrency: 4, Duration: 10 * time.Second, Timeout: 5 * time.Second,
	})
	if err == nil || res == nil {
		t.Fatalf("err %v, result %+v; want the context's error and a result", err, res)
	}
	if took := time.Since(t0); res.InFlight != 4 || res.Failed != 0 || took > 2*time.Second {
		t.Errorf("%+v in %v; want 4 in flight, none failed, within 2 s", res, took)
	}
}

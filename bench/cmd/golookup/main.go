// SPDX-License-Identifier: MIT

// Command golookup is an ordinary Go program's resolver under load: it
// looks names up with net.Resolver{PreferGo: true}.LookupNetIP, whose
// Dial sends every query to -server, and writes what it measured
// (loadgen.LookupResult) as JSON. Go's resolver opens a fresh UDP socket
// for every query and asks A and AAAA in parallel, so each lookup costs
// the server two queries from two short-lived sockets. The end-to-end
// benchmark (bench/e2e) runs it inside the namespace of the system under
// test, pinned to the client's core.
//
//	golookup -server 198.19.53.53:53 -names FILE [-mode closed|open]
//	         [-concurrency 32] [-rate 1000] [-duration 1s] [-max N]
//	         [-timeout 1s] [-seed 1] [-out FILE]
//
// FILE has one name per line, looked up as written (a trailing dot skips
// resolv.conf's search list). Every run is bounded by -duration and
// -max; each lookup by -timeout.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/dnstun/dnstun/bench/loadgen"
)

func main() {
	server := flag.String("server", "", "address every query goes to (host:port)")
	namesFile := flag.String("names", "", "file of names to look up, one a line")
	mode := flag.String("mode", "closed", "closed: -concurrency lookups at a time; open: -rate lookups a second")
	concurrency := flag.Int("concurrency", 32, "closed loop: lookups at a time")
	rate := flag.Float64("rate", 1000, "open loop: lookups a second")
	duration := flag.Duration("duration", time.Second, "how long lookups are started")
	maxLookups := flag.Int("max", 0, "stop after this many lookups (0: -duration only)")
	timeout := flag.Duration("timeout", time.Second, "a lookup unanswered this long fails")
	seed := flag.Uint64("seed", 1, "shuffle the names with this seed (0: in file order)")
	out := flag.String("out", "", "write the JSON result here (default stdout)")
	flag.Parse()

	addr, err := netip.ParseAddrPort(*server)
	if err != nil {
		fail("bad -server", "server", *server, "err", err)
	}
	names, err := readNames(*namesFile)
	if err != nil {
		fail("read -names", "file", *namesFile, "err", err)
	}
	cfg := loadgen.LookupConfig{
		Server: addr, Names: names, Seed: *seed, Concurrency: *concurrency, Rate: *rate,
		Duration: *duration, MaxLookups: *maxLookups, Timeout: *timeout,
	}
	switch *mode {
	case "closed":
		cfg.Mode = loadgen.ClosedLoop
	case "open":
		cfg.Mode = loadgen.OpenLoop
	default:
		fail("bad -mode: want closed or open", "mode", *mode)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := loadgen.Lookups(ctx, cfg)
	if err != nil {
		fail("lookups", "server", addr, "names", *namesFile, "err", err)
	}
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		fail("encode the result", "err", err)
	}
	b = append(b, '\n')
	if *out == "" {
		_, err = os.Stdout.Write(b)
	} else {
		err = os.WriteFile(*out, b, 0o644)
	}
	if err != nil {
		fail("write the result", "out", *out, "err", err)
	}
}

// readNames reads one name a line, skipping blank lines.
func readNames(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var names []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if n := strings.TrimSpace(sc.Text()); n != "" {
			names = append(names, n)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("no names in %s", path)
	}
	return names, nil
}

func fail(msg string, args ...any) {
	slog.Error("golookup: "+msg, args...)
	os.Exit(1)
}

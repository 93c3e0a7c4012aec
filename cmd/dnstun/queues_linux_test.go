// SPDX-License-Identifier: MIT

package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dnstun/dnstun/internal/demo"
	"github.com/miekg/dns"
)

// TestE2ETunQueues runs dnstun with --tun-queues 2 and sends 200 blocked
// and forwarded queries, over IPv4 and IPv6, 8 at a time, each from a
// socket of its own (its own source port): every one is answered rightly,
// the upstream sees each forwarded query once and no blocked one, the TUN
// has two queues and the writers' detached one, and both queues' readers
// read some of them (the control socket's stats: tun_queue.N.packets,
// which add up to packets).
func TestE2ETunQueues(t *testing.T) {
	l := startLab(t, "--tun-queues", "2", "--cache", "0")
	out, err := l.Host.Command(context.Background(), "ip", "-d", "link", "show", "dnstun0").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "multi_queue numqueues 2 numdisabled 1") {
		t.Errorf("dnstun0 is not a TUN of 2 queues and a detached one: %v\n%s", err, out)
	}
	stats := func() map[string]uint64 { return labStats(t, l) }
	before := stats()
	fwdBefore, blockBefore := l.PrimaryServer.QueriesFor("www.example.com"), l.PrimaryServer.QueriesFor("ads.doubleclick.net")

	const queries = 200
	type row struct {
		blocked bool
		v6      bool
	}
	work := make(chan row)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range work {
				server, qtype, name, want := demo.Resolver4, dns.TypeA, "www.example.com", "192.0.2.80"
				if r.v6 {
					server, qtype, want = demo.Resolver6, dns.TypeAAAA, "2001:db8::80"
				}
				rcode := dns.RcodeSuccess
				if r.blocked {
					name, want, rcode = "ads.doubleclick.net", "NXDOMAIN", dns.RcodeNameError
				}
				m, _, err := l.Query(server, name, qtype, 3*time.Second)
				if err != nil {
					t.Errorf("%s %s via %v: %v", name, dns.TypeToString[qtype], server, err)
					continue
				}
				if got := demo.AnswerText(m); m.Rcode != rcode || got != want {
					t.Errorf("%s %s via %v: %s, want %s", name, dns.TypeToString[qtype], server, got, want)
				}
			}
		}()
	}
	for i := range queries {
		work <- row{blocked: i%2 == 0, v6: i%4 >= 2}
	}
	close(work)
	wg.Wait()

	if n := l.PrimaryServer.QueriesFor("www.example.com") - fwdBefore; n != queries/2 {
		t.Errorf("the upstream saw %d forwarded queries, want %d", n, queries/2)
	}
	if n := l.PrimaryServer.QueriesFor("ads.doubleclick.net") - blockBefore; n != 0 {
		t.Errorf("the upstream saw %d blocked queries", n)
	}
	after := stats()
	var sum uint64
	for q := range 2 {
		k := fmt.Sprintf("tun_queue.%d.packets", q)
		d := after[k] - before[k]
		if d == 0 {
			t.Errorf("queue %d's reader read none of %d queries: %s %d -> %d", q, queries, k, before[k], after[k])
		}
		sum += d
		t.Logf("queue %d: %d packets", q, d)
	}
	if _, ok := after["tun_queue.2.packets"]; ok {
		t.Errorf("a third queue in the stats: %v", after)
	}
	if d := after["packets"] - before["packets"]; sum != d || d < queries {
		t.Errorf("the queues read %d packets, the engine counted %d; want the same, at least %d", sum, d, queries)
	}
	if d := after["blocked"] - before["blocked"]; d != queries/2 {
		t.Errorf("blocked %d, want %d", d, queries/2)
	}
	if d := after["replied"] - before["replied"]; d != queries/2 {
		t.Errorf("replied %d, want %d", d, queries/2)
	}
	if err := l.StopDnstun(); err != nil {
		t.Errorf("stop: %v\n%s", err, l.Log())
	}
	if log := l.Log(); !strings.Contains(log, "tun_queue_packets") || strings.Contains(log, "panic") {
		t.Errorf("dnstun's log lacks the queues' final counts, or panicked:\n%s", log)
	}
}

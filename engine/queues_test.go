// SPDX-License-Identifier: MIT

package engine

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dnstun/dnstun/filter"
	"github.com/dnstun/dnstun/internal/pkttest"
	"github.com/dnstun/dnstun/querylog"
	"github.com/dnstun/dnstun/tun"
	"github.com/dnstun/dnstun/tun/tuntest"
	"github.com/dnstun/dnstun/upstream"
	"github.com/miekg/dns"
)

// multiPipe is an in-memory multi-queue TUN, shaped as tun's Linux one:
// each queue a Pipe (packets injected into queue i are read by its reader,
// answers it writes come out of it), the device's own Read reading queue 0
// and its own Write writing to a Pipe of its own (tun's detached queue).
type multiPipe struct {
	*tuntest.Pipe // the device's Write
	qs            []*tuntest.Pipe
}

func newMultiPipe(n int) *multiPipe {
	m := &multiPipe{Pipe: tuntest.NewPipe(4, 1024)}
	for range n {
		m.qs = append(m.qs, tuntest.NewPipe(4, 1024))
	}
	return m
}

func (m *multiPipe) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	return m.qs[0].Read(bufs, sizes, offset)
}

func (m *multiPipe) Queues() []tun.Device {
	out := make([]tun.Device, len(m.qs))
	for i, q := range m.qs {
		out[i] = q
	}
	return out
}

func (m *multiPipe) Close() error {
	for _, q := range m.qs {
		q.Close()
	}
	return m.Pipe.Close()
}

func (m *multiPipe) Err() error {
	errs := []error{m.Pipe.Err()}
	for _, q := range m.qs {
		errs = append(errs, q.Err())
	}
	return errors.Join(errs...)
}

// readersLeft returns how many reader goroutines are alive.
func readersLeft() int {
	buf := make([]byte, 1<<20)
	return strings.Count(string(buf[:runtime.Stack(buf, true)]), "engine.(*Engine).routineRead(")
}

// TestEngineQueues runs an engine over a TUN of 3 in-memory queues and
// sends blocked and forwarded queries from 300 client ports, each into the
// queue the port picks: every query is answered rightly, a blocked one on
// the queue it came in on, a forwarded one through the device's own Write
// (the receiver's); each reader counts its queue's packets; Close ends
// every reader and Run returns nil. Run it with -race: the readers share
// the engine with each other and with the receiver.
func TestEngineQueues(t *testing.T) {
	const queues, clients = 3, 300
	up := startUpstream(t)
	dev := newMultiPipe(queues)
	e, err := New(Config{Upstreams: upstream.UDPSpecs([]netip.AddrPort{up.Addr()}), QueryLog: querylog.New(1024), Metrics: true},
		dev, filter.NewLive(buildSet(t, testList)))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- e.Run(context.Background()) }()

	type query struct {
		queue   int
		blocked bool
	}
	sent := map[uint16]query{} // by DNS ID
	want := make([]uint64, queues)
	for i := range clients {
		id := uint16(1000 + i)
		client := netip.AddrPortFrom(client4.Addr(), uint16(41000+i))
		resolver := resolver4
		if i%4 >= 2 {
			client, resolver = netip.AddrPortFrom(client6.Addr(), uint16(41000+i)), resolver6
		}
		q := query{queue: int(client.Port()) % queues, blocked: i%2 == 0}
		name := "www.example.com"
		if q.blocked {
			name = "ads.example"
		}
		if !dev.qs[q.queue].Inject(pkttest.Query(client, resolver, pkttest.Msg(id, name, dns.TypeA))) {
			t.Fatalf("queue %d is full", q.queue)
		}
		sent[id] = query{q.queue, q.blocked}
		want[q.queue]++
	}
	// Collect the answers from every queue and from the device's Write.
	type answer struct {
		from int // the queue, or -1 for the device's Write
		msg  *dns.Msg
	}
	answers := make(chan answer, clients)
	var wg sync.WaitGroup
	var stop atomic.Bool
	for k, p := range append(dev.qs, dev.Pipe) {
		from := k
		if p == dev.Pipe {
			from = -1
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				select {
				case out := <-p.Written():
					answers <- answer{from, pkttest.Unpack(t, pkttest.VerifyUDP(t, out))}
				case <-time.After(10 * time.Millisecond):
				}
			}
		}()
	}
	timeout := time.After(10 * time.Second)
	for range clients {
		var a answer
		select {
		case a = <-answers:
		case <-timeout:
			t.Fatalf("%d queries unanswered after 10 s; stats %v", len(sent), e.Stats().Map())
		}
		q, ok := sent[a.msg.Id]
		if !ok {
			t.Fatalf("an answer to id %d, asked for no more (or never)", a.msg.Id)
		}
		delete(sent, a.msg.Id)
		switch {
		case q.blocked && (a.msg.Rcode != dns.RcodeNameError || len(a.msg.Answer) != 0):
			t.Errorf("blocked id %d: %v", a.msg.Id, a.msg)
		case !q.blocked && (a.msg.Rcode != dns.RcodeSuccess || len(a.msg.Answer) != 1 || a.msg.Answer[0].(*dns.A).A.String() != "192.0.2.80"):
			t.Errorf("forwarded id %d: %v", a.msg.Id, a.msg)
		case q.blocked && a.from != q.queue:
			t.Errorf("blocked id %d came in on queue %d, its answer went out on %d", a.msg.Id, q.queue, a.from)
		case !q.blocked && a.from != -1:
			t.Errorf("forwarded id %d: its answer went out on queue %d, not through the device's Write", a.msg.Id, a.from)
		}
	}
	stop.Store(true)
	wg.Wait()
	got := e.QueuePackets()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("packets per queue %v, want %v", got, want)
	}
	if st := e.Stats(); st.Get(Packets) != clients || st.Get(Blocked) != clients/2 || st.Get(Replied) != clients/2 {
		t.Errorf("stats %v", st.Map())
	}
	e.Close()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	if n := readersLeft(); n != 0 {
		t.Errorf("%d readers still running after Run returned", n)
	}
	if err := dev.Err(); err != nil {
		t.Errorf("tun contract: %v", err)
	}
}

// TestEngineQueueLost: a queue whose reader ends on its own (its device
// failed; the engine was not closed) ends the engine, whose Run returns
// that queue's error once every reader has ended: a queue nobody reads
// would swallow its flows.
func TestEngineQueueLost(t *testing.T) {
	up := startUpstream(t)
	dev := newMultiPipe(3)
	e, err := New(Config{Upstreams: upstream.UDPSpecs([]netip.AddrPort{up.Addr()})}, dev, filter.NewLive(buildSet(t, testList)))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- e.Run(context.Background()) }()
	// Served first, by each queue.
	for i, q := range dev.qs {
		q.Inject(pkttest.Query(client4, resolver4, pkttest.Msg(uint16(i), "ads.example", dns.TypeA)))
		select {
		case <-q.Written():
		case <-time.After(3 * time.Second):
			t.Fatalf("queue %d: no answer", i)
		}
	}
	dev.qs[1].Close()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "queue 2 of 3") || !errors.Is(err, os.ErrClosed) {
			t.Errorf("Run: %v, want the TUN's error naming queue 2 of 3", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after a queue was lost")
	}
	if n := readersLeft(); n != 0 {
		t.Errorf("%d readers still running after Run returned", n)
	}
}

// loopDev is a TUN queue whose Read hands out one packet, pkt, n times
// (one a call, as a TUN mostly does) and then reports the device closed;
// Write (countingDev's) counts the answers and keeps none.
type loopDev struct {
	countingDev
	pkt []byte
	n   int
}

func (d *loopDev) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	if d.n == 0 {
		return 0, os.ErrClosed
	}
	d.n--
	sizes[0] = copy(bufs[0][offset:], d.pkt)
	return 1, nil
}

// TestReaderAllocs: a reader's loop allocates nothing per packet: reading
// 3000 blocked queries costs what reading 1000 does (the worker and batch
// it starts with).
func TestReaderAllocs(t *testing.T) {
	e := newStepEngine(t, 16)
	pkt := pkttest.Query(client4, resolver4, pkttest.Msg(1, "ads.example", dns.TypeA))
	var read queueCount
	run := func(n int) func() {
		return func() {
			d := &loopDev{countingDev: countingDev{Pipe: tuntest.NewPipe(1, 1)}, pkt: pkt, n: n}
			if err := e.routineRead(d, &read, 0); !errors.Is(err, os.ErrClosed) || d.written != n {
				t.Fatalf("reader: %v after %d answers, want os.ErrClosed after %d", err, d.written, n)
			}
		}
	}
	few, many := testing.AllocsPerRun(5, run(1000)), testing.AllocsPerRun(5, run(3000))
	if many != few {
		t.Errorf("a reader allocates %v times for 1000 packets, %v for 3000: per packet", few, many)
	}
}

// BenchmarkReaders is readers answering blocked queries, each on a queue
// of its own (loopDev: no kernel, no copy out), 1 and 2 of them at once:
// what a reader costs per packet and how that scales when readers share
// the engine: its counters, the filter, and the query log (a ring behind
// one mutex; "querylog", as the daemon runs, and "nolog"). ns/op is wall
// time per packet of all readers together: with 2 CPUs and 2 readers, half
// of 1 reader's would be perfect scaling.
func BenchmarkReaders(b *testing.B) {
	for _, log := range []bool{true, false} {
		for _, readers := range []int{1, 2} {
			name := fmt.Sprintf("nolog/%d", readers)
			if log {
				name = fmt.Sprintf("querylog/%d", readers)
			}
			b.Run(name, func(b *testing.B) { benchReaders(b, readers, log) })
		}
	}
}

func benchReaders(b *testing.B, readers int, log bool) {
	cfg := Config{Upstreams: upstream.UDPSpecs([]netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:9")})}
	if log {
		cfg.QueryLog = querylog.New(1024)
	}
	e, err := New(cfg, tuntest.NewPipe(1, 1), filter.NewLive(buildSet(b, testList)))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.Close() })
	pkt := pkttest.Query(client4, resolver4, pkttest.Msg(1, "ads.example", dns.TypeA))
	reads := make([]queueCount, readers)
	b.ReportAllocs()
	b.ResetTimer()
	var wg sync.WaitGroup
	for i := range readers {
		d := &loopDev{countingDev: countingDev{Pipe: tuntest.NewPipe(1, 1)}, pkt: pkt, n: b.N / readers}
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.routineRead(d, &reads[i], i)
		}()
	}
	wg.Wait()
}

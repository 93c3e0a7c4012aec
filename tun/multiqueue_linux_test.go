// SPDX-License-Identifier: MIT

package tun

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dnstun/dnstun/internal/lab"
	"github.com/dnstun/dnstun/internal/privtest"
	"github.com/dnstun/dnstun/packet"
)

// mqTUN opens a TUN with queues queues through Open, inside a network
// namespace of its own (deleted by Cleanup), with the thin test's
// addresses and routes.
func mqTUN(tb testing.TB, name string, queues int) (Device, *lab.NS) {
	tb.Helper()
	privtest.RequirePriv(tb)
	l, err := lab.New(lab.Config{Prefix: "dnstun-mq"})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(l.Close)
	var dev Device
	err = l.Host.Do(func() (err error) {
		dev, _, err = Open(mqConfig(name, queues))
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { dev.Close() })
	checkLocalRoute6(tb, l.Host.Name, thinClient6) // see thinTUN
	return dev, l.Host
}

func mqConfig(name string, queues int) Config {
	return Config{
		Name:   name,
		MTU:    DefaultMTU,
		Addrs:  []netip.Prefix{netip.PrefixFrom(thinClient4, 32), netip.PrefixFrom(thinClient6, 128)},
		Routes: []netip.Prefix{netip.PrefixFrom(thinResolver4, 32), netip.PrefixFrom(thinResolver6, 128)},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Queues: queues,
	}
}

// mqRead is one datagram a queue's reader got.
type mqRead struct {
	queue   int
	src     netip.AddrPort
	payload string
}

// readQueues reads every queue of dev on a goroutine of its own, as the
// engine does, and sends what decodes as a UDP datagram to port 53 on the
// channel; the readers end when dev closes.
func readQueues(tb testing.TB, queues []Device) (<-chan mqRead, func()) {
	ch := make(chan mqRead, 4096)
	var wg sync.WaitGroup
	for i, q := range queues {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := NewBatch(q.BatchSize())
			var p packet.Parsed
			parser := packet.NewParser()
			for {
				n, err := q.Read(b.Bufs, b.Sizes, Headroom)
				if errors.Is(err, os.ErrClosed) {
					return
				}
				if err != nil && n == 0 {
					tb.Errorf("queue %d: Read: %v", i, err)
					return
				}
				for k := range n {
					pkt := b.Bufs[k][Headroom : Headroom+b.Sizes[k]]
					if parser.Decode(pkt, &p) != packet.OK {
						continue // the kernel's own (IPv6 MLD, ...)
					}
					ch <- mqRead{i, p.Src, string(pkt[p.PayloadOff : p.PayloadOff+p.PayloadLen])}
				}
			}
		}()
	}
	return ch, wg.Wait
}

// TestMultiQueue opens a real TUN with 4 queues in a namespace, sends 5
// datagrams from each of 200 client sockets (half IPv4, half IPv6, each its
// own source port) to the routed resolver, and reads all queues at once:
// every datagram arrives exactly once, each flow's datagrams on one queue
// and in order, and every queue gets some flows (the kernel spreads flows
// by a hash of addresses and ports). Answers written on a flow's queue and
// through the device's own Write reach the client; the latter (the
// engine's receiver writes there) leaves the flow on its queue.
func TestMultiQueue(t *testing.T) {
	const queues, flows, perFlow = 4, 200, 5
	dev, ns := mqTUN(t, "dtmq0", queues)
	mq, ok := dev.(MultiQueue)
	if !ok {
		t.Fatalf("Open with %d queues returned a %T, not a MultiQueue", queues, dev)
	}
	qs := mq.Queues()
	if len(qs) != queues {
		t.Fatalf("%d queues, want %d", len(qs), queues)
	}
	for i, q := range qs {
		if thin, ok := q.(*thinDevice); !ok {
			t.Errorf("queue %d is a %T, want the thin device", i, q)
		} else if thin.hdr != virtioHdrLen {
			t.Errorf("queue %d: a %d-byte virtio-net header: no IFF_VNET_HDR", i, thin.hdr)
		}
		if q.BatchSize() != 1 {
			t.Errorf("queue %d: batch size %d, want 1 (offloads off: one packet a read)", i, q.BatchSize())
		}
		if name, err := q.Name(); err != nil || name != "dtmq0" {
			t.Errorf("queue %d: name %q, %v", i, name, err)
		}
	}
	reads, wait := readQueues(t, qs)
	defer wait()
	defer dev.Close()

	// The clients: sockets on the TUN's addresses, each its own port.
	socks := make([]net.PacketConn, flows)
	flowOf := map[netip.AddrPort]int{}
	for i := range socks {
		addr := netip.AddrPortFrom(thinClient4, 0)
		if i%2 == 1 {
			addr = netip.AddrPortFrom(thinClient6, 0)
		}
		pc, err := ns.ListenPacket("udp", addr.String())
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		socks[i] = pc
		flowOf[pc.LocalAddr().(*net.UDPAddr).AddrPort()] = i
	}
	resolverOf := func(i int) netip.AddrPort {
		if i%2 == 1 {
			return netip.AddrPortFrom(thinResolver6, 53)
		}
		return netip.AddrPortFrom(thinResolver4, 53)
	}
	send := func(i, seq int) {
		if _, err := socks[i].WriteTo(fmt.Appendf(nil, "flow %d seq %d", i, seq), net.UDPAddrFromAddrPort(resolverOf(i))); err != nil {
			t.Fatalf("flow %d: send: %v", i, err)
		}
	}
	// collect reads want datagrams, or fails after 5 s.
	collect := func(want int) []mqRead {
		var got []mqRead
		timeout := time.After(5 * time.Second)
		for len(got) < want {
			select {
			case r := <-reads:
				got = append(got, r)
			case <-timeout:
				t.Fatalf("%d of %d datagrams read from the queues in 5 s", len(got), want)
			}
		}
		select {
		case r := <-reads:
			t.Fatalf("an unexpected datagram: %+v", r)
		case <-time.After(100 * time.Millisecond):
		}
		return got
	}

	for seq := range perFlow {
		for i := range flows {
			send(i, seq)
		}
	}
	queueOf := make([]int, flows) // the queue each flow came in on
	for i := range queueOf {
		queueOf[i] = -1
	}
	next := make([]int, flows) // the next seq due from each flow
	perQueue := make([]int, queues)
	for _, r := range collect(flows * perFlow) {
		i, ok := flowOf[r.src]
		var fi, seq int
		if _, err := fmt.Sscanf(r.payload, "flow %d seq %d", &fi, &seq); !ok || err != nil || fi != i {
			t.Fatalf("datagram %q from %v on queue %d: not one the test sent", r.payload, r.src, r.queue)
		}
		if seq != next[i] {
			t.Errorf("flow %d: seq %d arrived, want %d (lost, repeated or reordered)", i, seq, next[i])
		}
		next[i] = seq + 1
		if queueOf[i] >= 0 && queueOf[i] != r.queue {
			t.Errorf("flow %d: on queue %d, then on %d: a flow's packets must stay on one queue", i, queueOf[i], r.queue)
		}
		queueOf[i] = r.queue
		perQueue[r.queue]++
	}
	t.Logf("datagrams per queue: %v", perQueue)
	for q, n := range perQueue {
		if n == 0 {
			t.Errorf("queue %d got none of %d flows' datagrams: not spread (per queue: %v)", q, flows, perQueue)
		}
	}

	// Answers: even flows on their own queue, odd ones through the
	// device's Write (the detached queue). Each client gets its answer.
	bufs := make([][]byte, 1)
	bufs[0] = make([]byte, BufSize)
	for i := range flows {
		w := qs[queueOf[i]]
		if i%2 == 1 {
			w = dev
		}
		pkt := thinPkt{client: socks[i].LocalAddr().(*net.UDPAddr).AddrPort(), size: 40}
		if n, err := w.Write(build(t, bufs, []thinPkt{pkt}), Headroom); n != 1 || err != nil {
			t.Fatalf("flow %d: Write: %d, %v", i, n, err)
		}
		buf := make([]byte, 100)
		socks[i].SetReadDeadline(time.Now().Add(2 * time.Second))
		n, from, err := socks[i].ReadFrom(buf)
		if err != nil {
			t.Fatalf("flow %d: no answer: %v", i, err)
		}
		if got := from.(*net.UDPAddr).AddrPort(); got != resolverOf(i) || string(buf[:n]) != string(pkt.payload(0)) {
			t.Errorf("flow %d: answer %q from %v, want %q from %v", i, buf[:n], got, pkt.payload(0), resolverOf(i))
		}
	}
	// Writing through the device (its detached queue) allocates nothing.
	batch := build(t, bufs, []thinPkt{{client: socks[1].LocalAddr().(*net.UDPAddr).AddrPort(), size: 40}})
	if a := testing.AllocsPerRun(100, func() { dev.Write(batch, Headroom) }); a != 0 {
		t.Errorf("the device's Write: %v allocations, want 0", a)
	}
	// The next datagram of each flow comes in on the same queue.
	for i := range flows {
		send(i, perFlow)
	}
	for _, r := range collect(flows) {
		if i := flowOf[r.src]; r.queue != queueOf[i] {
			how := "its own queue"
			if i%2 == 1 {
				how = "the device's Write"
			}
			t.Errorf("flow %d: on queue %d after an answer through %s, was on %d", i, r.queue, how, queueOf[i])
		}
	}
	// An answer written on another queue than the flow's moves it there
	// (the kernel's automq): why the device's Write uses a detached
	// queue. Shown, not required: it is the kernel's behaviour.
	moved := 0
	for i := range flows {
		other := (queueOf[i] + 1) % queues
		pkt := thinPkt{client: socks[i].LocalAddr().(*net.UDPAddr).AddrPort(), size: 40}
		qs[other].Write(build(t, bufs, []thinPkt{pkt}), Headroom)
		socks[i].SetReadDeadline(time.Now().Add(2 * time.Second))
		socks[i].ReadFrom(make([]byte, 100))
		send(i, perFlow+1)
	}
	for _, r := range collect(flows) {
		if i := flowOf[r.src]; r.queue != queueOf[i] {
			moved++
		}
	}
	t.Logf("an answer on another queue moved %d of %d flows to it", moved, flows)
}

// TestMultiQueueOpen checks what Open refuses and what it leaves behind:
// queue counts out of range (no privileges needed), a second TUN of the
// same name (exclusive creation: a second dnstun must not join the first's
// device as more queues), and, once closed, no interface and closed reads.
func TestMultiQueueOpen(t *testing.T) {
	for _, n := range []int{-1, MaxQueues + 1} {
		if _, _, err := Open(mqConfig("dtmqbad0", n)); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%d queues", n)) {
			t.Errorf("Open with %d queues: %v, want an error naming them", n, err)
		}
	}
	dev, ns := mqTUN(t, "dtmq1", 2)
	for _, n := range []int{2, 1} {
		err := ns.Do(func() error {
			d, _, err := Open(mqConfig("dtmq1", n))
			if err == nil {
				d.Close()
			}
			return err
		})
		if err == nil {
			t.Errorf("a second Open of dtmq1 with %d queues succeeded", n)
		} else if n == 2 && !strings.Contains(err.Error(), "exists already") {
			t.Errorf("a second Open of dtmq1 with 2 queues: %v, want it to say the interface exists", err)
		}
	}
	qs := dev.(MultiQueue).Queues()
	if err := dev.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	b := NewBatch(1)
	for i, q := range qs {
		// Queue 0's device may first report its netlink listener's
		// closed socket (as with one queue); then os.ErrClosed.
		var err error
		for range 3 {
			if _, err = q.Read(b.Bufs, b.Sizes, Headroom); err == nil || errors.Is(err, os.ErrClosed) {
				break
			}
		}
		if !errors.Is(err, os.ErrClosed) {
			t.Errorf("queue %d: Read after Close: %v, want os.ErrClosed", i, err)
		}
	}
	if out, err := exec.Command("ip", "-n", ns.Name, "link", "show", "dtmq1").CombinedOutput(); err == nil {
		t.Errorf("dtmq1 is still there after Close: %s", out)
	}
}

package loadgen

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// responder is a loopback UDP DNS "server" for tests: it answers each
// query by setting QR and echoing the packet (header + question).
type responder struct {
	conn      *net.UDPConn
	addr      netip.AddrPort
	dropEvery int64            // drop every Nth query received (0 = none)
	delay     time.Duration    // answer after this delay
	mangle    func(pkt []byte) // modify the answer before sending
	received  atomic.Int64
	dropped   atomic.Int64
	wg        sync.WaitGroup
}

type delayed struct {
	b   [512]byte
	n   int
	to  netip.AddrPort
	due time.Time
}

func startResponder(tb testing.TB, dropEvery int64, delay time.Duration, mangle func([]byte)) *responder {
	tb.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		tb.Fatal(err)
	}
	c.SetReadBuffer(4 << 20)
	c.SetWriteBuffer(4 << 20)
	r := &responder{conn: c, addr: c.LocalAddr().(*net.UDPAddr).AddrPort(), dropEvery: dropEvery, delay: delay, mangle: mangle}
	var q chan *delayed
	var pool sync.Pool
	if delay > 0 {
		q = make(chan *delayed, 8192)
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			pacerThread()
			for d := range q {
				if w := time.Until(d.due); w > 0 {
					preciseSleep(w)
				}
				c.WriteToUDPAddrPort(d.b[:d.n], d.to)
				pool.Put(d)
			}
		}()
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		if q != nil {
			defer close(q)
		}
		var buf [512]byte
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf[:])
			if err != nil {
				return
			}
			k := r.received.Add(1)
			if r.dropEvery > 0 && k%r.dropEvery == 0 {
				r.dropped.Add(1)
				continue
			}
			if n < hdrLen {
				continue
			}
			buf[2] |= 0x80
			if r.mangle != nil {
				r.mangle(buf[:n])
			}
			if q == nil {
				c.WriteToUDPAddrPort(buf[:n], from)
				continue
			}
			d, _ := pool.Get().(*delayed)
			if d == nil {
				d = new(delayed)
			}
			d.n = copy(d.b[:], buf[:n])
			d.to = from
			d.due = time.Now().Add(r.delay)
			q <- d
		}
	}()
	tb.Cleanup(func() { c.Close(); r.wg.Wait() })
	return r
}

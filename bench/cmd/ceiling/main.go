// SPDX-License-Identifier: MIT

// Command ceiling is the benchmark's upper bound for answering DNS on a
// TUN: it opens a TUN device with one virtual resolver address routed into
// it, and turns every query packet it reads into an NXDOMAIN answer in
// place (dnstun's own packet package: decode, read the question, answer in
// place) and writes it back, in batches. No filter, no forwarding, no
// counters: whatever dnstun costs above this program is the price of its
// decisions.
//
//	ceiling [-tun ceil0] [-resolver 198.19.53.53] [-tun-addr 198.19.53.1]
//
// It needs root (or CAP_NET_ADMIN) and exits on SIGINT or SIGTERM.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"syscall"

	"github.com/dnstun/dnstun/packet"
	"github.com/dnstun/dnstun/tun"
)

func main() {
	name := flag.String("tun", "ceil0", "TUN device name")
	resolver := flag.String("resolver", "198.19.53.53", "virtual resolver address routed into the TUN")
	tunAddr := flag.String("tun-addr", "198.19.53.1", "the TUN's own address")
	flag.Parse()
	res, err1 := netip.ParseAddr(*resolver)
	own, err2 := netip.ParseAddr(*tunAddr)
	if err1 != nil || err2 != nil {
		fmt.Fprintln(os.Stderr, "ceiling: bad -resolver or -tun-addr")
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	dev, _, err := tun.Open(tun.Config{
		Name:   *name,
		Addrs:  []netip.Prefix{netip.PrefixFrom(own, own.BitLen())},
		Routes: []netip.Prefix{netip.PrefixFrom(res, res.BitLen())},
		Logger: log,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "ceiling:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		dev.Close()
	}()
	answered := loop(dev)
	fmt.Fprintf(os.Stderr, "ceiling: answered %d queries\n", answered)
}

// loop reads batches until the device is closed; it allocates nothing.
func loop(dev tun.Device) int64 {
	var (
		parser = packet.NewParser()
		p      packet.Parsed
		q      packet.Question
		reply  = packet.Reply{Rcode: 3} // NXDOMAIN
		b      = tun.NewBatch(dev.BatchSize())
		total  int64
	)
	for {
		n, err := dev.Read(b.Bufs, b.Sizes, tun.Headroom)
		if err != nil && n == 0 {
			if err == tun.ErrTooManySegments {
				continue
			}
			return total
		}
		b.Out = b.Out[:0]
		for i := range n {
			pkt := b.Bufs[i][tun.Headroom:]
			if parser.Decode(pkt[:b.Sizes[i]], &p) != packet.OK {
				continue
			}
			if packet.ReadQuestion(pkt[p.PayloadOff:p.PayloadOff+p.PayloadLen], &q) != packet.OK {
				continue
			}
			if m := packet.AnswerInPlace(pkt, &p, &q, &reply); m > 0 {
				b.Out = append(b.Out, b.Bufs[i][:tun.Headroom+m])
			}
		}
		if len(b.Out) > 0 {
			dev.Write(b.Out, tun.Headroom)
			total += int64(len(b.Out))
		}
	}
}

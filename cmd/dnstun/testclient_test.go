// SPDX-License-Identifier: MIT

package main

import (
	"fmt"
	"net"
	"os"
	"time"

	"github.com/miekg/dns"
)

// testClient is a tiny DNS client that the test binary becomes with
// DNSTUN_TEST_CLIENT=1, copied under other names so that attribution sees
// differently named programs: `SERVER NAME HOLD` sends one A query from a
// fresh UDP socket, prints "pid=PID rcode=RCODE answer=TEXT", and keeps
// the socket open for HOLD (as programs that reuse theirs do) before it
// exits.
func testClient(args []string) int {
	if len(args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: SERVER NAME HOLD")
		return 2
	}
	hold, err := time.ParseDuration(args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	c, err := net.Dial("udp", args[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer c.Close()
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(args[1]), dns.TypeA)
	b, _ := q.Pack()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(b); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var r dns.Msg
	if err := r.Unpack(buf[:n]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	answer := "-"
	if len(r.Answer) > 0 {
		if a, ok := r.Answer[0].(*dns.A); ok {
			answer = a.A.String()
		}
	}
	fmt.Printf("pid=%d rcode=%s answer=%s\n", os.Getpid(), dns.RcodeToString[r.Rcode], answer)
	time.Sleep(hold)
	return 0
}

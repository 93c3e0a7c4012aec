//go:build unix

package loadgen

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// The benchmarks run the responder in a child process (this test binary
// re-executed) so that the rusage of the benchmark process is the load
// generator's own CPU cost.
const childEnv = "LOADGEN_TEST_RESPONDER"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		childResponder()
		return
	}
	os.Exit(m.Run())
}

// childResponder serves on loopback until stdin closes, bounded to 60 s.
func childResponder() {
	srv := startResponder(&childTB{}, 0, 0, nil)
	fmt.Println(srv.addr)
	done := make(chan struct{})
	go func() { io.Copy(io.Discard, os.Stdin); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
	}
	srv.conn.Close()
}

// childTB is the minimal testing.TB the responder needs outside a test.
type childTB struct{ testing.TB }

func (*childTB) Helper()             {}
func (*childTB) Fatal(a ...any)      { fmt.Fprintln(os.Stderr, a...); os.Exit(1) }
func (*childTB) Cleanup(f func())    {}
func (*childTB) Logf(string, ...any) {}

func startChild(b *testing.B) netip.AddrPort {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { in.Close(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		b.Fatal(err)
	}
	ap, err := netip.ParseAddrPort(line[:len(line)-1])
	if err != nil {
		b.Fatal(err)
	}
	return ap
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkClosedLoop reports, per answered query, wall time (ns/op),
// the client's CPU time (cpu-ns/op) and allocations, plus the qps.
func BenchmarkClosedLoop(b *testing.B) {
	target := startChild(b)
	for _, c := range []struct{ conc, socks int }{{16, 2}, {64, 4}} {
		b.Run(fmt.Sprintf("c%d-s%d", c.conc, c.socks), func(b *testing.B) {
			cfg := Config{Target: target, Names: testNames, Concurrency: c.conc, Sockets: c.socks,
				Duration: 30 * time.Second, MaxQueries: b.N, Timeout: time.Second}
			b.ReportAllocs()
			b.ResetTimer()
			cpu := cpuTime()
			res, err := Run(context.Background(), cfg)
			cpu = cpuTime() - cpu
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
			b.ReportMetric(res.QPS, "qps")
			b.ReportMetric(float64(res.Latency.P50.Microseconds()), "p50-µs")
			if res.Lost > 0 {
				b.Logf("lost %d of %d", res.Lost, res.Sent)
			}
		})
	}
}

// BenchmarkOpenLoop reports the client's CPU per query at a fixed rate
// and the pacer's lateness.
func BenchmarkOpenLoop(b *testing.B) {
	target := startChild(b)
	const rate = 20000
	cfg := Config{Target: target, Names: testNames, Mode: OpenLoop, Rate: rate,
		Duration: 30 * time.Second, MaxQueries: b.N, Timeout: time.Second}
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime()
	res, err := Run(context.Background(), cfg)
	cpu = cpuTime() - cpu
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(res.SendLag.P50.Microseconds()), "lag-p50-µs")
	b.ReportMetric(float64(res.SendLag.P99.Microseconds()), "lag-p99-µs")
}

func BenchmarkHistogramRecord(b *testing.B) {
	var h Histogram
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		h.Record(time.Duration(i&0xfffff) * 97)
	}
}

func BenchmarkSameQuestion(b *testing.B) {
	tm, _ := buildTemplates([]Query{{"www.example.com", 1}})
	q := tm.question(0)
	got := append([]byte(nil), q...)
	got[1] = 'W'
	b.ReportAllocs()
	for b.Loop() {
		if !sameQuestion(got, q) {
			b.Fatal("mismatch")
		}
	}
}

// SPDX-License-Identifier: MIT

package e2e

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/dnstun/dnstun/internal/netns"
)

// Addresses of the lab (documentation and benchmarking ranges only).
var (
	sutVethAddr  = "192.0.2.2/24"
	upVethAddr   = "192.0.2.1/24"
	upstreamAddr = netip.MustParseAddrPort("192.0.2.1:53")
	localAddr    = netip.MustParseAddrPort("198.51.100.53:53") // socket resolvers, on the SUT ns loopback
	tunResolver  = netip.MustParseAddrPort("198.19.53.53:53")  // dnstun's and the ceiling's TUN
)

// lab is the two namespaces and the upstream responder.
type lab struct {
	sut, up  *netns.NS
	upstream *proc
	cpus     cpus
}

// cpus says where the client (and the upstream) and the system under test
// run; -1 means not pinned.
type cpus struct{ client, sut int }

func newLab(ctx context.Context, upstreamBin string, c cpus) (l *lab, err error) {
	l = &lab{cpus: c}
	defer func() {
		if err != nil {
			l.close()
		}
	}()
	sfx := netns.Suffix()
	if l.sut, err = netns.New("dnb-" + sfx + "-sut"); err != nil {
		return nil, err
	}
	if l.up, err = netns.New("dnb-" + sfx + "-up"); err != nil {
		return nil, err
	}
	if err = netns.Veth(l.sut, "bn-s", l.up, "bn-u"); err != nil {
		return nil, err
	}
	if err = l.sut.IP("addr", "add", sutVethAddr, "dev", "bn-s"); err != nil {
		return nil, err
	}
	if err = l.up.IP("addr", "add", upVethAddr, "dev", "bn-u"); err != nil {
		return nil, err
	}
	if err = l.sut.IP("addr", "add", localAddr.Addr().String()+"/32", "dev", "lo"); err != nil {
		return nil, err
	}
	l.upstream, err = startProc(l.up, c.client, upstreamBin, "-listen", upstreamAddr.String())
	if err != nil {
		return nil, err
	}
	if _, err = l.firstAnswer(ctx, l.upstream, upstreamAddr, "ready.allowed.example", rcodeNoError, 10*time.Second); err != nil {
		return nil, fmt.Errorf("upstream responder: %w\n%s", err, l.upstream.Log())
	}
	return l, nil
}

func (l *lab) close() {
	if l.upstream != nil {
		l.upstream.stop()
	}
	for _, ns := range []*netns.NS{l.sut, l.up} {
		if ns != nil {
			ns.Delete()
		}
	}
}

// dial opens a connected UDP socket inside the SUT namespace.
func (l *lab) dial(network, address string) (net.Conn, error) {
	var c net.Conn
	err := l.sut.Do(func() (err error) {
		c, err = net.Dial(network, address)
		return err
	})
	return c, err
}

const (
	rcodeNoError  = 0
	rcodeNXDomain = 3
)

// firstAnswer queries target for name until an answer with rcode arrives,
// and returns the time from p's start to that answer. p may be nil (then
// the time is from the call). It gives up after limit or when p exits.
func (l *lab) firstAnswer(ctx context.Context, p *proc, target netip.AddrPort, name string, rcode int, limit time.Duration) (time.Duration, error) {
	start := time.Now()
	if p != nil {
		start = p.started
	}
	q := buildQuery(name, 1)
	buf := make([]byte, 1500)
	deadline := time.Now().Add(limit)
	var c net.Conn
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	var lastErr error
	for id := uint16(1); ; id++ {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		if p != nil && p.exited() {
			return 0, fmt.Errorf("exited during start-up: %v", p.err())
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("no answer within %v (last error: %v)", limit, lastErr)
		}
		if c == nil {
			var err error
			if c, err = l.dial("udp", target.String()); err != nil {
				lastErr = err
				c = nil
				time.Sleep(2 * time.Millisecond)
				continue
			}
		}
		binary.BigEndian.PutUint16(q, id)
		if _, err := c.Write(q); err != nil {
			// No route yet (TUN not up) or port unreachable: a new socket
			// next time, so that a stale error does not stick.
			lastErr = err
			c.Close()
			c = nil
			time.Sleep(2 * time.Millisecond)
			continue
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Millisecond))
		for {
			n, err := c.Read(buf)
			if err != nil {
				var ne net.Error
				if !(errors.As(err, &ne) && ne.Timeout()) {
					lastErr = err
					c.Close()
					c = nil
					time.Sleep(2 * time.Millisecond)
				}
				break
			}
			if n >= 12 && binary.BigEndian.Uint16(buf) == id && buf[2]&0x80 != 0 {
				if int(buf[3]&0x0f) == rcode {
					return time.Since(start), nil
				}
				lastErr = fmt.Errorf("answer with rcode %d, want %d", buf[3]&0x0f, rcode)
				break
			}
		}
	}
}

// buildQuery returns a query message for name (ID 0, RD set).
func buildQuery(name string, qtype uint16) []byte {
	b := []byte{0, 0, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0}
	for _, lab := range strings.Split(strings.TrimSuffix(name, "."), ".") {
		b = append(b, byte(len(lab)))
		b = append(b, lab...)
	}
	return append(b, 0, byte(qtype>>8), byte(qtype), 0, 1)
}

// proc is a process started inside a namespace, pinned to one core.
type proc struct {
	cmd     *exec.Cmd
	started time.Time
	done    chan struct{}
	mu      sync.Mutex
	log     bytes.Buffer
	werr    error
}

// startProc runs `[taskset -c cpu] ip netns exec NS bin args...`. taskset
// and ip both exec, so the PID is the program's own.
func startProc(ns *netns.NS, cpu int, bin string, args ...string) (*proc, error) {
	argv := []string{"ip", "netns", "exec", ns.Name, bin}
	argv = append(argv, args...)
	if cpu >= 0 {
		argv = append([]string{"taskset", "-c", strconv.Itoa(cpu)}, argv...)
	}
	p := &proc{done: make(chan struct{})}
	p.cmd = exec.Command(argv[0], argv[1:]...)
	w := &procWriter{p: p}
	p.cmd.Stdout, p.cmd.Stderr = w, w
	// Own process group: a Ctrl-C on the terminal reaches the driver,
	// which stops its children in order (and removes the namespaces).
	// No Pdeathsig: it fires when the forking OS thread exits, and Go
	// ends threads that a goroutine left locked (loadgen's pacer does).
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p.started = time.Now()
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() {
		err := p.cmd.Wait()
		p.mu.Lock()
		p.werr = err
		p.mu.Unlock()
		close(p.done)
	}()
	return p, nil
}

type procWriter struct{ p *proc }

func (w *procWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	if w.p.log.Len() < 1<<20 {
		w.p.log.Write(b)
	}
	return len(b), nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *proc) err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.werr
}

// Log returns what the process printed (the first MiB).
func (p *proc) Log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// stop sends SIGTERM to the process (by PID) and kills it after 5 s.
func (p *proc) stop() {
	if p.exited() {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// cpuTime returns the user+system time of process pid and all its
// threads, dead ones included (/proc/PID/stat fields 14 and 15).
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("bad /proc/PID/stat")
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state): utime is field 14, stime 15.
	if len(f) < 13 {
		return 0, errors.New("short /proc/PID/stat")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("bad /proc/PID/stat times")
	}
	return time.Duration(ut+st) * (time.Second / clkTck), nil
}

// clkTck is USER_HZ, 100 on every Linux architecture Go supports.
const clkTck = 100

// coreBusy returns the non-idle time of cpu from /proc/stat (user, nice,
// system, irq, softirq, steal).
func coreBusy(cpu int) time.Duration {
	if cpu < 0 {
		return 0
	}
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	prefix := "cpu" + strconv.Itoa(cpu) + " "
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		f := strings.Fields(line)[1:]
		var busy int64
		for i, v := range f {
			if i == 3 || i == 4 || i >= 8 { // idle, iowait, guest, guest_nice
				continue
			}
			n, _ := strconv.ParseInt(v, 10, 64)
			busy += n
		}
		return time.Duration(busy) * (time.Second / clkTck)
	}
	return 0
}

// measureReload changes the plain list at path (one name more, written to
// a new file and renamed over it, as an editor or a downloader does),
// resets p's peak RSS, sends SIGHUP and waits until the new name answers
// NXDOMAIN; then it waits for the memory to be given back. It returns the
// highest peak RSS (KiB) and the slowest reload of reps, and puts the list
// back as it was.
func (l *lab) measureReload(ctx context.Context, p *proc, target netip.AddrPort, path string, reps int) (peak int64, took time.Duration, err error) {
	orig, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, err
	}
	defer func() {
		if werr := replaceFile(path, orig); err == nil {
			err = werr
		}
	}()
	for i := range reps {
		name := fmt.Sprintf("reload-%d.bench.example", i)
		if err := replaceFile(path, append(slices.Clip(orig), name+"\n"...)); err != nil {
			return 0, 0, err
		}
		// Writing 5 to clear_refs sets VmHWM to the current VmRSS.
		if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", p.pid()), []byte("5"), 0); err != nil {
			return 0, 0, fmt.Errorf("reset the peak RSS: %w", err)
		}
		t0 := time.Now()
		if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			return 0, 0, err
		}
		if _, err := l.firstAnswer(ctx, nil, target, name, rcodeNXDomain, 60*time.Second); err != nil {
			return 0, 0, fmt.Errorf("reload %d: %w", i, err)
		}
		took = max(took, time.Since(t0))
		time.Sleep(500 * time.Millisecond)
		_, hwm := memKiB(p.pid())
		peak = max(peak, hwm)
	}
	return peak, took, nil
}

func replaceFile(path string, data []byte) error {
	tmp := path + ".new"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// memKiB returns VmRSS and VmHWM of pid in KiB.
func memKiB(pid int) (rss, hwm int64) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "VmRSS:":
			rss, _ = strconv.ParseInt(f[1], 10, 64)
		case "VmHWM:":
			hwm, _ = strconv.ParseInt(f[1], 10, 64)
		}
	}
	return rss, hwm
}

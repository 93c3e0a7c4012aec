// SPDX-License-Identifier: MIT

package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/dnstun/dnstun/internal/lab"
)

// cpuTime returns the user+system time of process pid and all its
// threads, dead ones included, and of its children that it has waited for
// (dnsmasq forks one per TCP connection): /proc/PID/stat fields 14 to 17.
func cpuTime(pid int) (time.Duration, error) {
	user, sys, err := cpuTimes(pid)
	return user + sys, err
}

// cpuTimes is cpuTime in its two parts: user time (fields 14 and 16) and
// system time (15 and 17), the latter being the kernel's work on the
// process's behalf, softirqs that ran in its context included.
func cpuTimes(pid int) (user, sys time.Duration, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, errors.New("bad /proc/PID/stat")
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state): utime is field 14, stime 15, cutime 16,
	// cstime 17.
	if len(f) < 15 {
		return 0, 0, errors.New("short /proc/PID/stat")
	}
	var ticks [4]int64
	for j, v := range f[11:15] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, 0, errors.New("bad /proc/PID/stat times")
		}
		ticks[j] = n
	}
	tick := time.Second / clkTck
	return time.Duration(ticks[0]+ticks[2]) * tick, time.Duration(ticks[1]+ticks[3]) * tick, nil
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
func (e *env) measureReload(ctx context.Context, p *lab.Proc, target netip.AddrPort, path string, reps int) (peak int64, took time.Duration, err error) {
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
		if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", p.Pid()), []byte("5"), 0); err != nil {
			return 0, 0, fmt.Errorf("reset the peak RSS: %w", err)
		}
		t0 := time.Now()
		if err := p.Signal(syscall.SIGHUP); err != nil {
			return 0, 0, err
		}
		if _, err := e.firstAnswer(ctx, nil, target, name, lab.RcodeNXDomain, 60*time.Second); err != nil {
			return 0, 0, fmt.Errorf("reload %d: %w", i, err)
		}
		took = max(took, time.Since(t0))
		time.Sleep(500 * time.Millisecond)
		_, hwm := memKiB(p.Pid())
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

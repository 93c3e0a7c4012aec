package loadgen

import (
	"runtime"
	"syscall"
	"time"
)

// The Go runtime rounds sub-millisecond timer sleeps up to its netpoller's
// 1 ms granularity when the process is idle, which would make an open-loop
// schedule ~0.5-1 ms late on average. The pacer therefore finishes each
// wait with nanosleep(2) on a thread of its own whose timer slack is
// lowered to 1 µs (measured: ~10-35 µs late instead of ~0.6-1 ms).

const prSetTimerSlack = 29

// pacerThread dedicates the calling goroutine's OS thread to pacing. The
// goroutine must never unlock it: the runtime then discards the thread
// (with its changed timer slack) when the goroutine exits.
func pacerThread() {
	runtime.LockOSThread()
	syscall.Syscall(syscall.SYS_PRCTL, prSetTimerSlack, 1000, 0)
}

// preciseSleep sleeps for d with nanosleep(2), resuming after signals.
func preciseSleep(d time.Duration) {
	ts := syscall.NsecToTimespec(int64(d))
	for syscall.Nanosleep(&ts, &ts) == syscall.EINTR {
	}
}

//go:build !linux

package loadgen

import "time"

func pacerThread() {}

func preciseSleep(d time.Duration) { time.Sleep(d) }

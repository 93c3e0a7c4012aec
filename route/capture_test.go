// SPDX-License-Identifier: MIT

package route

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

func TestWatchdog(t *testing.T) {
	// A data path that answers, then stalls: reported after 3 misses in a
	// row, not after an isolated one.
	var calls atomic.Int32
	probe := func(context.Context) error {
		n := calls.Add(1)
		if n == 2 || n >= 4 {
			return errors.New("timeout")
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := watchdog(ctx, probe, time.Millisecond, 3)
	if err == nil || calls.Load() != 6 {
		t.Errorf("stalled after %d probes (%v), want an error after probe 6", calls.Load(), err)
	}

	// A healthy path is never reported; the watchdog ends with ctx.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	if err := watchdog(ctx2, func(context.Context) error { return nil }, time.Millisecond, 3); err != nil {
		t.Errorf("healthy path reported: %v", err)
	}
}

func TestSelfTest(t *testing.T) {
	// Answers on the third try: the self-test passes.
	var calls atomic.Int32
	err := selfTest(context.Background(), func(context.Context, time.Duration) error {
		if calls.Add(1) < 3 {
			return errors.New("no answer yet")
		}
		return nil
	}, time.Second)
	if err != nil || calls.Load() != 3 {
		t.Errorf("self-test: %v after %d probes", err, calls.Load())
	}
	// Never answers: the self-test fails with the probe's error.
	err = selfTest(context.Background(), func(context.Context, time.Duration) error { return errors.New("dead") }, 10*time.Millisecond)
	if err == nil || err.Error() != "dead" {
		t.Errorf("dead path: %v", err)
	}
}

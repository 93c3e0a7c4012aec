// SPDX-License-Identifier: MIT

package main

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
	stalled := make(chan error, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	go watchdog(ctx, probe, time.Millisecond, 3, stalled)
	select {
	case err := <-stalled:
		if err == nil || calls.Load() != 6 {
			t.Errorf("stalled after %d probes (%v), want after probe 6", calls.Load(), err)
		}
	case <-ctx.Done():
		t.Fatal("the watchdog never reported the stall")
	}

	// A healthy path is never reported.
	stalled = make(chan error, 1)
	ctx2, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	watchdog(ctx2, func(context.Context) error { return nil }, time.Millisecond, 3, stalled)
	select {
	case err := <-stalled:
		t.Errorf("healthy path reported: %v", err)
	default:
	}
}

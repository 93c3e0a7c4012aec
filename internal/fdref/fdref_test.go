// SPDX-License-Identifier: MIT

package fdref

import (
	"sync"
	"sync/atomic"
	"testing"
)

func TestRef(t *testing.T) {
	var r Ref
	if !r.Pin() || !r.Pin() {
		t.Fatal("an open Ref refused a pin")
	}
	if first, now := r.Shut(); !first || now {
		t.Fatalf("Shut with two pins: first %v, closeNow %v; want true, false", first, now)
	}
	if first, _ := r.Shut(); first {
		t.Error("a second Shut said it was the first")
	}
	if r.Pin() {
		t.Error("a closing Ref took a pin")
	}
	if r.Unpin() {
		t.Error("the first of two Unpins said to close")
	}
	if !r.Unpin() {
		t.Error("the last Unpin of a closing Ref did not say to close")
	}
	r.Reset(true)
	if first, now := r.Shut(); !first || !now {
		t.Errorf("Shut with no pin: first %v, closeNow %v; want true, true", first, now)
	}
	r.Reset(false)
	if r.Pin() {
		t.Error("a Ref reset closed took a pin")
	}
}

// TestRefCloseOnce: pins from many goroutines racing one Shut; exactly one
// caller is told to close, after every pin taken was dropped (run with
// -race).
func TestRefCloseOnce(t *testing.T) {
	for range 100 {
		var r Ref
		var closes, inUse atomic.Int32
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 100 {
					if !r.Pin() {
						return
					}
					inUse.Add(1)
					inUse.Add(-1)
					if r.Unpin() {
						if inUse.Load() != 0 {
							t.Error("told to close while a pin was held")
						}
						closes.Add(1)
					}
				}
			}()
		}
		if _, now := r.Shut(); now {
			closes.Add(1)
		}
		wg.Wait()
		if closes.Load() != 1 {
			t.Fatalf("%d callers were told to close, want 1", closes.Load())
		}
	}
}

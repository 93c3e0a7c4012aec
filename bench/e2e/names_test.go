// SPDX-License-Identifier: MIT

package e2e

import (
	"slices"
	"strings"
	"testing"
)

func TestBlockNames(t *testing.T) {
	a := BlockNames(20_000)
	b := BlockNames(1_000)
	if !slices.Equal(a[:1000], b) {
		t.Fatal("BlockNames(n) is not a prefix of BlockNames(m)")
	}
	seen := map[string]bool{}
	for _, n := range a {
		if seen[n] {
			t.Fatalf("duplicate %q", n)
		}
		seen[n] = true
		if strings.HasSuffix(n, ".example") || len(n) > 253 {
			t.Fatalf("bad name %q", n)
		}
	}
	// No name is a label-boundary suffix of another: each list entry
	// blocks its own subtree only.
	for _, n := range a {
		for i := strings.IndexByte(n, '.'); i >= 0; {
			if seen[n[i+1:]] {
				t.Fatalf("%q is under %q", n, n[i+1:])
			}
			j := strings.IndexByte(n[i+1:], '.')
			if j < 0 {
				break
			}
			i += 1 + j
		}
	}
	if got := BlockedSample(a, 1000, 10); len(got) != 10 || got[0] != a[0] || got[9] != a[900] {
		t.Errorf("BlockedSample: %v", got)
	}
}

func TestStat(t *testing.T) {
	s := stat([]float64{3, 1, 2})
	if s.Med != 2 || s.Min != 1 || s.Max != 3 || s.N != 3 {
		t.Errorf("%+v", s)
	}
	if s := stat([]float64{1, 2, 3, 4}); s.Med != 2.5 {
		t.Errorf("even: %+v", s)
	}
	if s := stat(nil); s.N != 0 {
		t.Errorf("empty: %+v", s)
	}
}

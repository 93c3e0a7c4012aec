// SPDX-License-Identifier: MIT

package filter

import (
	"bytes"
	"os"
	"runtime"
	"testing"
)

// loadReal builds a Set from both real lists (or skips).
func loadReal(b *testing.B) *Set {
	b.Helper()
	requireLists(b)
	s, _, err := LoadFiles(adguardList, hostsList)
	if err != nil {
		b.Fatal(err)
	}
	return s
}

func benchDecide(b *testing.B, name string, want Action) {
	s := loadReal(b)
	q := []byte(name)
	if d := s.Decide(q, 1); d.Action != want {
		b.Fatalf("Decide(%q) = %v, want %v", name, d.Action, want)
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = s.Decide(q, 1)
	}
}

// Hit: an exact hosts name. The set has exceptions, so the walk still
// probes every suffix up to the TLD.
func BenchmarkDecideHit(b *testing.B) { benchDecide(b, "adservice.google.nl", Block) }

// Miss: a typical name that no rule matches.
func BenchmarkDecideMiss(b *testing.B) { benchDecide(b, "www.example.org", Forward) }

// Deep: a ten-label subdomain of a subtree rule.
func BenchmarkDecideDeepSubdomain(b *testing.B) {
	benchDecide(b, "a.b.c.d.e.f.g.h.static.clickiocdn.com", Block)
}

// Exception: a name freed by an exception over a block of the other list.
func BenchmarkDecideException(b *testing.B) { benchDecide(b, "pagead.l.doubleclick.net", Forward) }

// Mixed: a rotation of hits, misses and deep names, defeating the branch
// predictor's and the cache's favourite single name.
func BenchmarkDecideMixed(b *testing.B) {
	s := loadReal(b)
	names := [][]byte{
		[]byte("adservice.google.nl"), []byte("www.example.org"), []byte("x.y.clickiocdn.com"),
		[]byte("pagead.l.doubleclick.net"), []byte("api.github.com"), []byte("www.facebook.com"),
		[]byte("cdn.jsdelivr.net"), []byte("a.b.c.d.google-analytics.com"),
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		_ = s.Decide(names[i&7], 1)
		i++
	}
}

// BuildReal: parse both lists and build. heap-B is the live heap a built
// Set retains once its Builder is garbage (measured on a separate build
// after the timed loop).
func BenchmarkBuildReal(b *testing.B) {
	requireLists(b)
	ag, err := os.ReadFile(adguardList)
	if err != nil {
		b.Fatal(err)
	}
	hs, err := os.ReadFile(hostsList)
	if err != nil {
		b.Fatal(err)
	}
	build := func() *Set {
		bl := NewBuilder()
		if _, err := bl.ParseList(bytes.NewReader(ag), adguardList, nil); err != nil {
			b.Fatal(err)
		}
		if _, err := bl.ParseList(bytes.NewReader(hs), hostsList, nil); err != nil {
			b.Fatal(err)
		}
		return bl.Build()
	}
	b.SetBytes(int64(len(ag) + len(hs)))
	b.ReportAllocs()
	for b.Loop() {
		_ = build()
	}
	b.StopTimer()
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	s := build()
	runtime.GC()
	runtime.ReadMemStats(&m1)
	b.ReportMetric(float64(m1.HeapAlloc-m0.HeapAlloc), "heap-B")
	b.ReportMetric(float64(s.Names()), "names")
	runtime.KeepAlive(s)
}

// Figures: bench/RESULTS.md, "Filter engine" (scripts/bench.sh runs the
// Decide, BuildReal and Million benchmarks three times).

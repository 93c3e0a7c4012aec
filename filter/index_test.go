// SPDX-License-Identifier: MIT

package filter

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// slowDecide decides q through walkNames only: the one-suffix-at-a-time
// walk that Explain uses, the reference for the staged walk.
func slowDecide(s *Set, q *Query) Decision {
	var ex explainer
	return s.decide(q, &ex)
}

// randomName draws names of the shapes that stress suffixHashes: labels
// of 0-20 bytes (empty ones too), names shorter than 8 bytes, deep names
// past fastLabels, up to 255 bytes.
func randomName(rng *rand.Rand, labels []string) []byte {
	var b []byte
	n := 1 + rng.IntN(20)
	for i := range n {
		if i > 0 {
			b = append(b, '.')
		}
		switch rng.IntN(4) {
		case 0:
			b = append(b, labels[rng.IntN(len(labels))]...)
		case 1:
			b = append(b, strings.Repeat("x", rng.IntN(21))...)
		default:
			for range rng.IntN(12) {
				b = append(b, "abcdefghij-_0123456789"[rng.IntN(22)])
			}
		}
	}
	if len(b) > 255 {
		b = b[:255]
	}
	return b
}

func TestSuffixHashes(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	labels := []string{"com", "example", "ads", "a", "doubleclick", "co", "uk", "longlabel-of-twenty1"}
	for range 20000 {
		name := randomName(rng, labels)
		var starts [fastLabels]uint8
		var hs [fastLabels]uint64
		ns := suffixHashes(name, &starts, &hs)
		want := []int{0}
		for i, c := range name {
			if c == '.' {
				want = append(want, i+1)
			}
		}
		if len(want) > fastLabels {
			if ns != 0 {
				t.Fatalf("%q: %d labels taken, want refusal", name, len(want))
			}
			continue
		}
		if ns != len(want) {
			t.Fatalf("%q: %d labels, want %d", name, ns, len(want))
		}
		for j, at := range want {
			if int(starts[j]) != at || hs[j] != nameHash(name[at:]) {
				t.Fatalf("%q: suffix %d at %d hash %x, want at %d hash %x", name, j, starts[j], hs[j], at, nameHash(name[at:]))
			}
		}
	}
}

// The staged walk decides as the reference walk does, on both real lists
// and on a hosts-only (plainOnly) set, for names around listed ones.
func TestStagedMatchesWalk(t *testing.T) {
	requireLists(t)
	real, _, err := LoadFiles(adguardList, hostsList)
	if err != nil {
		t.Fatal(err)
	}
	plain, _, err := LoadFiles(hostsList)
	if err != nil {
		t.Fatal(err)
	}
	// Plain block rules beside patterns: walkStaged's early exit.
	b := NewBuilder()
	for _, p := range []string{hostsList} {
		if err := b.LoadFile(ListOptions{Name: p}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.ParseList(strings.NewReader("/^ads?[0-9]*\\./\n||tr*ck.example^\n"), "patterns", nil); err != nil {
		t.Fatal(err)
	}
	withPatterns := b.Build()
	if !plain.plainOnly || real.plainOnly || !withPatterns.plainOnly || !withPatterns.hasPatterns {
		t.Fatalf("plainOnly: hosts %v, both lists %v, hosts and patterns %v/%v", plain.plainOnly, real.plainOnly, withPatterns.plainOnly, withPatterns.hasPatterns)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for _, s := range []*Set{real, plain, withPatterns} {
		names := setNames(s)
		var labels []string
		for _, n := range names[:min(len(names), 2000)] {
			labels = append(labels, strings.Split(n, ".")...)
		}
		blocked := 0
		for i := range 20000 {
			var name []byte
			switch i % 3 {
			case 0:
				name = []byte(names[rng.IntN(len(names))])
			case 1:
				name = append(randomName(rng, labels[:50]), '.')
				name = append(name, names[rng.IntN(len(names))]...)
			default:
				name = randomName(rng, labels)
			}
			if len(name) > 255 {
				name = name[len(name)-255:]
			}
			q := Query{Name: name, QType: uint16(1 + 27*(i&1))}
			got, want := s.DecideQuery(&q), slowDecide(s, &q)
			if !sameDecision(got, want) {
				t.Fatalf("%q: staged %+v, reference %+v", name, got, want)
			}
			if got.Action == Block {
				blocked++
			}
		}
		if blocked < 5000 {
			t.Fatalf("only %d of 20000 names blocked: the test does not reach the rules", blocked)
		}
	}
}

// A less specific rule of a stronger class beats a more specific one: the
// staged walk must not stop at the first hit unless the set is plainOnly.
func TestStagedPrecedence(t *testing.T) {
	list := "||ads.example.org^\n@@||example.org^\n||tracker.example.net^$important\n@@||example.net^\n" +
		"||a.b.example.com^\n@@||b.example.com^$important\n|x.example.com^\n||example.com^\n"
	s, _ := build(t, list)
	for _, c := range []struct {
		name string
		want Action
	}{
		{"x.ads.example.org", Forward},
		{"ads.example.org", Forward},
		{"tracker.example.net", Block},
		{"c.a.b.example.com", Forward},
		{"y.x.example.com", Block},
		{"x.example.com", Block},
	} {
		q := Query{Name: []byte(c.name), QType: 1}
		got, want := s.DecideQuery(&q), slowDecide(s, &q)
		if got.Action != c.want || !sameDecision(got, want) {
			t.Errorf("%s: staged %+v, reference %+v, want %v", c.name, got, want, c.want)
		}
	}
}

func sameDecision(a, b Decision) bool {
	if a.Action != b.Action || a.Mode != b.Mode || a.Rule != b.Rule || a.Rcode != b.Rcode || a.TTL != b.TTL || a.EDE != b.EDE ||
		len(a.Addrs) != len(b.Addrs) || !bytes.Equal(a.CNAME, b.CNAME) || !bytes.Equal(a.PTR, b.PTR) || len(a.TXT) != len(b.TXT) {
		return false
	}
	for i := range a.Addrs {
		if a.Addrs[i] != b.Addrs[i] {
			return false
		}
	}
	for i := range a.TXT {
		if !bytes.Equal(a.TXT[i], b.TXT[i]) {
			return false
		}
	}
	return true
}

// FuzzDecidePaths: for any list and any name, the staged walk and the
// reference walk agree.
func FuzzDecidePaths(f *testing.F) {
	f.Add([]byte("||example.org^\n@@||good.example.org^\n|exact.example^\n"), []byte("a.good.example.org"))
	f.Add([]byte("0.0.0.0 a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.example\n"), []byte("a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.example"))
	f.Add([]byte("||longlabel-of-twenty1.example^$important\n@@||x.longlabel-of-twenty1.example^\n"), []byte("x.longlabel-of-twenty1.example"))
	f.Add([]byte("exact.example\n||ex.co^\n"), []byte("ex.co"))
	f.Add([]byte("||ads.example.org^\n@@||example.org^\n"), []byte("x.ads.example.org"))
	f.Add([]byte("||x.example^$dnsrewrite=1.2.3.4\n||x.example^$dnstype=AAAA\n"), []byte("..x.example"))
	f.Add([]byte("||example^$dnsrewrite=1.1.1.1\n||a.example^$dnsrewrite=2.2.2.2\n@@||a.example^$dnsrewrite=2.2.2.2\n/a/$dnsrewrite=3.3.3.3\n"), []byte("b.a.example"))
	f.Add([]byte("192.0.2.7 nas.home\n2001:db8::7 nas.home\n||home^$process=x\n"), []byte("7.2.0.192.in-addr.arpa"))
	f.Fuzz(func(t *testing.T, list, name []byte) {
		b := NewBuilder()
		if _, err := b.ParseList(bytes.NewReader(list), "fuzz", nil); err != nil {
			return
		}
		s := b.Build()
		if len(name) > 255 {
			name = name[:255]
		}
		for _, qt := range []uint16{1, 28, 16} {
			q := Query{Name: name, QType: qt}
			if got, want := s.DecideQuery(&q), slowDecide(s, &q); !sameDecision(got, want) {
				t.Fatalf("%q type %d: staged %+v, reference %+v", name, qt, got, want)
			}
		}
	})
}

// onlyReader hides the size of a reader, so ParseList cannot presize and
// the Builder's arena and index grow (and re-tag) as lines come.
type onlyReader struct{ r *strings.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

func TestBuilderIndexGrows(t *testing.T) {
	var sb strings.Builder
	const n = 300_000
	for i := range n {
		fmt.Fprintf(&sb, "||n%d.grow.example^\n", i)
	}
	b := NewBuilder()
	bits0 := b.idx.unitBits
	if _, err := b.ParseList(onlyReader{strings.NewReader(sb.String())}, "grow", nil); err != nil {
		t.Fatal(err)
	}
	if b.idx.unitBits <= bits0 {
		t.Fatalf("unit bits %d -> %d: the arena did not outgrow them, the test misses the re-tag", bits0, b.idx.unitBits)
	}
	// A second list, on the thawed Builder, finds the names of the first.
	st, err := b.ParseList(strings.NewReader("||n7.grow.example^\n||new.grow.example^\n"), "again", nil)
	if err != nil || st.Duplicates != 1 {
		t.Fatalf("second list: %+v %v, want 1 duplicate", st, err)
	}
	s := b.Build()
	if s.Names() != n+1 {
		t.Fatalf("%d names, want %d", s.Names(), n+1)
	}
	for i := range n {
		if d := s.Decide(fmt.Appendf(nil, "x.n%d.grow.example", i), 1); d.Action != Block {
			t.Fatalf("n%d: %+v", i, d)
		}
	}
}

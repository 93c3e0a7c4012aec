// SPDX-License-Identifier: MIT

package querylog

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dnstun/dnstun/attrib"
)

// TestSince: a follower reads every entry once, in order, is told how many
// it missed when it falls behind the ring, and a number from the future
// (an earlier process's) is taken as "from now".
func TestSince(t *testing.T) {
	r := New(4)
	if got, last, lost := r.Since(0, 10); len(got) != 0 || last != 0 || lost != 0 {
		t.Fatalf("empty: %v %d %d", got, last, lost)
	}
	add := func(from, to int) {
		for i := from; i < to; i++ {
			e := entry(i)
			r.Add(&e)
		}
	}
	add(0, 3)
	got, last, lost := r.Since(0, 10)
	if len(got) != 3 || last != 3 || lost != 0 || got[0].Seq != 1 || got[2].Seq != 3 || got[2].Name != "q2.example.com" {
		t.Fatalf("first read: %+v last %d lost %d", got, last, lost)
	}
	if got, l2, _ := r.Since(last, 10); len(got) != 0 || l2 != last {
		t.Errorf("nothing new: %+v last %d", got, l2)
	}
	add(3, 5)
	got, last, _ = r.Since(last, 1) // n bounds a read
	if len(got) != 1 || got[0].Seq != 4 || last != 4 {
		t.Errorf("n=1: %+v last %d", got, last)
	}
	add(5, 12) // 12 added into 4 slots: 9..12 are kept; 5..8 were never read
	got, last, lost = r.Since(last, 10)
	if lost != 4 || len(got) != 4 || got[0].Seq != 9 || got[0].Name != "q8.example.com" || last != 12 {
		t.Errorf("behind: %+v last %d lost %d", got, last, lost)
	}
	if got, l, lost := r.Since(1<<40, 10); len(got) != 0 || l != 12 || lost != 0 {
		t.Errorf("future number: %+v last %d lost %d", got, l, lost)
	}
}

// TestOwnerLateLookup: an entry logged before attribution knew its process
// gets it when read; one logged with its owner keeps it.
func TestOwnerLateLookup(t *testing.T) {
	r := New(8)
	client := netip.MustParseAddrPort("198.19.53.1:40000")
	resolver := netip.MustParseAddrPort("198.19.53.53:53")
	known := &attrib.Owner{PID: 7, UID: 0, Name: "resolved", Exe: "/usr/lib/systemd/systemd-resolved"}
	late := &attrib.Owner{PID: 4242, UID: 1000, Name: "curl", Exe: "/usr/bin/curl"}
	r.Record(&Q{Time: 1, Client: client, Resolver: resolver, Proto: ProtoUDP, Name: []byte("a.example"), Owner: known})
	r.Record(&Q{Time: 2, Client: client, Resolver: resolver, Proto: ProtoTCP, Name: []byte("b.example")})
	var asked []attrib.Key
	r.SetOwnerLookup(func(k attrib.Key) *attrib.Owner {
		asked = append(asked, k)
		return late
	})
	got := r.Snapshot(2)
	if got[0].PID != 7 || got[0].Process != "resolved" || got[0].UID == nil || *got[0].UID != 0 {
		t.Errorf("known owner: %+v", got[0])
	}
	if got[1].PID != 4242 || got[1].Process != "curl" || got[1].Exe != "/usr/bin/curl" || *got[1].UID != 1000 || got[1].Proto != "tcp" {
		t.Errorf("late owner: %+v", got[1])
	}
	want := attrib.Key{Proto: ProtoTCP, Local: client, Remote: resolver}
	if len(asked) != 1 || asked[0] != want {
		t.Errorf("looked up %v, want only %v", asked, want)
	}
	r.SetOwnerLookup(nil)
	if got := r.Snapshot(1); got[0].PID != 0 || got[0].UID != nil {
		t.Errorf("no lookup: %+v", got[0])
	}
}

// TestRecordAllocs: logging with an owner allocates nothing.
func TestRecordAllocs(t *testing.T) {
	r := New(64)
	o := &attrib.Owner{PID: 1, Name: "x"}
	q := Q{Time: 1, Client: netip.MustParseAddrPort("198.19.53.1:40000"), Name: []byte("www.example.com"), Owner: o}
	if n := testing.AllocsPerRun(1000, func() { r.Record(&q) }); n != 0 {
		t.Errorf("Record allocates %v times", n)
	}
}

// TestFileRotation: the file is rotated before a line would take it past
// its size; Keep old files are kept, newest first, and every line is a
// whole JSON record.
func TestFileRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "q.log")
	lf, err := OpenFile(path, 1000, 2)
	if err != nil {
		t.Fatal(err)
	}
	const n = 40
	for i := range n {
		e := entry(i)
		rec := e.Export()
		rec.Seq = uint64(i + 1)
		if err := lf.Write(&rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := lf.Close(); err != nil {
		t.Fatal(err)
	}
	var seqs [][]uint64
	for _, name := range []string{path + ".2", path + ".1", path} {
		f, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		st, _ := f.Stat()
		if st.Size() > 1000 {
			t.Errorf("%s is %d bytes, over the 1000 bound", name, st.Size())
		}
		var s []uint64
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var r Record
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				t.Fatalf("%s: %q: %v", name, sc.Text(), err)
			}
			s = append(s, r.Seq)
		}
		f.Close()
		seqs = append(seqs, s)
	}
	if _, err := os.Stat(path + ".3"); err == nil {
		t.Error("a third old file was kept")
	}
	// The three files hold the newest records, in order, without a gap.
	var all []uint64
	for _, s := range seqs {
		all = append(all, s...)
	}
	if len(all) == 0 || all[len(all)-1] != n {
		t.Fatalf("records kept: %v", all)
	}
	for i := 1; i < len(all); i++ {
		if all[i] != all[i-1]+1 {
			t.Fatalf("records kept out of order or with a gap: %v", all)
		}
	}
	// Reopening appends (with room for the line: no rotation).
	lf, err = OpenFile(path, 1<<20, 2)
	if err != nil {
		t.Fatal(err)
	}
	before, _ := os.Stat(path)
	e := entry(99)
	rec := e.Export()
	lf.Write(&rec)
	lf.Close()
	after, _ := os.Stat(path)
	if after.Size() <= before.Size() {
		t.Errorf("reopen did not append: %d then %d bytes", before.Size(), after.Size())
	}
}

// TestFollow copies the ring into the file as it grows, and what was added
// just before the end too.
func TestFollow(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.log")
	lf, err := OpenFile(path, 1<<20, 1)
	if err != nil {
		t.Fatal(err)
	}
	r := New(16)
	pre := entry(0)
	r.Add(&pre) // before Follow starts: not copied
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Follow(ctx, r, lf, 5*time.Millisecond, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	time.Sleep(20 * time.Millisecond)
	for i := 1; i <= 30; i++ {
		e := entry(i)
		r.Add(&e)
		if i%10 == 0 {
			time.Sleep(10 * time.Millisecond)
		}
	}
	cancel()
	<-done
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 30 {
		t.Fatalf("%d lines, want 30:\n%s", len(lines), b)
	}
	for i, l := range lines {
		var rec Record
		if err := json.Unmarshal([]byte(l), &rec); err != nil || rec.Name != fmt.Sprintf("q%d.example.com", i+1) || rec.Seq != uint64(i+2) {
			t.Errorf("line %d: %s (%v)", i, l, err)
		}
	}
}

// TestFileRecovers: after a failed write (the file's directory gone), the
// next write opens the file again instead of failing for good.
func TestFileRecovers(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "logs")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "q.log")
	lf, err := OpenFile(path, 300, 1) // a rotation every line or two
	if err != nil {
		t.Fatal(err)
	}
	e := entry(1)
	rec := e.Export()
	if err := lf.Write(&rec); err != nil {
		t.Fatal(err)
	}
	// The directory goes: the rotation cannot reopen the file.
	os.RemoveAll(dir)
	var failed bool
	for range 3 {
		if lf.Write(&rec) != nil {
			failed = true
		}
	}
	if !failed {
		t.Fatal("writes into a removed directory all succeeded")
	}
	// It comes back: so does the log.
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := lf.Write(&rec); err != nil {
		t.Fatalf("the write after the directory came back: %v", err)
	}
	if err := lf.Close(); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(path); err != nil || !strings.Contains(string(b), rec.Name) {
		t.Errorf("the log after recovery: %q, %v", b, err)
	}
}

// SPDX-License-Identifier: MIT

package route

import (
	"errors"
	"os"
	"reflect"
	"testing"
	"time"
)

func TestJournalRoundTrip(t *testing.T) {
	dir := t.TempDir()
	if j, err := ReadJournal(dir); j != nil || err != nil {
		t.Fatalf("empty dir: %v %v", j, err)
	}
	p := PlanLinux(Config{Tun: "dnstun0", IPv4: true, IPv6: true, NFT: true})
	j := &Journal{PID: 42, BootID: "b", Started: time.Unix(1, 0).UTC(), Phase: "active", OS: "linux", Linux: &p, Tun: "dnstun0"}
	if err := WriteJournal(dir, j); err != nil {
		t.Fatal(err)
	}
	got, err := ReadJournal(dir)
	if err != nil || !reflect.DeepEqual(got, j) {
		t.Fatalf("read back %+v, %v", got, err)
	}
	if err := RemoveJournal(dir); err != nil {
		t.Fatal(err)
	}
	if j, _ := ReadJournal(dir); j != nil {
		t.Error("journal still there")
	}
	os.WriteFile(dir+"/journal.json", []byte("{broken"), 0o600)
	if _, err := ReadJournal(dir); err == nil {
		t.Error("a broken journal was accepted")
	}
}

func TestLockIsExclusive(t *testing.T) {
	dir := t.TempDir()
	l, err := TryLock(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := TryLock(dir); !errors.Is(err, ErrLocked) {
		t.Fatalf("second lock: %v, want ErrLocked", err)
	}
	l.Unlock()
	l2, err := TryLock(dir)
	if err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
	l2.Unlock()
}

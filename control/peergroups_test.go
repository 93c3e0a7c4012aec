// SPDX-License-Identifier: MIT

package control

import (
	"fmt"
	"os/user"
	"slices"
	"testing"
)

func TestCompleteGroups(t *testing.T) {
	full := make([]uint32, 16)
	for i := range full {
		full[i] = uint32(100 + i)
	}
	calls := 0
	dir := func(uid uint32) ([]uint32, error) {
		calls++
		if uid != 501 {
			return nil, fmt.Errorf("no such user %d", uid)
		}
		return append(slices.Clone(full), 20, 5353), nil // 5353: the control group, the 18th
	}
	// A list shorter than the kernel's limit is complete: no lookup.
	got, err := completeGroups(full[:3], 16, 501, dir)
	if err != nil || !slices.Equal(got, full[:3]) || calls != 0 {
		t.Errorf("short list: %v %v, %d lookups", got, err, calls)
	}
	// A full list may have been cut: the directory's groups are added once.
	got, err = completeGroups(full, 16, 501, dir)
	if err != nil || !slices.Contains(got, 5353) || len(got) != 18 || !slices.Equal(got[:16], full) {
		t.Errorf("full list: %v %v", got, err)
	}
	// A failed lookup keeps the kernel's list and says why.
	got, err = completeGroups(full, 16, 502, dir)
	if err == nil || !slices.Equal(got, full) {
		t.Errorf("failed lookup: %v %v", got, err)
	}
	if got, err := completeGroups(full, 16, 501, nil); err != nil || !slices.Equal(got, full) {
		t.Errorf("no lookup: %v %v", got, err)
	}
}

// userGroups against this machine's user database: root's groups include
// its primary group.
func TestUserGroups(t *testing.T) {
	u, err := user.LookupId("0")
	if err != nil {
		t.Skipf("no user database: %v", err)
	}
	got, err := userGroups(0)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(got, 0) && u.Gid == "0" {
		t.Errorf("root's groups %v lack gid 0", got)
	}
}

// SPDX-License-Identifier: MIT

package control

import (
	"fmt"
	"os/user"
	"slices"
	"strconv"
)

// completeGroups returns the groups to check a peer against: the kernel's
// list (kernel) and, when that list is full (n == limit, so groups may have
// been dropped), the user's groups as the directory knows them (lookup),
// so that a member of the control group whose 17th group it is is not
// refused. A failed lookup keeps the kernel's list and is returned for the
// log. It is a pure function of its arguments.
func completeGroups(kernel []uint32, limit int, uid uint32, lookup func(uid uint32) ([]uint32, error)) ([]uint32, error) {
	if len(kernel) < limit || lookup == nil {
		return kernel, nil
	}
	more, err := lookup(uid)
	if err != nil {
		return kernel, fmt.Errorf("uid %d has %d or more groups, more than the kernel reports; its full list: %w", uid, limit, err)
	}
	out := slices.Clone(kernel)
	for _, g := range more {
		if !slices.Contains(out, g) {
			out = append(out, g)
		}
	}
	return out, nil
}

// userGroups is the lookup of completeGroups: the user's groups from the
// system's user database. On darwin Go's os/user calls getgrouplist(3)
// through libSystem (also without cgo), which asks Directory Services, the
// same source the kernel's credential was built from.
func userGroups(uid uint32) ([]uint32, error) {
	u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10))
	if err != nil {
		return nil, err
	}
	ids, err := u.GroupIds()
	if err != nil {
		return nil, err
	}
	var out []uint32
	for _, s := range ids {
		n, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("group id %q of %s: %w", s, u.Username, err)
		}
		out = append(out, uint32(n))
	}
	return out, nil
}

// SPDX-License-Identifier: MIT

package control

// peer is a connecting process's credentials, as the kernel recorded them
// when it connected.
type peer struct {
	UID  uint32
	PID  int      // 0 when unknown
	GIDs []uint32 // primary and supplementary groups
}

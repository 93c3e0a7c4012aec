// SPDX-License-Identifier: MIT

package filter

// setNames lists the names of a Set's records (test helper).
func setNames(s *Set) []string {
	var out []string
	a := s.tab.arena
	for o := firstUnit * 4; o < len(a); o += recordSize(int(a[o+4])) {
		out = append(out, string(recName(a, uint32(o/4))))
	}
	return out
}

// SPDX-License-Identifier: MIT

package filter

// setNames lists the names of a Set's records (test helper).
func setNames(s *Set) []string {
	var out []string
	for u := range s.tab.arena.units() {
		out = append(out, string(s.tab.arena.name(u)))
	}
	return out
}

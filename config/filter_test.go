// SPDX-License-Identifier: MIT

package config

import (
	"testing"

	"github.com/dnstun/dnstun/filter"
)

// TestBlockModesMatchFilter keeps BlockModes in step with the filter.
func TestBlockModesMatchFilter(t *testing.T) {
	for _, m := range BlockModes {
		if _, err := filter.ParseBlockMode(m); err != nil {
			t.Errorf("config accepts %q, filter does not: %v", m, err)
		}
	}
	for _, m := range []string{"nxdomain", "null", "nodata", "refused", "NXDOMAIN", "bogus", ""} {
		_, ferr := filter.ParseBlockMode(m)
		f := Default()
		f.BlockMode = m
		cerr := f.Validate()
		if (ferr == nil) != (cerr == nil) {
			t.Errorf("%q: filter says %v, config says %v", m, ferr, cerr)
		}
	}
}

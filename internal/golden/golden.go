// SPDX-License-Identifier: MIT

// Package golden holds the test helpers for golden files and macOS output
// fixtures, shared by the packages whose plans and parsers are checked
// against them. It is a normal package, imported only by tests.
//
// Invariants: Check compares exactly (no normalisation); only
// `go test -update` writes files, and only under the calling package's
// testdata/.
package golden

import (
	"flag"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// Check compares got with testdata/NAME.golden of the package under test,
// or rewrites that file with -update.
func Check(t testing.TB, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from %s:\n--- got\n%s--- want\n%s", name, path, got, want)
	}
}

// MacFixture reads a fixture of real macOS output from
// internal/macos/testdata; their sources are in SOURCES.md there.
func MacFixture(t testing.TB, name string) string {
	t.Helper()
	_, self, _, _ := runtime.Caller(0)
	b, err := os.ReadFile(filepath.Join(filepath.Dir(self), "..", "macos", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

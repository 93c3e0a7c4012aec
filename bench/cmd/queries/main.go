// SPDX-License-Identifier: MIT

// Command queries writes the benchmark's generated files, so that any
// machine (a Mac, say) can run `dnstun bench` and dnstun with exactly the
// names of bench/RESULTS.md:
//
//	go run ./bench/cmd/queries -out DIR [-list 100000]
//
// DIR/blocklist.txt   the block list (plain domains, one per line)
// DIR/blocked.txt     10,000 listed names, "name A" per line
// DIR/forward.txt     10,000 names no list blocks, "name A" per line
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/dnstun/dnstun/bench/e2e"
)

func main() {
	out := flag.String("out", ".", "directory to write the files into")
	n := flag.Int("list", 100_000, "block list size")
	flag.Parse()
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fail(err)
	}
	list := strings.Join(e2e.BlockNames(*n), "\n") + "\n"
	if err := os.WriteFile(filepath.Join(*out, "blocklist.txt"), []byte(list), 0o644); err != nil {
		fail(err)
	}
	blocked, forward := e2e.QueryMixes(*n)
	for name, names := range map[string][]string{"blocked.txt": blocked, "forward.txt": forward} {
		f, err := os.Create(filepath.Join(*out, name))
		if err != nil {
			fail(err)
		}
		if err := e2e.WriteQueries(f, names); err != nil {
			fail(err)
		}
		if err := f.Close(); err != nil {
			fail(err)
		}
	}
	fmt.Printf("wrote %s/{blocklist,blocked,forward}.txt (%d listed names)\n", *out, *n)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "queries:", err)
	os.Exit(1)
}

// SPDX-License-Identifier: MIT

package tun

import (
	"os/exec"
	"time"
)

// configure gives the utun its MTU, addresses and routes with ifconfig and
// route (DarwinCommands), then proves the result (DarwinChecks): route add
// exits 0 when it fails, so only the checks show a missing route. The
// addresses and routes belong to the utun and vanish with it. The command
// lines and checks are tested on Linux (darwinplan_test.go);
// scripts/macos-check.sh checks the result on a Mac.
func configure(name string, cfg Config) error {
	run := func(argv []string) (string, error) {
		out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
		return string(out), err
	}
	return configureDarwin(run, time.Sleep, 2*time.Second, name, cfg)
}

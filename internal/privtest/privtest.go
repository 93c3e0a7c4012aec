// SPDX-License-Identifier: MIT

// Package privtest gates tests that need root, a TUN device and network
// namespaces.
package privtest

import (
	"os"
	"os/exec"
	"runtime"
	"testing"
)

// EnvRequire names the variable that turns a skip into a failure: CI sets
// DNSTUN_REQUIRE_PRIV=1 so privileged tests can never pass by skipping.
const EnvRequire = "DNSTUN_REQUIRE_PRIV"

// Missing returns why privileged tests cannot run here, or "" if they can.
func Missing() string {
	switch {
	case runtime.GOOS != "linux":
		return "needs Linux network namespaces"
	case os.Geteuid() != 0:
		return "needs root (network namespaces and a TUN device); run as root, e.g. sudo -E go test ./..."
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		return "needs /dev/net/tun: " + err.Error()
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return "needs the ip command (Debian package iproute2)"
	}
	return ""
}

// RequirePriv skips t when it cannot run here, or fails it instead when
// DNSTUN_REQUIRE_PRIV=1.
func RequirePriv(t testing.TB) {
	t.Helper()
	why := Missing()
	if why == "" {
		return
	}
	if os.Getenv(EnvRequire) == "1" {
		t.Fatalf("privileged test cannot run (%s) and %s=1 forbids skipping", why, EnvRequire)
	}
	t.Skip("skipping privileged test: " + why)
}

// RequireTool returns the path of the program name, from the Debian
// package pkg; when it is not installed it skips t, or fails it when
// DNSTUN_REQUIRE_PRIV=1 (CI installs every tool the tests use).
func RequireTool(t testing.TB, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	why := "needs " + name + " (Debian package " + pkg + ")"
	if os.Getenv(EnvRequire) == "1" {
		t.Fatalf("test cannot run (%s) and %s=1 forbids skipping", why, EnvRequire)
	}
	t.Skip("skipping: " + why)
	return ""
}

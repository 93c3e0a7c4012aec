// SPDX-License-Identifier: MIT

// Package macos parses the text macOS's networking tools print: scutil's
// dynamic-store dumps ("show <key>"), scutil --dns, route -n get and
// ifconfig. dnstun's darwin code (tun, upstream, route) shells out to these
// tools; keeping their parsers here, in files without a _darwin suffix,
// lets them be tested on Linux against fixtures of real macOS output
// (testdata/, each fixture's source in testdata/SOURCES.md).
//
// Invariants:
//   - Standard library only; no function runs a command or reads a file.
//   - A parser never panics, whatever its input (fuzzed); text it does not
//     understand is skipped where macOS may add fields, and is an error
//     where it means the command failed or printed something else.
//   - Addresses are returned as netip values with their IPv6 zone kept
//     ("fe80::1%en0").
package macos

// SPDX-License-Identifier: MIT

package attrib

import (
	"encoding/binary"
	"fmt"
)

// Parsers of what Linux's /proc gives, without a build tag so that they
// are tested and fuzzed everywhere.

// parseDirents calls fn with the name of each struct linux_dirent64 in b
// (what getdents64 returned): d_ino u64, d_off s64, d_reclen u16, d_type
// u8, then the NUL-terminated name. It stops at a malformed record and
// says so.
func parseDirents(b []byte, fn func(name []byte)) error {
	for len(b) > 0 {
		if len(b) < 19 {
			return fmt.Errorf("getdents64: %d bytes left, shorter than a dirent header", len(b))
		}
		n := int(binary.NativeEndian.Uint16(b[16:]))
		if n < 20 || n > len(b) {
			return fmt.Errorf("getdents64: record length %d out of range (%d bytes left)", n, len(b))
		}
		name := b[19:n]
		for i, c := range name {
			if c == 0 {
				name = name[:i]
				break
			}
		}
		fn(name)
		b = b[n:]
	}
	return nil
}

// parseSocketLink returns the inode of an fd link "socket:[12345]", and
// false for any other link.
func parseSocketLink(b []byte) (uint64, bool) {
	const prefix = "socket:["
	if len(b) < len(prefix)+2 || string(b[:len(prefix)]) != prefix || b[len(b)-1] != ']' {
		return 0, false
	}
	return parseUint(b[len(prefix) : len(b)-1])
}

// parseUint parses a decimal number of at most 19 digits.
func parseUint(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}

// trimComm returns /proc/PID/comm's content without its newline.
func trimComm(b []byte) string {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == 0) {
		b = b[:len(b)-1]
	}
	return string(b)
}

// SPDX-License-Identifier: MIT

package config

import _ "embed"

// Example is example.yaml: the documented reference of every key, and the
// default config `dnstun install` writes. It parses to DefaultFor(the
// running OS).
//
//go:embed example.yaml
var Example []byte

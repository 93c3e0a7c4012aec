// SPDX-License-Identifier: MIT

// Package config reads dnstun's configuration file: a YAML document holding
// everything the flags of `dnstun run` hold (see example.yaml, which is the
// documented reference and the default config that `dnstun install` writes).
//
// Invariants:
//   - Parsing is strict: an unknown key, a duplicate key, a value of the
//     wrong type, an alias or anchor, a second document or a bad value is an
//     error. Every error is an *Error naming the file, the line and the
//     column of the offending key or value, with a hint where one helps
//     ("did you mean ...?" for near-miss keys). Parse reports all errors it
//     finds (joined with errors.Join), in file order.
//   - A key that is absent keeps its default (Default); a key present with
//     an empty value is an error, never a silent reset.
//   - Parse returns a *File only when it is valid; Validate can be called
//     again after the caller changes fields (flags override the file), and
//     then cites the file's lines for keys that came from it.
//   - Values are kept as the user wrote them (strings for addresses), so a
//     File maps one to one onto `dnstun run`'s flags; Validate applies the
//     same rules parseRunFlags does, without touching the system.
//   - Nothing here reads anything but the named file: no resolv.conf, no
//     block lists, no network.
package config

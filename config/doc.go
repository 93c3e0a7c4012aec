// SPDX-License-Identifier: MIT

// Package config holds dnstun's settings: the one table of defaults
// (DefaultFor), the YAML file (see example.yaml, the documented reference
// and the default config that `dnstun install` writes), the flags of
// `dnstun run` (RunFlags, one per key of the file), and the one validator
// that turns them into Options.
//
// Invariants:
//   - Parsing is strict: an unknown key, a duplicate key, a value of the
//     wrong type, an alias or anchor, a second document or a bad value is an
//     error. Every error is an *Error naming the file, the line and the
//     column of the offending key or value (or the flag that set it), with
//     a hint where one helps ("did you mean ...?" for near-miss keys).
//     All errors found are reported (joined with errors.Join), in file
//     order.
//   - A key that is absent keeps its default; a key present with an empty
//     value is an error, never a silent reset.
//   - Flags override the file field by field (Flags.Options), then the
//     result is validated once: a value is accepted or refused alike from
//     the file and from its flag, and what is accepted is honoured as given
//     (the data path's own limits, such as engine.MaxPendingLimit, are the
//     validator's limits, so nothing is clamped later).
//   - Options is immutable once returned.
//   - Nothing here reads anything but the named file: no resolv.conf, no
//     block lists, no network.
package config

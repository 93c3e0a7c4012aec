// SPDX-License-Identifier: MIT

// Package daemon is one dnstun process, as a library: it loads the block
// lists, runs a session (the TUN or flow socket, the engine and, with
// capture, the steering) while enabled, serves the control socket, and
// follows reloads, list changes and the system's resolvers. cmd/dnstun
// only parses the command line into config.Options and calls New and Run;
// a host app written in Go can do the same.
//
// States: a Daemon is enabled (a session runs) or disabled (no TUN, no
// steering, the control socket still served). Enable and Disable move
// between them and persist the choice (Options.StateFile); Run starts in
// the persisted state and ends with ctx, Stop, a fatal session error (the
// watchdog, an engine that died) or, with ExitWhenDisabled, Disable.
//
// Invariants:
//   - Steering is withdrawn before the engine stops, whatever ends a
//     session, so DNS falls back to the system's resolvers first.
//   - Nothing is steered before the engine has answered a probe through
//     the TUN (route.StartCapture's self-test).
//   - A configuration, list or resolver list that fails to load never
//     replaces the one serving: reloads are all-or-nothing and serialised.
//   - The upstreams are never only dnstun's own addresses (a loop): such a
//     system resolver list keeps the last good one.
//   - Options are immutable; a reload swaps in a new *config.Options.
package daemon

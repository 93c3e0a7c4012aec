// SPDX-License-Identifier: MIT

// Package service installs and removes dnstun as a system service: a
// systemd unit on Linux, a launchd daemon on macOS (the equivalents of an
// OSSystemExtensionRequest's activation and deactivation requests).
//
// Invariants:
//   - InstallPlan and UninstallPlan are pure: they take the options and a
//     GOOS and return the files and commands, so both OSes' plans are
//     built and golden-tested on any machine. Apply is the only part that
//     touches the system.
//   - Apply writes every file under a root directory (DESTDIR-style; "/"
//     in production), atomically (temp file, fsync, rename), with the
//     plan's mode; it never overwrites a file marked IfAbsent (the user's
//     config), and uninstall removes the config only when purging.
//   - Apply's order is fixed: write Files, run Commands, remove Remove,
//     run After. Commands go through a Runner, so tests record them; a
//     command whose first word starts with "-" may fail (the "-" is
//     dropped before running), any other failure stops Apply.
//   - Exit status ExitDisabled (Linux) is what `dnstun run
//     --exit-when-disabled` exits with when dnstun is disabled; the unit
//     lists it in SuccessExitStatus and RestartPreventExitStatus, so
//     systemd neither restarts it nor marks it failed. launchd restarts
//     any non-zero exit under KeepAlive{SuccessfulExit=false}, so on macOS
//     that exit must be status 0 (ExitDisabledStatus("darwin") == 0).
package service

// SPDX-License-Identifier: MIT

// Package control is the host app's channel to the dnstun daemon, the
// equivalent of NEDNSProxyProvider's sendProviderMessage/handleAppMessage:
// a small versioned JSON protocol (PROTOCOL.md) over a unix stream socket,
// a Server that serves a Handler, and the Client host apps import.
//
// Invariants:
//   - Every connecting peer's credentials are checked by the kernel's
//     account (SO_PEERCRED on Linux, LOCAL_PEERCRED on darwin) before any
//     request is read; only uid 0 and members of the configured group
//     (primary or supplementary) get past it. A refused peer gets one
//     error response and the connection is closed; the refusal is logged.
//     The socket's mode (0600, or 0660 with the group) is a second line,
//     not the only one.
//   - One request and one response per line (newline-delimited JSON); a
//     request larger than MaxRequest, or a connection idle for longer than
//     the read timeout, is answered with an error and closed. A malformed
//     request never reaches the Handler.
//   - Every response carries "v" (the version this server speaks) and
//     either "ok":true with "data" or "ok":false with "error".
//   - Serve never removes a socket file another process listens on; it
//     removes a stale one. Close removes the socket file and waits for
//     every connection's goroutine.
//   - The Handler's methods may be called concurrently, from several
//     connections.
package control

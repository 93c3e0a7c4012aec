// SPDX-License-Identifier: MIT

// Package route will steer the machine's own port-53 traffic into dnstun's
// TUN (policy rules and a routing table of dnstun's own on Linux, a
// temporary dynamic-store resolver on macOS) and give the machine back when
// dnstun stops, crashes or is killed. It holds no code yet: today clients
// point at the virtual resolver, whose host routes package tun attaches to
// the TUN itself, so they vanish with it.
package route

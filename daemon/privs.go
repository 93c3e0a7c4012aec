// SPDX-License-Identifier: MIT

package daemon

import (
	"fmt"
	"strings"

	"github.com/dnstun/dnstun/config"
)

// Least privilege. dnstun starts as root; once Run has done its set-up
// (lock, cleanup, observers, control socket, the first session or none)
// the Linux daemon keeps only the capabilities that Privileges lists for
// its options, in its permitted and effective sets, on every thread; the
// inheritable and ambient sets are emptied, the bounding set is shrunk to
// the same capabilities (when the process may: CAP_SETPCAP) and
// no_new_privs is set, so no program it runs (nft, resolvectl) gets more.
// Set-up needs more than the rest of the run, and it is dropped: CAP_CHOWN
// (the control socket's group), CAP_NET_BIND_SERVICE for a metrics port
// below 1024 (bound once), CAP_SETPCAP (the drop itself) and everything
// else root has. The set is fixed at start: a reload that needs more (flow
// mode on a low port where tun mode ran, a dnstap socket) fails at the
// next enable with the error; restart dnstun for it.
//
// macOS has no capabilities: the daemon stays root there (the utun, the
// routes and the DNS settings need it).

// Capability is a Linux capability's number (linux/capability.h).
type Capability int

// The capabilities dnstun keeps or names.
const (
	CapChown          Capability = 0
	CapDacOverride    Capability = 1
	CapDacReadSearch  Capability = 2
	CapSetpcap        Capability = 8
	CapNetBindService Capability = 10
	CapNetAdmin       Capability = 12
	CapSysPtrace      Capability = 19
)

var capNames = map[Capability]string{
	CapChown:          "CAP_CHOWN",
	CapDacOverride:    "CAP_DAC_OVERRIDE",
	CapDacReadSearch:  "CAP_DAC_READ_SEARCH",
	CapSetpcap:        "CAP_SETPCAP",
	CapNetBindService: "CAP_NET_BIND_SERVICE",
	CapNetAdmin:       "CAP_NET_ADMIN",
	CapSysPtrace:      "CAP_SYS_PTRACE",
}

func (c Capability) String() string {
	if n, ok := capNames[c]; ok {
		return n
	}
	return fmt.Sprintf("capability %d", int(c))
}

// Privilege is a capability the daemon keeps after set-up, and why.
type Privilege struct {
	Cap Capability
	Why string
}

func (p Privilege) String() string { return p.Cap.String() + " (" + p.Why + ")" }

// Privileges returns the capabilities the Linux daemon keeps after set-up
// with options o, each with the reason, in capability order. Everything
// else is dropped.
func Privileges(o *config.Options) []Privilege {
	var ps []Privilege
	if o.Dnstap != "" && strings.HasPrefix(o.Dnstap, "unix:") {
		// connect(2) to a socket file needs write permission on it.
		ps = append(ps, Privilege{CapDacOverride, "reconnects to the dnstap collector's socket " + strings.TrimPrefix(o.Dnstap, "unix:") +
			", which may belong to another user, whenever the collector restarts"})
	}
	if o.Attribution {
		ps = append(ps, Privilege{CapDacReadSearch, "attribution lists other users' /proc/PID/fd"})
	}
	if o.Mode == "flow" {
		if o.Listen.Port() < 1024 {
			ps = append(ps, Privilege{CapNetBindService, fmt.Sprintf("flow mode binds port %d (%v) at each enable", o.Listen.Port(), o.Listen)})
		}
	} else {
		why := "creates the TUN with its addresses and routes at each enable; SO_MARK on every upstream socket"
		if o.Capture.Enabled {
			why += "; capture's policy rules, the monitor that puts deleted rules back, per-device sysctls, nftables (nft) and systemd-resolved (resolvectl)"
		}
		ps = append(ps, Privilege{CapNetAdmin, why})
	}
	if o.Attribution {
		ps = append(ps, Privilege{CapSysPtrace, "attribution reads other processes' /proc/PID/fd links and /proc/PID/exe"})
	}
	return ps
}

// privReport is what a drop did.
type privReport struct {
	kept     []Capability // in the permitted and effective sets now
	missing  []Capability // wanted but not held at start (a service manager's bounding set)
	bounding bool         // the bounding set was shrunk too
	threads  int          // threads verified in /proc/self/task
}

// dropPrivileges keeps only what Privileges(o) lists; see the comment at
// the top of this file. It never fails Run: a drop that cannot be done is
// logged as an error, and the daemon goes on with what it has.
func (d *Daemon) dropPrivileges(o *config.Options) {
	keep := Privileges(o)
	rep, err := dropCapabilities(keep)
	if err == errNoCapabilities {
		return
	}
	if err != nil {
		d.log.Error("capabilities NOT dropped: dnstun keeps every privilege it started with", "err", err)
		return
	}
	why := make([]string, 0, len(keep))
	for _, p := range keep {
		why = append(why, p.String())
	}
	d.log.Info("capabilities dropped to what the options need", "kept", capList(rep.kept), "why", strings.Join(why, "; "),
		"bounding_set_shrunk", rep.bounding, "threads", rep.threads)
	if len(rep.missing) > 0 {
		d.log.Warn("capabilities wanted but not held (the service manager's bounding set?): what needs them will fail", "missing", capList(rep.missing))
	}
}

func capList(cs []Capability) string {
	s := make([]string, len(cs))
	for i, c := range cs {
		s[i] = c.String()
	}
	return strings.Join(s, ",")
}

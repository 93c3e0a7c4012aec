// SPDX-License-Identifier: MIT

package route

import (
	"fmt"
	"net/netip"
	"strings"
)

// Defaults for Config's zero values; see ../shared research notes for why.
const (
	// DefaultTable is dnstun's routing table (Tailscale uses 52, sing-box
	// 2022, wg-quick 51820).
	DefaultTable = 53053
	// DefaultPref is the priority of the UDP capture rules, DefaultPref+1
	// that of the TCP ones: before Tailscale (5210-5270) and sing-box
	// (9000+), after OpenWrt mwan3 (1000-2xxx).
	DefaultPref = 5101
	// DefaultMark is the SO_MARK of dnstun's own sockets, DefaultMask the
	// bits the capture rules test: a packet with any of them set is not
	// captured.
	DefaultMark = 0x53000000
	DefaultMask = 0xffff0000
	// NFTMark is what the nftables table sets on packets it steers and on
	// packets coming out of the TUN; its rule (at DefaultPref-1) sends them
	// to the table.
	NFTMark = 0x54000000
	NFTMask = 0xff000000
	// Protocol tags every rule and route dnstun adds (unused in rt_protos).
	Protocol = 83
	// NFTTable is the name of dnstun's nftables table (family inet).
	NFTTable = "dnstun"
)

// Config says what to steer.
type Config struct {
	Tun   string // the TUN device
	Table int
	// Pref is the priority of the UDP/53 rules; the TCP/53 rules take
	// Pref+1 and the nftables mark rule Pref-1, so every rule has a
	// priority of its own within its family.
	Pref       int
	Mark, Mask uint32
	IPv4, IPv6 bool
	// Resolvers are the virtual resolver addresses (used on macOS and for
	// systemd-resolved registration).
	Resolvers []netip.Addr
	// NFT adds the nftables owner table that also catches sockets pinned to
	// an interface with IP_UNICAST_IF (systemd-resolved's per-link
	// sockets), which policy rules cannot see.
	NFT bool
}

func (c *Config) setDefaults() {
	if c.Table == 0 {
		c.Table = DefaultTable
	}
	if c.Pref == 0 {
		c.Pref = DefaultPref
	}
	if c.Mark == 0 {
		c.Mark = DefaultMark
	}
	if c.Mask == 0 {
		c.Mask = DefaultMask
	}
}

// Rule is one policy routing rule.
type Rule struct {
	Family     int // 4 or 6
	Pref       int
	IifLo      bool // match only locally generated packets
	Mark, Mask uint32
	IPProto    string // "udp", "tcp" or "" (any)
	Dport      uint16 // 0 = any
	Table      int
}

func (r Rule) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "ip -%d rule add pref %d", r.Family, r.Pref)
	if r.IifLo {
		b.WriteString(" iif lo")
	}
	fmt.Fprintf(&b, " fwmark %#x/%#x", r.Mark, r.Mask)
	if r.IPProto != "" {
		fmt.Fprintf(&b, " ipproto %s", r.IPProto)
	}
	if r.Dport != 0 {
		fmt.Fprintf(&b, " dport %d", r.Dport)
	}
	fmt.Fprintf(&b, " lookup %d proto %d", r.Table, Protocol)
	return b.String()
}

// Route is a default route through a device in a table.
type Route struct {
	Family int
	Table  int
	Dev    string
}

func (r Route) String() string {
	return fmt.Sprintf("ip -%d route replace default dev %s table %d proto %d", r.Family, r.Dev, r.Table, Protocol)
}

// Sysctl is a per-device setting (never a global one).
type Sysctl struct{ Key, Value string }

func (s Sysctl) String() string { return "sysctl -w " + s.Key + "=" + s.Value }

// LinuxPlan is everything capture changes on Linux, in the order applied.
// Withdrawing goes in reverse order; each step on its own is fail-open.
type LinuxPlan struct {
	Sysctls []Sysctl
	Routes  []Route
	Rules   []Rule
	// NFT holds the nft commands that build the owner table, one per
	// line, fed to a long-lived `nft -i` child; empty without nftables.
	NFT []string
}

// PlanLinux computes the Linux capture plan. It is a pure function.
func PlanLinux(c Config) LinuxPlan {
	c.setDefaults()
	var p LinuxPlan
	fams := []int{}
	if c.IPv4 {
		fams = append(fams, 4)
	}
	if c.IPv6 {
		fams = append(fams, 6)
	}
	if c.NFT {
		// Marked replies from the TUN must pass reverse-path checks with
		// their mark (research E10); per device only.
		p.Sysctls = append(p.Sysctls, Sysctl{"net.ipv4.conf." + c.Tun + ".src_valid_mark", "1"})
	}
	for _, f := range fams {
		p.Routes = append(p.Routes, Route{Family: f, Table: c.Table, Dev: c.Tun})
	}
	for _, f := range fams {
		if c.NFT {
			p.Rules = append(p.Rules, Rule{Family: f, Pref: c.Pref - 1, Mark: NFTMark, Mask: NFTMask, Table: c.Table})
		}
		// UDP/53 and TCP/53, each rule with its own priority (a rule is
		// told apart by it when the monitor puts deleted ones back) and
		// the same selector otherwise: locally generated, none of the
		// mask's bits set (dnstun's own UDP and TCP upstream sockets carry
		// Mark), so nothing loops.
		for i, proto := range []string{"udp", "tcp"} {
			p.Rules = append(p.Rules, Rule{Family: f, Pref: c.Pref + i, IifLo: true, Mark: 0, Mask: c.Mask, IPProto: proto, Dport: 53, Table: c.Table})
		}
	}
	if c.NFT {
		p.NFT = nftCommands(c)
	}
	return p
}

// nftCommands build the owner table. The output chain marks locally
// generated UDP/53 and TCP/53 that policy rules may miss, except dnstun's
// own (marked) traffic and local destinations (stubs); the prerouting
// chain marks everything coming out of the TUN, UDP replies and TCP
// segments alike, so that reverse-path filtering finds the route back
// through it. One command per line: `nft -i` reads lines; the prerouting
// rule comes last (startNFT waits for it).
func nftCommands(c Config) []string {
	t := "inet " + NFTTable
	return []string{
		"add table " + t + " { flags owner; }",
		"add chain " + t + " output { type route hook output priority mangle; policy accept; }",
		fmt.Sprintf("add rule %s output meta mark & %#x != 0 return", t, c.Mask),
		"add rule " + t + " output fib daddr type local return",
		fmt.Sprintf("add rule %s output meta l4proto udp th dport 53 meta mark set meta mark | %#x", t, NFTMark),
		fmt.Sprintf("add rule %s output meta l4proto tcp th dport 53 meta mark set meta mark | %#x", t, NFTMark),
		"add chain " + t + " prerouting { type filter hook prerouting priority raw - 10; policy accept; }",
		fmt.Sprintf("add rule %s prerouting iifname \"%s\" meta mark set meta mark | %#x", t, c.Tun, NFTMark),
	}
}

// String renders the plan as the equivalent commands.
func (p LinuxPlan) String() string {
	var b strings.Builder
	for _, s := range p.Sysctls {
		fmt.Fprintln(&b, s)
	}
	for _, r := range p.Routes {
		fmt.Fprintln(&b, r)
	}
	for _, r := range p.Rules {
		fmt.Fprintln(&b, r)
	}
	if len(p.NFT) > 0 {
		fmt.Fprintf(&b, "nft -i <<EOF (kept open: the table lives as long as dnstun)\n%s\nEOF\n", strings.Join(p.NFT, "\n"))
	}
	return b.String()
}

// ResolvedPlan registers the TUN with systemd-resolved as the resolver for
// every domain ("~."), so that its stub (127.0.0.53, which routing cannot
// steer) sends its queries through dnstun. resolved drops the link's
// settings when the link disappears.
func ResolvedPlan(tun string, resolvers []netip.Addr) [][]string {
	dnsCmd := []string{"resolvectl", "dns", tun}
	for _, r := range resolvers {
		dnsCmd = append(dnsCmd, r.String())
	}
	return [][]string{
		dnsCmd,
		{"resolvectl", "domain", tun, "~."},
		{"resolvectl", "default-route", tun, "true"},
		{"resolvectl", "llmnr", tun, "false"},
		{"resolvectl", "mdns", tun, "false"},
		{"resolvectl", "flush-caches"},
	}
}

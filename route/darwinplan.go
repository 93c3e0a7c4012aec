// SPDX-License-Identifier: MIT

package route

import (
	"fmt"
	"net/netip"
	"strings"
)

// This file has no _darwin suffix on purpose: the darwin plan is OS-neutral
// and tested on Linux; only the applier (steer_darwin.go) is darwin-only.

// DarwinConfig says what to publish on macOS.
type DarwinConfig struct {
	// ServiceID names dnstun's dynamic-store service; the DNS key is
	// State:/Network/Service/<ServiceID>/DNS.
	ServiceID string
	// Resolvers are the virtual resolver addresses routed into the utun.
	Resolvers []netip.Addr
	// Order is the resolver's SupplementalMatchOrders value: lower comes
	// first; the primary service's default resolver uses 200000.
	Order int
}

// DefaultServiceID is dnstun's fixed dynamic-store service name: fixed, so
// cleanup can always find and remove a key an earlier instance left.
const DefaultServiceID = "dnstun-dns-filter"

// DarwinPlan is what capture does on macOS.
type DarwinPlan struct {
	// Key is the dynamic-store key published.
	Key string
	// Script is fed to a long-lived `scutil` child whose stdin stays open:
	// the key is temporary, so configd removes it when that session ends,
	// also when dnstun is killed.
	Script string
	// Remove is the script that withdraws the key on a clean stop.
	Remove string
	// Flush drops answers the system cached before and after steering.
	Flush [][]string
}

// PlanDarwin computes the macOS plan. It is a pure function.
func PlanDarwin(c DarwinConfig) DarwinPlan {
	if c.ServiceID == "" {
		c.ServiceID = DefaultServiceID
	}
	if c.Order == 0 {
		c.Order = 1
	}
	key := "State:/Network/Service/" + c.ServiceID + "/DNS"
	addrs := make([]string, len(c.Resolvers))
	for i, a := range c.Resolvers {
		addrs[i] = a.String()
	}
	var b strings.Builder
	b.WriteString("d.init\n")
	fmt.Fprintf(&b, "d.add ServerAddresses * %s\n", strings.Join(addrs, " "))
	// An empty match domain makes this a default resolver, ordered before
	// the primary service's (Apple: "it becomes the default domain").
	b.WriteString("d.add SupplementalMatchDomains * \"\"\n")
	fmt.Fprintf(&b, "d.add SupplementalMatchOrders * # %d\n", c.Order)
	fmt.Fprintf(&b, "add %s temporary\n", key)
	return DarwinPlan{
		Key:    key,
		Script: b.String(),
		Remove: "remove " + key + "\n",
		Flush: [][]string{
			{"/usr/bin/dscacheutil", "-flushcache"},
			{"/usr/bin/killall", "-HUP", "mDNSResponder"},
		},
	}
}

func (p DarwinPlan) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "scutil <<EOF (kept open: the key lives as long as dnstun)\n%sEOF\n", p.Script)
	for _, c := range p.Flush {
		fmt.Fprintln(&b, strings.Join(c, " "))
	}
	return b.String()
}

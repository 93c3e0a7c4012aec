// SPDX-License-Identifier: MIT

package route

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/dnstun/dnstun/internal/macos"
)

// This file has no _darwin suffix on purpose: the darwin plan, every scutil
// script capture sends, and the checks of scutil's answers are OS-neutral
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
	// PID is the publishing dnstun's process id, stored in the key under
	// MarkerKey so that a sweep removes the key only when it is ours.
	PID int
}

// DefaultServiceID is dnstun's fixed dynamic-store service name: fixed, so
// cleanup can always find a key an earlier instance left.
const DefaultServiceID = "dnstun-dns-filter"

// MarkerKey is the entry of dnstun's DNS dictionary that holds the pid of
// the dnstun that published it. configd ignores entries it does not know
// (its own dictionaries carry __CONFIGURATION_ID__ and the like).
const MarkerKey = "DnstunPID"

// ScutilPath is the tool every dynamic-store change goes through.
const ScutilPath = "/usr/sbin/scutil"

// scutilMaxLine is the longest script line scutil reads whole: it reads
// lines with fgets into 256 bytes (configd scutil.tproj/scutil.c,
// LINE_LENGTH) and drops the rest of a longer one.
const scutilMaxLine = 254

// DarwinPlan is what capture does on macOS.
type DarwinPlan struct {
	// Key is the dynamic-store key published.
	Key string
	// Script is fed to a long-lived `scutil` child whose stdin stays open:
	// the key is temporary, so configd removes it when that session ends,
	// also when dnstun is killed.
	Script string
	// Show reads the key back from a second scutil: scutil exits 0 whatever
	// its commands did, so this is how publishing is checked.
	Show string
	// Remove is the script that withdraws the key on a clean stop.
	Remove string
	// Flush drops answers the system cached before and after steering; it
	// runs only once the key is verified.
	Flush [][]string
}

func darwinKey(serviceID string) string {
	if serviceID == "" {
		serviceID = DefaultServiceID
	}
	return "State:/Network/Service/" + serviceID + "/DNS"
}

// darwinFlush are the commands that drop the system's DNS caches.
var darwinFlush = [][]string{
	{"/usr/bin/dscacheutil", "-flushcache"},
	{"/usr/bin/killall", "-HUP", "mDNSResponder"},
}

// PlanDarwin computes the macOS plan. It is a pure function.
func PlanDarwin(c DarwinConfig) (DarwinPlan, error) {
	if c.Order == 0 {
		c.Order = 1
	}
	if len(c.Resolvers) == 0 {
		return DarwinPlan{}, errors.New("capture: no virtual resolver address to publish")
	}
	if c.PID <= 0 {
		return DarwinPlan{}, fmt.Errorf("capture: pid %d: the key needs its owner's pid", c.PID)
	}
	if strings.ContainsAny(c.ServiceID, " \t\r\n\"\\") {
		return DarwinPlan{}, fmt.Errorf("capture: service id %q: no spaces or quotes", c.ServiceID)
	}
	key := darwinKey(c.ServiceID)
	addrs := make([]string, len(c.Resolvers))
	for i, a := range c.Resolvers {
		addrs[i] = a.Unmap().String()
	}
	lines := []string{
		"d.init",
		"d.add ServerAddresses * " + strings.Join(addrs, " "),
		// An empty match domain makes this a default resolver, ordered
		// before the primary service's (Apple: "it becomes the default
		// domain"); configd's IPMonitor, add_supplemental.
		`d.add SupplementalMatchDomains * ""`,
		fmt.Sprintf("d.add SupplementalMatchOrders * # %d", c.Order),
		fmt.Sprintf("d.add %s # %d", MarkerKey, c.PID),
		"add " + key + " temporary",
	}
	for _, l := range lines {
		if len(l) > scutilMaxLine {
			return DarwinPlan{}, fmt.Errorf("capture: scutil line of %d bytes (scutil reads %d): %q; publish fewer resolver addresses", len(l), scutilMaxLine, l)
		}
	}
	return DarwinPlan{
		Key:    key,
		Script: strings.Join(lines, "\n") + "\n",
		Show:   "show " + key + "\n",
		Remove: "remove " + key + "\n",
		Flush:  darwinFlush,
	}, nil
}

func (p DarwinPlan) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s <<EOF (kept open: the key lives as long as dnstun)\n%sEOF\n", ScutilPath, p.Script)
	fmt.Fprintf(&b, "%s <<EOF (until it shows the key as published)\n%sEOF\n", ScutilPath, p.Show)
	fmt.Fprintf(&b, "%s --dns (until it lists the resolver; logged)\n", ScutilPath)
	for _, c := range p.Flush {
		fmt.Fprintln(&b, strings.Join(c, " "))
	}
	fmt.Fprintf(&b, "# withdraw: on the kept session\n%s", p.Remove)
	return b.String()
}

// VerifyDarwinKey checks the answer of the Show script: the key exists and
// holds exactly what the plan for c published. Any difference is an error
// that says what scutil showed.
func VerifyDarwinKey(show string, c DarwinConfig) error {
	key := darwinKey(c.ServiceID)
	v, missing, err := macos.ParseShow(show)
	if err != nil {
		return fmt.Errorf("read back %s: %w", key, err)
	}
	if missing {
		return fmt.Errorf("%s is not in the dynamic store", key)
	}
	got := v.Addrs("ServerAddresses")
	want := make([]netip.Addr, len(c.Resolvers))
	for i, a := range c.Resolvers {
		want[i] = a.Unmap()
	}
	if !slices.Equal(got, want) {
		return fmt.Errorf("%s holds ServerAddresses %v, not %v", key, got, want)
	}
	if !slices.Contains(v.Strings("SupplementalMatchDomains"), "") {
		return fmt.Errorf("%s has no empty SupplementalMatchDomains entry (%q): it would not be a default resolver", key, v.Strings("SupplementalMatchDomains"))
	}
	if pid := v.String(MarkerKey); pid != strconv.Itoa(c.PID) {
		return fmt.Errorf("%s is owned by pid %q, not this dnstun (%d)", key, pid, c.PID)
	}
	return nil
}

// DecideSweep decides whether cleanup may remove dnstun's key, from the
// answer of its Show script. The key is ours to remove when its MarkerKey
// names journalPID (the dead instance whose journal cleanup read; the
// state lock proves it dead), self (a key left by an earlier process with
// our pid), or a process that no longer runs (alive says). A key without
// the marker, or whose owner runs (another dnstun, with another state
// directory), is left alone, and why says so. It is a pure function.
func DecideSweep(show string, journalPID, self int, alive func(pid int) bool) (remove bool, why string, err error) {
	key := darwinKey("")
	v, missing, err := macos.ParseShow(show)
	if err != nil {
		return false, "", fmt.Errorf("read %s: %w", key, err)
	}
	if missing {
		return false, "", nil
	}
	s := v.String(MarkerKey)
	pid, err := strconv.Atoi(s)
	switch {
	case s == "":
		return false, fmt.Sprintf("%s has no %s entry: not published by this dnstun; left alone (`sudo scutil` then `remove %s` removes it)", key, MarkerKey, key), nil
	case err != nil || pid <= 0:
		return false, fmt.Sprintf("%s has %s %q, not a pid; left alone", key, MarkerKey, s), nil
	case journalPID > 0 && pid == journalPID:
		return true, fmt.Sprintf("published by pid %d, the dead instance of the journal", pid), nil
	case pid == self:
		return true, fmt.Sprintf("published by an earlier process with this one's pid %d", pid), nil
	case !alive(pid):
		return true, fmt.Sprintf("published by pid %d, which no longer runs", pid), nil
	}
	return false, fmt.Sprintf("%s is held by pid %d, which is running (another dnstun with another state directory?); left alone", key, pid), nil
}

// resolverListed reports whether scutil --dns (dnsOut) lists the plan's
// resolver as the default one (the first resolver without a domain), and
// returns that default resolver either way, for the log.
func resolverListed(dnsOut string, resolvers []netip.Addr) (macos.Resolver, bool) {
	r, ok := macos.ParseDNSConfig(dnsOut).DefaultResolver()
	if !ok || len(resolvers) == 0 {
		return r, false
	}
	return r, slices.Contains(r.Nameservers, resolvers[0].Unmap())
}

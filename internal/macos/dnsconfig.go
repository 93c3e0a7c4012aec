// SPDX-License-Identifier: MIT

package macos

import (
	"net/netip"
	"strconv"
	"strings"
)

// Resolver is one "resolver #N" block of scutil --dns.
type Resolver struct {
	Index       int // N of "resolver #N", within its section
	Domain      string
	Search      []string
	Nameservers []netip.Addr
	Options     string
	Port        int
	Timeout     int
	IfIndex     int
	IfName      string
	Flags       []string // "Scoped", "Supplemental", "Request A records", ...
	Reach       string
	Order       int
}

// HasFlag reports whether the resolver's flags line lists f.
func (r Resolver) HasFlag(f string) bool {
	for _, x := range r.Flags {
		if x == f {
			return true
		}
	}
	return false
}

// DNSConfig is the output of scutil --dns: the resolvers mDNSResponder uses
// in order (Default), and those used only for queries scoped to an
// interface or to a service.
type DNSConfig struct {
	Default         []Resolver
	Scoped          []Resolver
	ServiceSpecific []Resolver
}

// ParseDNSConfig reads scutil --dns. Format (configd's
// dnsinfo/dnsinfo_logging.h, _dns_configuration_log and _dns_resolver_log):
// "DNS configuration", then blocks "resolver #N" with lines "  domain   : D",
// "  search domain[i] : S", "  nameserver[i] : A", "  options  : O",
// "  port     : P", "  timeout  : T", "  if_index : N (name)",
// "  flags    : F, F", "  reach    : 0x… (…)", "  order    : N"; then the
// same for "DNS configuration (for scoped queries)" and "DNS configuration
// (for service-specific queries)". Unknown lines are skipped: Apple adds
// fields between releases ("service_identifier", "config id").
func ParseDNSConfig(out string) DNSConfig {
	var cfg DNSConfig
	section := &cfg.Default
	var cur *Resolver
	for _, raw := range splitLines(out) {
		l := strings.TrimSpace(raw)
		switch {
		case l == "":
			continue
		case strings.HasPrefix(l, "DNS configuration (for scoped"):
			section, cur = &cfg.Scoped, nil
			continue
		case strings.HasPrefix(l, "DNS configuration (for service-specific"):
			section, cur = &cfg.ServiceSpecific, nil
			continue
		case strings.HasPrefix(l, "resolver #"):
			n, _ := strconv.Atoi(strings.TrimPrefix(l, "resolver #"))
			*section = append(*section, Resolver{Index: n})
			cur = &(*section)[len(*section)-1]
			continue
		}
		if cur == nil {
			continue
		}
		key, val, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		switch {
		case key == "domain":
			cur.Domain = val
		case strings.HasPrefix(key, "search domain["):
			cur.Search = append(cur.Search, val)
		case strings.HasPrefix(key, "nameserver["):
			if a, err := netip.ParseAddr(val); err == nil {
				cur.Nameservers = append(cur.Nameservers, a)
			}
		case key == "options":
			cur.Options = val
		case key == "port":
			cur.Port, _ = strconv.Atoi(val)
		case key == "timeout":
			cur.Timeout, _ = strconv.Atoi(val)
		case key == "if_index":
			n, name, _ := strings.Cut(val, " ")
			cur.IfIndex, _ = strconv.Atoi(n)
			cur.IfName = strings.Trim(strings.TrimSpace(name), "()")
		case key == "flags":
			for _, f := range strings.Split(val, ",") {
				if f = strings.TrimSpace(f); f != "" {
					cur.Flags = append(cur.Flags, f)
				}
			}
		case key == "reach":
			cur.Reach = val
		case key == "order":
			cur.Order, _ = strconv.Atoi(val)
		}
	}
	return cfg
}

// DefaultResolver returns the first resolver of the default section that
// answers every name (it has no domain), and its position: what a lookup
// without a more specific match goes to first.
func (c DNSConfig) DefaultResolver() (Resolver, bool) {
	for _, r := range c.Default {
		if r.Domain == "" && len(r.Nameservers) > 0 {
			return r, true
		}
	}
	return Resolver{}, false
}

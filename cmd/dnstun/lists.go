// SPDX-License-Identifier: MIT

package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/dnstun/dnstun/filter"
)

// listSpec is one --blocklist value: a path or URL, then optional
// per-list settings separated by spaces, e.g.
// "/etc/dnstun/ads.txt mode=null ttl=300" or
// "https://example.org/list.txt mode=192.0.2.1,2001:db8::1".
type listSpec struct {
	src  string
	opts filter.ListOptions
}

func parseListSpec(s string) (listSpec, error) {
	f := strings.Fields(s)
	if len(f) == 0 {
		return listSpec{}, fmt.Errorf("empty block list")
	}
	ls := listSpec{src: f[0]}
	for _, kv := range f[1:] {
		k, v, ok := strings.Cut(kv, "=")
		switch {
		case !ok:
			return listSpec{}, fmt.Errorf("block list %q: %q is not key=value (keys: mode, ttl)", s, kv)
		case k == "mode":
			m, addrs, err := filter.ParseBlockSpec(v)
			if err != nil {
				return listSpec{}, fmt.Errorf("block list %q: %w", s, err)
			}
			ls.opts.Mode, ls.opts.BlockAddrs = m, addrs
		case k == "ttl":
			ttl, err := strconv.ParseUint(v, 10, 31)
			if err != nil {
				return listSpec{}, fmt.Errorf("block list %q: ttl %q: want seconds", s, v)
			}
			ls.opts.TTL = uint32(ttl)
		default:
			return listSpec{}, fmt.Errorf("block list %q: unknown setting %q (keys: mode, ttl)", s, k)
		}
	}
	return ls, nil
}

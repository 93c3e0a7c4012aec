// SPDX-License-Identifier: MIT

package upstream

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"time"
)

// DarwinSystemResolvers reads the primary service's resolvers from the
// dynamic store with two scutil runs (DarwinGlobalScript, then
// DarwinServiceScript) and picks the upstreams with PickDarwinResolvers,
// leaving out own (dnstun's virtual resolvers and TUN addresses). An error
// wrapping ErrNoUsableResolver means the caller keeps its last good list.
func DarwinSystemResolvers(own []netip.Addr) (DarwinResolvers, error) {
	var d DarwinDNSDumps
	var err error
	if d.Global, err = runScutil(DarwinGlobalScript); err != nil {
		return DarwinResolvers{}, err
	}
	svc, _, err := PrimaryOf(d.Global)
	if err != nil {
		return DarwinResolvers{}, err
	}
	if svc != "" {
		script, err := DarwinServiceScript(svc)
		if err != nil {
			return DarwinResolvers{}, err
		}
		if d.Service, err = runScutil(script); err != nil {
			return DarwinResolvers{}, err
		}
	}
	return PickDarwinResolvers(d, own)
}

func runScutil(script string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, ScutilPath)
	cmd.Stdin = strings.NewReader(script)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("read the system's resolvers: %s with %q: %w: %s", ScutilPath, script, err, out)
	}
	return string(out), nil
}

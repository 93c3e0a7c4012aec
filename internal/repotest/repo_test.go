// SPDX-License-Identifier: MIT

package repotest

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/dnstun/dnstun"

type pkg struct {
	ImportPath string
	Doc        string
	Imports    []string
	Deps       []string
	Standard   bool
}

func listPackages(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", "-deps=false", module+"/...")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// within reports whether the module-relative package path rel is one of
// prefixes or below one.
func within(rel string, prefixes []string) bool {
	for _, a := range prefixes {
		if rel == a || strings.HasPrefix(rel, a+"/") {
			return true
		}
	}
	return false
}

// TestImportRules keeps each dependency in the one package that owns it,
// and (subtest layering) the data path free of the control plane.
func TestImportRules(t *testing.T) {
	pkgs := listPackages(t)
	t.Run("layering", func(t *testing.T) { checkLayering(t, pkgs) })
	rules := []struct {
		dep     string   // an import path prefix
		allowed []string // packages (prefixes, within the module) that may import it; none: nobody
	}{
		{"golang.zx2c4.com/wireguard", []string{"tun"}},
		{"github.com/google/gopacket", []string{"packet", "internal/pkttest"}},
		{"github.com/vishvananda/netlink", []string{"tun", "route"}},
		{"github.com/miekg/dns", []string{"upstream", "cmd/dnstun", "internal/dnstest", "internal/pkttest", "internal/demo", "internal/quictest"}},
		// DoQ and DoH3; internal/quictest is their test server.
		{"github.com/quic-go/quic-go", []string{"upstream", "internal/quictest"}},
		{"go.yaml.in/yaml", []string{"config"}},
		// dnstap's protobuf and Frame Streams; Prometheus' client.
		{"github.com/dnstap/golang-dnstap", []string{"tap"}},
		{"github.com/farsightsec/golang-framestream", []string{"tap"}},
		{"github.com/prometheus/", []string{"metrics"}},
		{"gvisor.dev/gvisor", []string{"engine"}},
		// The bench chart is its own module (bench/chart/go.mod), run by
		// e2ebench with `go run`; the daemon's module never builds it.
		{"gonum.org/v1/plot", nil},
	}
	// The standard library only, but for UTS #46 (IDNA) in filter: the
	// Go team's x/net/idna and the x/text tables it is built on.
	stdOnly := []string{"filter", "bench/loadgen"}
	stdExtra := func(d string) bool {
		return d == "golang.org/x/net/idna" || strings.HasPrefix(d, "golang.org/x/text/")
	}
	for _, p := range pkgs {
		rel := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
		for _, d := range p.Imports {
			for _, r := range rules {
				if !strings.HasPrefix(d, r.dep) || within(rel, r.allowed) {
					continue
				}
				if len(r.allowed) == 0 {
					t.Errorf("%s depends on %s; no package of this module may", rel, d)
				} else {
					t.Errorf("%s depends on %s; only %v may", rel, d, r.allowed)
				}
			}
		}
		for _, d := range p.Deps {
			for _, s := range stdOnly {
				if rel == s && !strings.HasPrefix(d, module) && strings.Contains(strings.SplitN(d, "/", 2)[0], ".") && !(rel == "filter" && stdExtra(d)) {
					t.Errorf("%s must use the standard library only, depends on %s", rel, d)
				}
			}
		}
	}
}

// checkLayering keeps the data path free of the control plane: a packet's
// path through tun, packet, filter, engine, upstream and querylog must
// build without control, config, daemon, service, listsrc or any command, so that the control plane
// can change without touching it (and the data path can be embedded
// elsewhere). Types that cross the control protocol are defined on the
// data path and referred to by control (control.QueryLogEntry is
// querylog.Record). route, which steers traffic on the daemon's behalf,
// must not depend on control, config, daemon, service or a command either.
// The rule covers transitive dependencies (go list's Deps), not only direct
// imports; test-only imports are not checked.
func checkLayering(t *testing.T, pkgs []pkg) {
	controlPlane := []string{"control", "config", "daemon", "service", "listsrc", "metrics", "cmd"}
	rules := []struct {
		layer     string
		pkgs      []string // module-relative prefixes
		forbidden []string // module-relative prefixes none of pkgs may depend on
	}{
		{"data-path", []string{"tun", "packet", "filter", "engine", "upstream", "querylog", "cache", "attrib", "tap"}, controlPlane},
		{"routing", []string{"route"}, []string{"control", "config", "daemon", "service", "cmd"}},
	}
	seen := make(map[string]bool)
	for _, p := range pkgs {
		rel := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
		for _, r := range rules {
			if !within(rel, r.pkgs) {
				continue
			}
			for _, a := range r.pkgs {
				if within(rel, []string{a}) {
					seen[a] = true
				}
			}
			direct := make(map[string]bool)
			for _, d := range p.Imports {
				direct[d] = true
			}
			for _, d := range p.Deps {
				drel, ok := strings.CutPrefix(d, module+"/")
				if !ok || !within(drel, r.forbidden) {
					continue
				}
				how := "through its dependencies"
				if direct[d] {
					how = "directly"
				}
				t.Errorf("%s imports %s %s: %s packages must not depend on %v", rel, drel, how, r.layer, r.forbidden)
			}
		}
	}
	// A renamed or removed package must not turn the rule into a no-op.
	for _, r := range rules {
		for _, a := range r.pkgs {
			if !seen[a] {
				t.Errorf("layering rule names %q, which is not a package of the module", a)
			}
		}
	}
}

// TestPackageDocs requires a package comment on every package.
func TestPackageDocs(t *testing.T) {
	for _, p := range listPackages(t) {
		if strings.TrimSpace(p.Doc) == "" {
			t.Errorf("package %s has no doc comment (add a doc.go stating its invariants)", p.ImportPath)
		}
	}
}

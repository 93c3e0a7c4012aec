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

// TestImportRules keeps each dependency in the one package that owns it.
func TestImportRules(t *testing.T) {
	rules := []struct {
		dep     string   // an import path prefix
		allowed []string // packages (prefixes, within the module) that may import it
	}{
		{"golang.zx2c4.com/wireguard", []string{"tun"}},
		{"github.com/google/gopacket", []string{"packet", "internal/pkttest"}},
		{"github.com/vishvananda/netlink", []string{"tun", "route"}},
		{"github.com/miekg/dns", []string{"upstream", "cmd/dnstun", "internal/dnstest", "internal/pkttest"}},
		{"go.yaml.in/yaml", []string{"config"}},
		{"gonum.org/v1/plot", []string{"bench"}},
	}
	stdOnly := []string{"filter", "bench/loadgen"}
	for _, p := range listPackages(t) {
		rel := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
		for _, d := range p.Imports {
			for _, r := range rules {
				if !strings.HasPrefix(d, r.dep) {
					continue
				}
				ok := false
				for _, a := range r.allowed {
					if rel == a || strings.HasPrefix(rel, a+"/") {
						ok = true
					}
				}
				if !ok {
					t.Errorf("%s depends on %s; only %v may", rel, d, r.allowed)
				}
			}
		}
		for _, d := range p.Deps {
			for _, s := range stdOnly {
				if rel == s && !strings.HasPrefix(d, module) && strings.Contains(strings.SplitN(d, "/", 2)[0], ".") {
					t.Errorf("%s must use the standard library only, depends on %s", rel, d)
				}
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

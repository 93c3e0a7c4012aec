// SPDX-License-Identifier: MIT

package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/dnstun/dnstun/internal/atomicfile"
)

// persisted is what survives a restart: whether filtering is enabled.
type persisted struct {
	Enabled bool      `json:"enabled"`
	Changed time.Time `json:"changed"`
}

// loadState reads the persisted state; a missing file means enabled (the
// first start after an install filters).
func loadState(path string) (persisted, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return persisted{Enabled: true}, nil
	}
	if err != nil {
		return persisted{Enabled: true}, fmt.Errorf("read state %s: %w", path, err)
	}
	var p persisted
	if err := json.Unmarshal(b, &p); err != nil {
		return persisted{Enabled: true}, fmt.Errorf("state %s is corrupt (%v): starting enabled; `dnstun disable` rewrites it", path, err)
	}
	return p, nil
}

// saveState writes the persisted state atomically.
func saveState(path string, enabled bool) error {
	b, _ := json.Marshal(persisted{Enabled: enabled, Changed: time.Now().UTC()})
	if err := atomicfile.Write(path, b, 0o644); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	return nil
}

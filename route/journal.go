// SPDX-License-Identifier: MIT

package route

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dnstun/dnstun/internal/atomicfile"
)

const (
	journalFile = "journal.json"
	lockFile    = "lock"
)

// Journal records what a running instance changed, written before each
// change, so that `dnstun cleanup` after a crash knows what to undo even if
// the tag sweep would miss it (e.g. a changed table number).
type Journal struct {
	PID     int         `json:"pid"`
	BootID  string      `json:"boot_id"`
	Started time.Time   `json:"started"`
	Phase   string      `json:"phase"` // "applying", "active", "withdrawing"
	OS      string      `json:"os"`
	Linux   *LinuxPlan  `json:"linux,omitempty"`
	Darwin  *DarwinPlan `json:"darwin,omitempty"`
	Tun     string      `json:"tun"`
}

// WriteJournal writes j into dir atomically (temporary file, fsync, rename,
// fsync of the directory).
func WriteJournal(dir string, j *Journal) error {
	b, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("journal: create state dir: %w", err)
	}
	if err := atomicfile.Write(filepath.Join(dir, journalFile), b, 0o600); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	return nil
}

// ReadJournal reads the journal in dir; it returns nil, nil when there is
// none.
func ReadJournal(dir string) (*Journal, error) {
	b, err := os.ReadFile(filepath.Join(dir, journalFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	var j Journal
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, fmt.Errorf("journal %s: %w (remove it if no dnstun is running)", filepath.Join(dir, journalFile), err)
	}
	return &j, nil
}

// RemoveJournal deletes the journal in dir.
func RemoveJournal(dir string) error {
	err := os.Remove(filepath.Join(dir, journalFile))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("journal: %w", err)
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return nil // nothing to sync
	}
	defer d.Close()
	d.Sync()
	return nil
}

// BootID returns the kernel's boot id (Linux), or "" elsewhere: a journal
// from an earlier boot describes state that the reboot already removed.
func BootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// ErrLocked means another dnstun instance holds the state directory.
var ErrLocked = errors.New("another dnstun instance is running (its lock is held)")

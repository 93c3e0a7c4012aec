// SPDX-License-Identifier: MIT

package service

import (
	"errors"
	"fmt"
	"github.com/dnstun/dnstun/internal/atomicfile"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Runner runs one command.
type Runner interface {
	Run(argv []string) error
}

// ExecRunner runs commands on this machine.
type ExecRunner struct{}

// Run execs argv and returns its output with the error.
func (ExecRunner) Run(argv []string) error {
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Apply carries out p under root ("/" in production) and returns what it
// did, one line per action.
func Apply(p Plan, root string, run Runner) ([]string, error) {
	var done []string
	at := func(p string) string { return filepath.Join(root, filepath.FromSlash(p)) }
	for _, f := range p.Files {
		dst := at(f.Path)
		if f.IfAbsent {
			if _, err := os.Lstat(dst); err == nil {
				done = append(done, "kept "+f.Path+" (exists)")
				continue
			} else if !errors.Is(err, os.ErrNotExist) {
				return done, err
			}
		}
		content := f.Content
		if f.Source != "" {
			b, err := os.ReadFile(f.Source)
			if err != nil {
				return done, fmt.Errorf("install: %w", err)
			}
			content = b
		}
		if err := atomicfile.Write(dst, content, f.Mode); err != nil {
			return done, fmt.Errorf("install: %w", err)
		}
		done = append(done, fmt.Sprintf("wrote %s (%04o)", f.Path, f.Mode))
	}
	runAll := func(cmds [][]string) error {
		for _, c := range cmds {
			argv := append([]string(nil), c...)
			mayFail := strings.HasPrefix(argv[0], "-")
			argv[0] = strings.TrimPrefix(argv[0], "-")
			err := run.Run(argv)
			switch {
			case err == nil:
				done = append(done, "ran "+strings.Join(argv, " "))
			case mayFail:
				done = append(done, fmt.Sprintf("ran %s (failed, ignored: %v)", strings.Join(argv, " "), err))
			default:
				return err
			}
		}
		return nil
	}
	if err := runAll(p.Commands); err != nil {
		return done, err
	}
	for _, r := range p.Remove {
		dst := at(r)
		fi, err := os.Lstat(dst)
		if errors.Is(err, os.ErrNotExist) {
			continue
		} else if err != nil {
			return done, err
		}
		if fi.IsDir() {
			// Only an empty directory: never a tree we did not write.
			if err := os.Remove(dst); err != nil {
				done = append(done, fmt.Sprintf("kept %s (not empty)", r))
				continue
			}
		} else if err := os.Remove(dst); err != nil {
			return done, err
		}
		done = append(done, "removed "+r)
	}
	if err := runAll(p.After); err != nil {
		return done, err
	}
	return done, nil
}

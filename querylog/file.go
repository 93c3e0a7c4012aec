// SPDX-License-Identifier: MIT

package querylog

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"
)

// File writes the query log as JSON lines (one Record per line) to a file
// rotated by size: when the next line would take it past MaxSize, FILE
// becomes FILE.1, FILE.1 becomes FILE.2 and so on up to FILE.Keep, and a
// fresh FILE is started. Its methods are for one goroutine.
type File struct {
	Path    string
	MaxSize int64 // bytes; a single line longer than this still goes into a file of its own
	Keep    int   // rotated files kept; 0: the old file is removed

	f    *os.File
	w    *bufio.Writer
	size int64
}

// OpenFile opens (appends to) the log file at path.
func OpenFile(path string, maxSize int64, keep int) (*File, error) {
	lf := &File{Path: path, MaxSize: maxSize, Keep: keep}
	if err := lf.open(); err != nil {
		return nil, err
	}
	return lf, nil
}

func (lf *File) open() error {
	f, err := os.OpenFile(lf.Path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("query log file: %w (check --querylog-file's directory exists and is writable)", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("query log file: %w", err)
	}
	lf.f, lf.w, lf.size = f, bufio.NewWriterSize(f, 64<<10), st.Size()
	return nil
}

// Write appends one record as a JSON line, rotating first if it would not
// fit. After a failure (a full disk, a failed rotation) the next Write
// starts again from a freshly opened file: one bad moment does not end
// the log.
func (lf *File) Write(r *Record) error {
	if lf.f == nil {
		if err := lf.open(); err != nil {
			return err
		}
	}
	line, err := json.Marshal(r)
	if err != nil {
		return err
	}
	line = append(line, '\n')
	if lf.size > 0 && lf.size+int64(len(line)) > lf.MaxSize {
		if err := lf.rotate(); err != nil {
			return err
		}
	}
	n, err := lf.w.Write(line)
	lf.size += int64(n)
	if err != nil {
		lf.close() // bufio keeps its first error for good: the next Write reopens
	}
	return err
}

// rotate shifts the old files up by one and starts a fresh one; whatever
// fails, the file is let go so that the next Write reopens it.
func (lf *File) rotate() error {
	if err := lf.close(); err != nil {
		return err
	}
	name := func(i int) string {
		if i == 0 {
			return lf.Path
		}
		return lf.Path + "." + strconv.Itoa(i)
	}
	if lf.Keep == 0 {
		if err := os.Remove(lf.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("query log file: rotate: %w", err)
		}
	}
	for i := lf.Keep; i > 0; i-- {
		if err := os.Rename(name(i-1), name(i)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("query log file: rotate: %w", err)
		}
	}
	return lf.open()
}

// Flush writes out what is buffered.
func (lf *File) Flush() error {
	if lf.f == nil {
		return nil
	}
	err := lf.w.Flush()
	if err != nil {
		lf.close() // as in Write
	}
	return err
}

// close flushes and closes the file and lets go of it, whatever fails: the
// next Write opens it again.
func (lf *File) close() error {
	if lf.f == nil {
		return nil
	}
	err := lf.w.Flush()
	if cerr := lf.f.Close(); err == nil {
		err = cerr
	}
	lf.f, lf.w = nil, nil
	return err
}

// Close flushes and closes the file.
func (lf *File) Close() error { return lf.close() }

// Follow copies every entry added to ring into lf, polling every interval,
// until ctx ends; then it copies what is left, flushes and closes lf. Entries overwritten before
// they were copied (more than the ring holds between two polls) are counted
// and logged.
func Follow(ctx context.Context, ring *Ring, lf *File, interval time.Duration, log *slog.Logger) {
	defer lf.Close()
	after := ring.Added()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var lost, warned uint64
	var lastWarn time.Time
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-tick.C:
		}
		for {
			recs, last, l := ring.Since(after, 1024)
			after = last
			lost += l
			for i := range recs {
				if err := lf.Write(&recs[i]); err != nil && time.Since(lastWarn) > time.Minute {
					lastWarn = time.Now()
					log.Warn("query log file write failed", "path", lf.Path, "err", err)
				}
			}
			if len(recs) < 1024 {
				break
			}
		}
		if err := lf.Flush(); err != nil && time.Since(lastWarn) > time.Minute {
			lastWarn = time.Now()
			log.Warn("query log file write failed", "path", lf.Path, "err", err)
		}
		if lost > warned && time.Since(lastWarn) > time.Minute {
			lastWarn, warned = time.Now(), lost
			log.Warn("query log file missed entries: more queries than the ring holds between writes", "lost", lost)
		}
	}
}

// SPDX-License-Identifier: MIT

package main

import (
	"context"
	"os"

	"github.com/dnstun/dnstun/listsrc"
)

// fileStamp is what shows that a list file changed: another file renamed
// over it (another inode), or the same file rewritten (size or time).
type fileStamp struct {
	path string
	fi   os.FileInfo // nil when the file could not be read
}

func (a fileStamp) same(b fileStamp) bool {
	if a.path != b.path || (a.fi == nil) != (b.fi == nil) {
		return false
	}
	return a.fi == nil || os.SameFile(a.fi, b.fi) && a.fi.Size() == b.fi.Size() && a.fi.ModTime().Equal(b.fi.ModTime())
}

// stampLists stats the local list files of specs (URL lists are the
// refresh's business).
func stampLists(specs []listSpec) []fileStamp {
	var out []fileStamp
	for _, ls := range specs {
		if listsrc.IsURL(ls.src) {
			continue
		}
		fi, err := os.Stat(ls.opts.Name)
		if err != nil {
			fi = nil
		}
		out = append(out, fileStamp{path: ls.opts.Name, fi: fi})
	}
	return out
}

func sameStamps(a, b []fileStamp) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].same(b[i]) {
			return false
		}
	}
	return true
}

// watchLists reloads the lists when a local list file changes on disk. A
// change must hold still for one more interval before it is read, so that
// a file still being written (cp, a download in place) is not loaded half
// way: with the default 2 s, a new list serves 2-4 s after its last write.
// A list that fails to load keeps the old set serving, and is tried again
// at its next change.
func (d *daemon) watchLists(ctx context.Context) {
	var seen []fileStamp // a change seen at the last tick, not loaded yet
	every(ctx, d.c.listWatch, func() {
		d.mu.Lock()
		specs, loaded := d.lists, d.stamps
		d.mu.Unlock()
		cur := stampLists(specs)
		switch {
		case sameStamps(cur, loaded):
			seen = nil
		case seen == nil || !sameStamps(cur, seen):
			seen = cur
		default:
			seen = nil
			d.swapLists("a list file changed on disk")
		}
	})
}

// swapLists builds a new set from the current lists and serves it; a list
// that fails keeps the old set serving. Loads are serialised (loadMu), so
// that an older load never replaces a newer one.
func (d *daemon) swapLists(why string) {
	d.loadMu.Lock()
	defer d.loadMu.Unlock()
	d.mu.Lock()
	c, paths := d.c, d.lists
	d.mu.Unlock()
	stamps := stampLists(paths) // before reading: a write during the load is seen next time
	set, err := loadLists(c, paths, d.log)
	d.mu.Lock()
	d.stamps = stamps
	d.mu.Unlock()
	if err != nil {
		d.log.Error("lists not reloaded; the previous ones keep serving", "why", why, "err", err)
		return
	}
	d.live.Store(set)
	releaseMemory()
	d.log.Info("lists reloaded", "why", why, "rules", set.Len())
}

// SPDX-License-Identifier: MIT

package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/dnstun/dnstun/config"
	"github.com/dnstun/dnstun/filter"
	"github.com/dnstun/dnstun/listsrc"
)

// resolveLists maps the block lists of o to files with their settings:
// URLs to their cached copies, downloaded first when there is none. A URL
// that cannot be had is logged and left out; the other lists load, and
// the refresh tries again.
func resolveLists(o *config.Options, log *slog.Logger) ([]config.ListSpec, []*listsrc.Source) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out []config.ListSpec
	var srcs []*listsrc.Source
	for _, ls := range o.Blocklists {
		paths, s, errs := listsrc.Resolve(ctx, []string{ls.Source}, o.ListCache, nil)
		srcs = append(srcs, s...)
		for _, err := range errs {
			log.Error("block list not loaded", "err", err)
		}
		for _, p := range paths {
			ls.Opts.Name = p
			out = append(out, ls)
		}
	}
	return out, srcs
}

// BuildSet builds the filter set of o's lists and inline rules, returning
// the lines skipped with a warning. It never downloads: a list given as a
// URL is read from the copy `dnstun run` cached. It is what `dnstun check`
// and `dnstun explain` use.
func BuildSet(o *config.Options) (*filter.Set, []filter.ListWarning, error) {
	specs := make([]config.ListSpec, 0, len(o.Blocklists))
	for _, ls := range o.Blocklists {
		if listsrc.IsURL(ls.Source) {
			src := listsrc.Source{URL: ls.Source, CacheDir: o.ListCache}
			if !src.HasCopy() {
				return nil, nil, fmt.Errorf("block list %s is not downloaded yet: `dnstun run` fetches it into %s (--list-cache)", ls.Source, o.ListCache)
			}
			ls.Opts.Name = src.Path()
		}
		specs = append(specs, ls)
	}
	return buildSet(o, specs)
}

func buildSet(o *config.Options, specs []config.ListSpec) (*filter.Set, []filter.ListWarning, error) {
	b := filter.NewBuilder()
	b.SetBypassSignals(o.BypassSignals)
	var warnings []filter.ListWarning
	warn := func(w filter.ListWarning) { warnings = append(warnings, w) }
	for _, ls := range specs {
		if err := b.LoadFile(ls.Opts, warn); err != nil {
			return nil, warnings, err
		}
	}
	if len(o.Rules) > 0 {
		if _, err := b.ParseListWith(strings.NewReader(strings.Join(o.Rules, "\n")), filter.ListOptions{Name: "inline rules"}, warn); err != nil {
			return nil, warnings, err
		}
	}
	return b.Build(), warnings, nil
}

// loadLists builds the filter set, logging a summary of the warnings (the
// first few in full).
func loadLists(o *config.Options, specs []config.ListSpec, log *slog.Logger) (*filter.Set, error) {
	start := time.Now()
	set, warnings, err := buildSet(o, specs)
	if err != nil {
		return nil, err
	}
	for i, w := range warnings {
		if i == 5 {
			log.Warn("more list warnings not shown", "count", len(warnings)-5)
			break
		}
		log.Warn("list line skipped", "warning", w.String())
	}
	log.Info("block lists loaded", "lists", len(specs), "rules", set.Len(), "took", time.Since(start).Round(time.Millisecond))
	return set, nil
}

// refreshLists re-downloads the URL lists every ListRefresh and swaps in
// a new rule set when one changed.
func (d *Daemon) refreshLists(ctx context.Context) {
	every(ctx, d.options().ListRefresh, func() {
		d.mu.Lock()
		srcs := d.srcs
		d.mu.Unlock()
		if len(srcs) == 0 {
			return
		}
		changed, err := listsrc.Refresh(ctx, srcs)
		if err != nil {
			d.log.Warn("block list refresh", "err", err)
		}
		if changed {
			d.swapLists("a list URL has a new version")
		}
	})
}

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
func stampLists(specs []config.ListSpec) []fileStamp {
	var out []fileStamp
	for _, ls := range specs {
		if listsrc.IsURL(ls.Source) {
			continue
		}
		fi, err := os.Stat(ls.Opts.Name)
		if err != nil {
			fi = nil
		}
		out = append(out, fileStamp{path: ls.Opts.Name, fi: fi})
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
// way: a new list serves one to two intervals after its last write. A
// list that fails to load keeps the old set serving, and is tried again
// at its next change.
func (d *Daemon) watchLists(ctx context.Context) {
	var seen []fileStamp // a change seen at the last tick, not loaded yet
	every(ctx, d.options().ListWatch, func() {
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
// that fails keeps the old set serving.
func (d *Daemon) swapLists(why string) {
	d.loadMu.Lock()
	defer d.loadMu.Unlock()
	d.mu.Lock()
	o, specs := d.o, d.lists
	d.mu.Unlock()
	stamps := stampLists(specs) // before reading: a write during the load is seen next time
	start := time.Now()
	set, err := loadLists(o, specs, d.log)
	d.mu.Lock()
	d.stamps = stamps
	d.mu.Unlock()
	if err != nil {
		d.log.Error("lists not reloaded; the previous ones keep serving", "why", why, "err", err)
		return
	}
	d.live.Store(set)
	d.noteLists(len(specs), set.Len(), time.Since(start))
	releaseMemory()
	d.log.Info("lists reloaded", "why", why, "rules", set.Len())
}

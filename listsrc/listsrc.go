// SPDX-License-Identifier: MIT

package listsrc

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dnstun/dnstun/filter"
	"github.com/dnstun/dnstun/internal/atomicfile"
)

// MaxSize bounds a downloaded list (the largest public lists are ~30 MB).
const MaxSize = 64 << 20

// DefaultCacheDir holds downloaded lists across restarts.
const DefaultCacheDir = "/var/lib/dnstun/lists"

// IsURL reports whether a --blocklist value is a URL rather than a path.
func IsURL(s string) bool {
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")
}

// Source is one list URL and its cached copy.
type Source struct {
	URL      string
	CacheDir string
	// Client makes the requests; nil means a client with a 60 s timeout.
	Client *http.Client
}

// meta is what is remembered about the last good download.
type meta struct {
	URL          string    `json:"url"`
	ETag         string    `json:"etag,omitempty"`
	LastModified string    `json:"last_modified,omitempty"`
	Fetched      time.Time `json:"fetched"`
	Checked      time.Time `json:"checked"`
	Size         int       `json:"size"`
}

func (s *Source) base() string {
	h := sha256.Sum256([]byte(s.URL))
	return filepath.Join(s.CacheDir, hex.EncodeToString(h[:8]))
}

// Path is the cached copy's file; it exists once a download succeeded.
func (s *Source) Path() string { return s.base() + ".list" }

func (s *Source) metaPath() string { return s.base() + ".json" }

func (s *Source) readMeta() meta {
	var m meta
	if b, err := os.ReadFile(s.metaPath()); err == nil {
		json.Unmarshal(b, &m)
	}
	if m.URL != s.URL {
		return meta{URL: s.URL}
	}
	return m
}

// HasCopy reports whether a good copy is cached.
func (s *Source) HasCopy() bool {
	_, err := os.Stat(s.Path())
	return err == nil
}

// Fetch downloads the list if it changed since the last good copy. It
// returns whether the cached copy changed. On any error the last good copy
// stays in place.
func (s *Source) Fetch(ctx context.Context) (bool, error) {
	client := s.Client
	if client == nil {
		client = &http.Client{Timeout: 60 * time.Second}
	}
	m := s.readMeta()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL, nil)
	if err != nil {
		return false, fmt.Errorf("list %s: %w", s.URL, err)
	}
	if s.HasCopy() {
		if m.ETag != "" {
			req.Header.Set("If-None-Match", m.ETag)
		}
		if m.LastModified != "" {
			req.Header.Set("If-Modified-Since", m.LastModified)
		}
	}
	req.Header.Set("User-Agent", "dnstun")
	resp, err := client.Do(req)
	if err != nil {
		return false, fmt.Errorf("list %s: download failed, keeping the last good copy: %w", s.URL, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotModified:
		m.Checked = time.Now().UTC()
		s.writeMeta(m)
		return false, nil
	case resp.StatusCode != http.StatusOK:
		return false, fmt.Errorf("list %s: server answered %s, keeping the last good copy", s.URL, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxSize+1))
	if err != nil {
		return false, fmt.Errorf("list %s: download broke off, keeping the last good copy: %w", s.URL, err)
	}
	if len(body) > MaxSize {
		return false, fmt.Errorf("list %s: larger than %d MiB, refused, keeping the last good copy", s.URL, MaxSize>>20)
	}
	// Only a list replaces a list: an HTML error page or a binary parses
	// as "not a list" and is refused whole.
	if _, err := filter.NewBuilder().ParseList(bytes.NewReader(body), s.URL, nil); err != nil {
		return false, fmt.Errorf("list %s: refused, keeping the last good copy: %w", s.URL, err)
	}
	if err := os.MkdirAll(s.CacheDir, 0o755); err != nil {
		return false, fmt.Errorf("list cache: %w", err)
	}
	if err := atomicfile.Write(s.Path(), body, 0o644); err != nil {
		return false, fmt.Errorf("list %s: %w", s.URL, err)
	}
	now := time.Now().UTC()
	s.writeMeta(meta{URL: s.URL, ETag: resp.Header.Get("ETag"), LastModified: resp.Header.Get("Last-Modified"), Fetched: now, Checked: now, Size: len(body)})
	return true, nil
}

func (s *Source) writeMeta(m meta) {
	b, _ := json.MarshalIndent(m, "", "  ")
	atomicfile.Write(s.metaPath(), b, 0o644)
}

// Resolve maps --blocklist values to files to parse: paths stay; URLs
// become their cached copies, downloaded first when there is none yet. A
// URL that cannot be had is left out with an error in errs (the other
// lists still load; the next refresh tries again).
func Resolve(ctx context.Context, specs []string, cacheDir string, client *http.Client) (paths []string, sources []*Source, errs []error) {
	for _, spec := range specs {
		if !IsURL(spec) {
			paths = append(paths, spec)
			continue
		}
		s := &Source{URL: spec, CacheDir: cacheDir, Client: client}
		sources = append(sources, s)
		if !s.HasCopy() {
			if _, err := s.Fetch(ctx); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		paths = append(paths, s.Path())
	}
	return paths, sources, errs
}

// Refresh fetches every source and reports whether any cached copy
// changed; errors are collected (each source keeps its last good copy).
func Refresh(ctx context.Context, sources []*Source) (bool, error) {
	changed := false
	var errs []error
	for _, s := range sources {
		c, err := s.Fetch(ctx)
		changed = changed || c
		if err != nil {
			errs = append(errs, err)
		}
	}
	return changed, errors.Join(errs...)
}

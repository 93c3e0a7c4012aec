// SPDX-License-Identifier: MIT

package listsrc

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
)

// server serves body with an ETag, answering 304 to a matching
// If-None-Match; status overrides the status when not 0.
type server struct {
	body    atomic.Pointer[string]
	etag    atomic.Pointer[string]
	status  atomic.Int32
	hits    atomic.Int32
	cond304 atomic.Int32
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.hits.Add(1)
	if st := s.status.Load(); st != 0 {
		w.WriteHeader(int(st))
		return
	}
	etag := *s.etag.Load()
	if r.Header.Get("If-None-Match") == etag {
		s.cond304.Add(1)
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("ETag", etag)
	w.Write([]byte(*s.body.Load()))
}

func (s *server) set(body, etag string) { s.body.Store(&body); s.etag.Store(&etag) }

func TestFetchConditionalAndKeepsLastGood(t *testing.T) {
	srv := &server{}
	srv.set("||ads.example^\n", `"v1"`)
	hs := httptest.NewServer(srv) // loopback only
	defer hs.Close()
	dir := t.TempDir()
	ctx := context.Background()

	paths, sources, errs := Resolve(ctx, []string{"/etc/x.txt", hs.URL + "/list.txt"}, dir, hs.Client())
	if len(errs) != 0 || len(paths) != 2 || paths[0] != "/etc/x.txt" || len(sources) != 1 {
		t.Fatalf("Resolve: %v %v %v", paths, sources, errs)
	}
	s := sources[0]
	if b, _ := os.ReadFile(s.Path()); string(b) != "||ads.example^\n" {
		t.Fatalf("cached copy %q", b)
	}
	// Unchanged: a conditional request, 304, nothing rewritten.
	if changed, err := s.Fetch(ctx); changed || err != nil || srv.cond304.Load() != 1 {
		t.Fatalf("unchanged fetch: %v %v (304s %d)", changed, err, srv.cond304.Load())
	}
	// Changed upstream.
	srv.set("||ads.example^\n||more.example^\n", `"v2"`)
	if changed, err := Refresh(ctx, sources); !changed || err != nil {
		t.Fatalf("changed fetch: %v %v", changed, err)
	}
	good := "||ads.example^\n||more.example^\n"
	// An HTML error page served with 200 is refused; the copy stays.
	srv.set("<html><body>502 Bad Gateway</body></html>\n", `"v3"`)
	if changed, err := s.Fetch(ctx); changed || err == nil || !strings.Contains(err.Error(), "keeping the last good copy") {
		t.Errorf("HTML page: %v %v", changed, err)
	}
	// A server error: the copy stays.
	srv.status.Store(503)
	if _, err := s.Fetch(ctx); err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("503: %v", err)
	}
	// The server gone: the copy stays.
	hs.Close()
	if _, err := s.Fetch(ctx); err == nil {
		t.Error("fetch from a closed server succeeded")
	}
	if b, _ := os.ReadFile(s.Path()); string(b) != good {
		t.Errorf("last good copy lost: %q", b)
	}
	// A restart finds the cached copy without a download.
	paths, _, errs = Resolve(ctx, []string{s.URL}, dir, nil)
	if len(errs) != 0 || len(paths) != 1 || paths[0] != s.Path() {
		t.Errorf("restart: %v %v", paths, errs)
	}
}

func TestResolveUnreachableFirstDownload(t *testing.T) {
	hs := httptest.NewServer(http.NotFoundHandler())
	url := hs.URL + "/gone.txt"
	defer hs.Close()
	paths, sources, errs := Resolve(context.Background(), []string{url, "/etc/a.txt"}, t.TempDir(), hs.Client())
	if len(errs) != 1 || len(paths) != 1 || paths[0] != "/etc/a.txt" || len(sources) != 1 {
		t.Errorf("unreachable list: %v %v %v", paths, sources, errs)
	}
}

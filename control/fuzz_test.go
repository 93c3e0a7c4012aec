// SPDX-License-Identifier: MIT

package control

import (
	"encoding/json"
	"io"
	"log/slog"
	"testing"
)

// FuzzDispatch feeds arbitrary request lines to the server's dispatcher
// (what a local client writes to the control socket, after peer
// authorization): it never panics, and every response is well-formed
// protocol: either ok with data, or an error with a known code.
func FuzzDispatch(f *testing.F) {
	for _, seed := range []string{
		`{"v":1,"verb":"status"}`,
		`{"v":1,"verb":"querylog","args":{"n":5,"after":3}}`,
		`{"v":1,"verb":"cache-flush","args":{"name":"example.com"}}`,
		`{"v":1,"verb":"querylog","args":{"n":-1}}`,
		`{"v":2,"verb":"status"}`,
		`{"verb":"status"}`,
		`{"v":1}`,
		`{"v":1,"verb":"stats","args":[1]}`,
		`not json`,
		`{"v":1,"verb":"querylog","args":{"after":18446744073709551615}}`,
		`{"v":1e309,"verb":"x"}`,
		``,
	} {
		f.Add([]byte(seed))
	}
	codes := map[string]bool{CodeBadRequest: true, CodeVersion: true, CodeUnknownVerb: true, CodeBadArgs: true, CodeFailed: true}
	f.Fuzz(func(t *testing.T, line []byte) {
		s := &Server{h: &fakeHandler{}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
		r := s.dispatch(line, peer{UID: 0})
		if r.OK == (r.Error != "") {
			t.Fatalf("response %+v: want ok or an error, not both or neither", r)
		}
		if !r.OK && !codes[r.Code] {
			t.Fatalf("error response with code %q: %+v", r.Code, r)
		}
		if _, err := json.Marshal(r); err != nil {
			t.Fatalf("response does not encode: %v", err)
		}
	})
}

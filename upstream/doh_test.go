// SPDX-License-Identifier: MIT

package upstream

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dnstun/dnstun/internal/tlstest"
	"github.com/miekg/dns"
)

// dohServer is a Go DoH server on loopback whose handler the test writes,
// with a certificate for dns.test and 127.0.0.1 from a fresh CA.
type dohServer struct {
	spec  Spec
	ca    *tlstest.CA
	proto atomic.Value // the last request's protocol ("HTTP/2.0")
}

func startDoHServer(t *testing.T, h2 bool, handler func(w http.ResponseWriter, q *dns.Msg)) *dohServer {
	t.Helper()
	dir := t.TempDir()
	ca, err := tlstest.NewCA(dir, "ca")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue(dir, "server", []string{"dns.test"}, []netip.Addr{netip.MustParseAddr("127.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &dohServer{ca: ca}
	mux := http.NewServeMux()
	mux.HandleFunc("/dns-query", func(w http.ResponseWriter, r *http.Request) {
		s.proto.Store(r.Proto)
		body, err := io.ReadAll(r.Body)
		q := new(dns.Msg)
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/dns-message" || err != nil || q.Unpack(body) != nil {
			http.Error(w, fmt.Sprintf("bad request: %s %q %v", r.Method, r.Header.Get("Content-Type"), err), http.StatusBadRequest)
			return
		}
		handler(w, q)
	})
	srv := &http.Server{
		Handler:   mux,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{leaf.TLS}},
		ErrorLog:  nil,
	}
	if !h2 {
		srv.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){}
	}
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close() })
	s.spec = stSpec(t, "https://"+ln.Addr().String()+"/dns-query")
	return s
}

func (s *dohServer) options() DialOptions {
	return DialOptions{Timeout: 2 * time.Second, IdleTimeout: 30 * time.Second, RootCAs: s.ca.Pool, Logger: stDiscard}
}

func writeDNS(w http.ResponseWriter, m *dns.Msg) {
	b, _ := m.Pack()
	w.Header().Set("Content-Type", "application/dns-message")
	w.Write(b)
}

// TestDoHAnswers: the query goes as a POST of application/dns-message over
// HTTP/2, and the answer's ID is the query's even when the server sends 0.
// With HTTP/1.1 only, the same works.
func TestDoHAnswers(t *testing.T) {
	for _, h2 := range []bool{true, false} {
		t.Run(fmt.Sprintf("h2=%v", h2), func(t *testing.T) {
			s := startDoHServer(t, h2, func(w http.ResponseWriter, q *dns.Msg) {
				m := new(dns.Msg)
				m.SetReply(q)
				m.Id = 0
				m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.IPv4(192, 0, 2, 3)})
				writeDNS(w, m)
			})
			x, c := stExchanger(t, s.spec, s.options())
			for i := range 10 {
				x.Send(stQuery(t, uint16(0x4000+i), "a.test.", dns.TypeA))
			}
			for id, r := range c.wait(t, 10, 5*time.Second) {
				if r.failed || r.err != nil || r.msg.Id != id || len(r.msg.Answer) != 1 {
					t.Errorf("query %d: %+v", id, r)
				}
			}
			want := map[bool]string{true: "HTTP/2.0", false: "HTTP/1.1"}[h2]
			if got := s.proto.Load(); got != want {
				t.Errorf("requests over %v, want %s", got, want)
			}
		})
	}
}

// TestDoHBadAnswers: what a DoH server may answer that is not a DNS
// message fails the query, saying what was wrong.
func TestDoHBadAnswers(t *testing.T) {
	for _, tc := range []struct {
		name    string
		handler func(w http.ResponseWriter, q *dns.Msg)
		want    string
	}{
		{"status", func(w http.ResponseWriter, q *dns.Msg) { http.Error(w, "no such thing", http.StatusNotFound) }, `HTTP status "404 Not Found"`},
		{"redirect", func(w http.ResponseWriter, q *dns.Msg) {
			w.Header().Set("Location", "/elsewhere")
			w.WriteHeader(http.StatusMovedPermanently)
		}, `HTTP status "301 Moved Permanently"`},
		{"type", func(w http.ResponseWriter, q *dns.Msg) {
			w.Header().Set("Content-Type", "text/html")
			w.Write(bytes.Repeat([]byte("x"), 100))
		}, `answer of type "text/html"`},
		{"length", func(w http.ResponseWriter, q *dns.Msg) {
			w.Header().Set("Content-Type", "application/dns-message")
			w.Header().Set("Content-Length", "70000")
			w.Write(make([]byte, 70000))
		}, "a 70000-byte answer"},
		{"long", func(w http.ResponseWriter, q *dns.Msg) {
			w.Header().Set("Content-Type", "application/dns-message")
			for range 7 {
				w.Write(make([]byte, 10000))
				w.(http.Flusher).Flush() // no Content-Length: chunks
			}
		}, "longer than a DNS message"},
		{"short", func(w http.ResponseWriter, q *dns.Msg) {
			w.Header().Set("Content-Type", "application/dns-message")
			w.Write([]byte{1, 2, 3})
		}, "a 3-byte answer is not a DNS message"},
		{"slow", func(w http.ResponseWriter, q *dns.Msg) { time.Sleep(time.Second) }, "no answer within 300ms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startDoHServer(t, true, tc.handler)
			opt := s.options()
			opt.Timeout = 300 * time.Millisecond
			x, c := stExchanger(t, s.spec, opt)
			start := time.Now()
			x.Send(stQuery(t, 9, "a.test.", dns.TypeA))
			r := c.wait(t, 1, 2*time.Second)[9]
			if !r.failed || !strings.Contains(r.err.Error(), tc.want) {
				t.Fatalf("%+v, want a failure saying %q", r, tc.want)
			}
			if d := r.at.Sub(start); d > opt.Timeout+stMargin {
				t.Errorf("failed after %v, want within %v", d, opt.Timeout)
			}
			if tc.name == "slow" && !errors.Is(r.err, ErrTimeout) {
				t.Errorf("%v is not ErrTimeout", r.err)
			}
		})
	}
}

// TestDoHCloseInFlight: Close while a request is in flight; no callback
// comes.
func TestDoHCloseInFlight(t *testing.T) {
	got := make(chan struct{}, 1)
	s := startDoHServer(t, true, func(w http.ResponseWriter, q *dns.Msg) {
		got <- struct{}{}
		time.Sleep(500 * time.Millisecond)
	})
	x, c := stExchanger(t, s.spec, s.options())
	x.Send(stQuery(t, 1, "a.test.", dns.TypeA))
	select {
	case <-got:
	case <-time.After(2 * time.Second):
		t.Fatal("the request did not arrive")
	}
	x.Close()
	c.quiet(t, time.Second)
}

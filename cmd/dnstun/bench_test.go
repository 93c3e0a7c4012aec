// SPDX-License-Identifier: MIT

package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dnstun/dnstun/bench/loadgen"
)

func writeNames(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "names.txt")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParseBenchFlags(t *testing.T) {
	names := writeNames(t, "a.example A\nb.example AAAA\n# comment\nc.example\n")
	tests := []struct {
		args    []string
		target  string
		mode    loadgen.Mode
		wantErr string
	}{
		{args: []string{"--target", "198.19.53.53", "--names", names}, target: "198.19.53.53:53", mode: loadgen.ClosedLoop},
		{args: []string{"--target", "127.0.0.1:5353", "--names", names, "--mode", "open", "--rate", "2000"}, target: "127.0.0.1:5353", mode: loadgen.OpenLoop},
		{args: []string{"--target", "[fd64:6e73:7475::53]:53", "--names", names}, target: "[fd64:6e73:7475::53]:53", mode: loadgen.ClosedLoop},
		{args: []string{"--target", "fd64:6e73:7475::53", "--names", names}, target: "[fd64:6e73:7475::53]:53", mode: loadgen.ClosedLoop},
		{args: []string{"--names", names}, wantErr: "--target is required"},
		{args: []string{"--target", "nonsense", "--names", names}, wantErr: "want IP or IP:PORT"},
		{args: []string{"--target", "192.0.2.1"}, wantErr: "--names FILE is required"},
		{args: []string{"--target", "192.0.2.1", "--names", names, "--mode", "half"}, wantErr: "want closed or open"},
		{args: []string{"--target", "192.0.2.1", "--names", writeNames(t, "a.example BOGUS\n")}, wantErr: "line 1"},
		{args: []string{"--target", "192.0.2.1", "--names", names, "extra"}, wantErr: "unexpected argument"},
		{args: []string{"--target", "192.0.2.1", "--names", names, "--transport", "sctp"}, wantErr: "want udp or tcp"},
		{args: []string{"--target", "192.0.2.1", "--names", names, "--per-conn", "5"}, wantErr: "need --transport tcp"},
		{args: []string{"--target", "192.0.2.1", "--names", names, "--transport", "tcp", "--mode", "open"}, wantErr: "closed only"},
		{args: []string{"--target", "192.0.2.1", "--names", names, "--transport", "tcp", "--sockets", "2"}, wantErr: "--sockets is for UDP"},
	}
	for _, tt := range tests {
		c, err := parseBenchFlags(tt.args, io.Discard)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%v: error %v, want %q", tt.args, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%v: %v", tt.args, err)
			continue
		}
		if c.lg.Target.String() != tt.target || c.lg.Mode != tt.mode || len(c.lg.Names) != 3 {
			t.Errorf("%v: target %v mode %v names %d", tt.args, c.lg.Target, c.lg.Mode, len(c.lg.Names))
		}
		if c.lg.Names[1].Type != 28 {
			t.Errorf("%v: second name type %d, want AAAA", tt.args, c.lg.Names[1].Type)
		}
	}
	if _, err := parseBenchFlags([]string{"-h"}, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v", err)
	}
}

// echoTCPResponder answers every length-framed query on loopback over TCP
// with NXDOMAIN, in order.
func echoTCPResponder(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				var hdr [2]byte
				for {
					if _, err := io.ReadFull(c, hdr[:]); err != nil {
						return
					}
					msg := make([]byte, 2+(int(hdr[0])<<8|int(hdr[1])))
					copy(msg, hdr[:])
					if _, err := io.ReadFull(c, msg[2:]); err != nil || len(msg) < 14 {
						return
					}
					msg[4] |= 0x80
					msg[5] = 0x80 | 3
					if _, err := c.Write(msg); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func TestCmdBenchTCP(t *testing.T) {
	target := echoTCPResponder(t)
	names := writeNames(t, "a.example A\nb.example AAAA\n")
	for _, perConn := range []string{"1", "100"} {
		var out, errb bytes.Buffer
		code := Main([]string{"bench", "--target", target, "--names", names, "--transport", "tcp", "--per-conn", perConn,
			"--pipeline", "4", "--duration", "5s", "--max-queries", "200", "--json"}, &out, &errb)
		if code != 0 {
			t.Fatalf("%s per connection: exit %d: %s", perConn, code, errb.String())
		}
		var r benchResult
		if err := json.Unmarshal(out.Bytes(), &r); err != nil {
			t.Fatalf("%v\n%s", err, out.String())
		}
		if r.Transport != "tcp" || r.Sent != 200 || r.Answered != 200 || r.Rcodes["NXDOMAIN"] != 200 || r.Conns == 0 || r.ConnectUS["p50"] <= 0 {
			t.Errorf("%s per connection: %+v", perConn, r)
		}
	}
}

// echoResponder answers every query on loopback with NXDOMAIN (the query
// echoed with QR=1, RCODE 3).
func echoResponder(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if n < 12 {
				continue
			}
			buf[2] |= 0x80
			buf[3] = 0x80 | 3
			pc.WriteTo(buf[:n], from)
		}
	}()
	return pc.LocalAddr().String()
}

func TestCmdBench(t *testing.T) {
	target := echoResponder(t)
	names := writeNames(t, "a.example A\nb.example AAAA\n")
	for _, mode := range []string{"closed", "open"} {
		var out, errb bytes.Buffer
		code := Main([]string{"bench", "--target", target, "--names", names, "--mode", mode,
			"--rate", "2000", "--duration", "5s", "--max-queries", "200", "--json"}, &out, &errb)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", mode, code, errb.String())
		}
		var r benchResult
		if err := json.Unmarshal(out.Bytes(), &r); err != nil {
			t.Fatalf("%s: %v\n%s", mode, err, out.String())
		}
		if r.Sent != 200 || r.Answered != 200 || r.Lost != 0 || r.Rcodes["NXDOMAIN"] != 200 {
			t.Errorf("%s: %+v", mode, r)
		}
		if r.LatencyUS["p50"] <= 0 || r.LatencyUS["p50"] > r.LatencyUS["max"] {
			t.Errorf("%s: latency %v", mode, r.LatencyUS)
		}
	}
	var out bytes.Buffer
	if code := Main([]string{"bench", "--target", target, "--names", names, "--max-queries", "50", "--duration", "5s"}, &out, io.Discard); code != 0 {
		t.Fatalf("text output: exit %d", code)
	}
	if !strings.Contains(out.String(), "answered 50") {
		t.Errorf("text output:\n%s", out.String())
	}
}

// SPDX-License-Identifier: MIT

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dnstun/dnstun/control"
	"github.com/dnstun/dnstun/internal/demo"
	"github.com/dnstun/dnstun/internal/privtest"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// clientRun is one query by a named client program.
type clientRun struct {
	pid    int
	rcode  string
	answer string
}

// runClient runs the test binary, copied as name, as a DNS client in the
// lab's host namespace: one A query for qname to the virtual resolver.
func runClient(t *testing.T, l *demo.Lab, name, qname string) clientRun {
	t.Helper()
	exe, _ := os.Executable()
	path := filepath.Join(l.Dir, name)
	if _, err := os.Stat(path); err != nil {
		if out, err := exec.Command("cp", exe, path).CombinedOutput(); err != nil {
			t.Fatalf("copy the test binary as %s: %v: %s", name, err, out)
		}
	}
	cmd := l.Host.Command(t.Context(), path, demo.Resolver4.String(), qname, "300ms")
	cmd.Env = append(os.Environ(), "DNSTUN_TEST_CLIENT=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", name, qname, err, out)
	}
	var r clientRun
	if _, err := fmt.Sscanf(strings.TrimSpace(string(out)), "pid=%d rcode=%s answer=%s", &r.pid, &r.rcode, &r.answer); err != nil {
		t.Fatalf("%s printed %q: %v", name, out, err)
	}
	// `ip netns exec` execs the program: the pid it printed is the one
	// that was started.
	if r.pid != cmd.Process.Pid {
		t.Fatalf("%s printed pid %d, started as %d", name, r.pid, cmd.Process.Pid)
	}
	return r
}

// scrape reads the lab daemon's /metrics (served inside its namespace).
func scrape(t *testing.T, l *demo.Lab, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	// No keep-alive: a scrape leaves no idle connection (and no server
	// goroutine) behind, which the overload test's goroutine count would
	// otherwise see.
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext:       func(ctx context.Context, network, a string) (net.Conn, error) { return l.Host.Dial(network, a) },
	}}
	resp, err := hc.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /metrics: %s, %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics does not parse as Prometheus text: %v", err)
	}
	return fams
}

// metricValue is the sum of the counters, gauges or histogram counts of
// family name that have the given labels (0 if none).
func metricValue(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	f := fams[name]
	if f == nil {
		return 0
	}
	sum := 0.0
next:
	for _, m := range f.Metric {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.Label {
				if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Histogram != nil:
			sum += float64(m.Histogram.GetSampleCount())
		}
	}
	return sum
}

// TestE2EObservability: two differently named programs ask the same name
// through dnstun on a real TUN. A $process rule blocks one and not the
// other, and `explain --process` agrees; the query log (control socket,
// `querylog -f --json`, and the query log file) names each program and its
// pid; /metrics parses as Prometheus text and its counters moved by the
// queries sent; and the dnstap file, read back by BIND's dnstap-read, holds
// one client query and response per query, and a forwarder pair per
// forwarded one.
func TestE2EObservability(t *testing.T) {
	privtest.RequireTool(t, "dnstap-read", "bind9-dnsutils")
	const name = "mail.example.com"
	rule := "||" + name + "^$process=alpha-client"
	dir := t.TempDir()
	tapFile, qlogFile := filepath.Join(dir, "dnstap.fstrm"), filepath.Join(dir, "queries.jsonl")
	const metricsAddr = "127.0.0.1:9153"
	l := startLabLists(t, map[string]string{"rules.txt": rule + "\n"},
		"--metrics", metricsAddr, "--dnstap", "file:"+tapFile, "--querylog-file", qlogFile)

	// Follow the query log live while the programs ask.
	exe, _ := os.Executable()
	follow := exec.Command(exe, "querylog", "--control", l.ControlPath(), "-f", "--json", "-n", "0")
	follow.Env = append(os.Environ(), "DNSTUN_TEST_MAIN=1")
	followOut, err := follow.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { follow.Process.Kill(); follow.Wait() }()
	followed := make(chan control.QueryLogEntry, 64)
	go func() {
		sc := bufio.NewScanner(followOut)
		for sc.Scan() {
			var e control.QueryLogEntry
			if json.Unmarshal(sc.Bytes(), &e) == nil {
				followed <- e
			}
		}
		close(followed)
	}()
	time.Sleep(300 * time.Millisecond) // the follower has asked where to start

	before := scrape(t, l, metricsAddr)
	alpha := runClient(t, l, "alpha-client", name)
	beta := runClient(t, l, "beta-client", name)
	if alpha.rcode != "NXDOMAIN" || alpha.answer != "-" {
		t.Errorf("alpha-client got %s %s, want NXDOMAIN: the $process rule blocks it", alpha.rcode, alpha.answer)
	}
	if beta.rcode != "NOERROR" || beta.answer != "192.0.2.25" {
		t.Errorf("beta-client got %s %s, want the upstream's 192.0.2.25: the rule names another program", beta.rcode, beta.answer)
	}
	if n := l.PrimaryServer.QueriesFor(name + "."); n != 1 {
		t.Errorf("the upstream saw %d queries for %s, want 1 (beta's)", n, name)
	}

	// explain agrees, given the process.
	for _, tc := range []struct{ proc, want string }{{"alpha-client", "block"}, {"beta-client", "forward"}} {
		var out, errb bytes.Buffer
		if code := Main([]string{"explain", "--rule", rule, "--process", tc.proc, name}, &out, &errb); code != 0 || !strings.Contains(out.String(), name+" A: "+tc.want) {
			t.Errorf("explain --process %s: code %d, %q %q; want %s", tc.proc, code, out.String(), errb.String(), tc.want)
		}
	}

	// The query log names each program and its pid.
	wantEntry := func(where string, e control.QueryLogEntry) {
		t.Helper()
		switch e.Process {
		case "alpha-client":
			if e.PID != int32(alpha.pid) || e.Decision != "block" || e.Exe != filepath.Join(l.Dir, "alpha-client") {
				t.Errorf("%s: alpha-client's entry %+v, want pid %d, decision block", where, e, alpha.pid)
			}
		case "beta-client":
			if e.PID != int32(beta.pid) || e.Decision != "forward" || e.Upstream == "" {
				t.Errorf("%s: beta-client's entry %+v, want pid %d, decision forward", where, e, beta.pid)
			}
		default:
			t.Errorf("%s: entry for %s from %q (pid %d): want alpha-client or beta-client", where, e.Name, e.Process, e.PID)
		}
	}
	entries := func(where string, all []control.QueryLogEntry) {
		t.Helper()
		n := 0
		for _, e := range all {
			if e.Name == name {
				n++
				wantEntry(where, e)
			}
		}
		if n != 2 {
			t.Errorf("%s: %d entries for %s, want 2 (one per program)", where, n, name)
		}
	}
	c := client(t, l)
	recent, err := c.QueryLog(t.Context(), 50)
	if err != nil {
		t.Fatal(err)
	}
	entries("querylog", recent)
	var live []control.QueryLogEntry
	timeout := time.After(5 * time.Second)
	for len(live) < 2 {
		select {
		case e, ok := <-followed:
			if !ok {
				t.Fatalf("querylog -f ended early; got %v", live)
			}
			if e.Name == name {
				live = append(live, e)
			}
		case <-timeout:
			t.Fatalf("querylog -f showed %d of the 2 queries within 5 s", len(live))
		}
	}
	entries("querylog -f", live)

	// The metrics moved by what was sent: two queries over UDP, one
	// blocked, one forwarded; one forwarded answer's latency.
	after := scrape(t, l, metricsAddr)
	delta := func(name string, labels ...string) float64 {
		return metricValue(after, name, labels...) - metricValue(before, name, labels...)
	}
	for _, m := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"dnstun_queries_total", []string{"transport", "udp"}, 2},
		{"dnstun_answers_total", []string{"decision", "block", "rcode", "NXDOMAIN"}, 1},
		{"dnstun_answers_total", []string{"decision", "forward", "rcode", "NOERROR"}, 1},
		{"dnstun_added_latency_seconds", []string{"path", "forward"}, 1},
		{"dnstun_added_latency_seconds", []string{"path", "local"}, 1},
		{"dnstun_upstream_answers_total", nil, 1},
	} {
		if got := delta(m.name, m.labels...); got != m.want {
			t.Errorf("%s%v went up by %v, want %v", m.name, m.labels, got, m.want)
		}
	}
	if v := metricValue(after, "dnstun_build_info", "version", "0.1.0-dev"); v != 1 {
		t.Errorf("dnstun_build_info = %v", v)
	}
	if v := metricValue(after, "dnstun_rules"); v != 1 {
		t.Errorf("dnstun_rules = %v, want 1", v)
	}
	if v := metricValue(after, "dnstun_attribution_found_total"); v < 2 {
		t.Errorf("dnstun_attribution_found_total = %v, want at least 2", v)
	}

	// Stop dnstun: the dnstap file and the query log file are complete.
	if err := l.StopDnstun(); err != nil {
		t.Fatalf("stop: %v\n%s", err, l.Log())
	}
	b, err := os.ReadFile(qlogFile)
	if err != nil {
		t.Fatal(err)
	}
	var logged []control.QueryLogEntry
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var e control.QueryLogEntry
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("query log file line %q: %v", line, err)
		}
		logged = append(logged, e)
	}
	entries("query log file", logged)

	out, err := exec.Command("dnstap-read", tapFile).CombinedOutput()
	if err != nil {
		t.Fatalf("dnstap-read: %v\n%s", err, out)
	}
	kinds := map[string]int{}
	re := regexp.MustCompile(` (CQ|CR|FQ|FR) .* ` + regexp.QuoteMeta(name) + `/IN/A`)
	for _, line := range strings.Split(string(out), "\n") {
		if m := re.FindStringSubmatch(line); m != nil {
			kinds[m[1]]++
		}
	}
	if kinds["CQ"] != 2 || kinds["CR"] != 2 || kinds["FQ"] != 1 || kinds["FR"] != 1 {
		t.Errorf("dnstap-read shows %v for %s, want CQ 2, CR 2, FQ 1, FR 1:\n%s", kinds, name, out)
	}
	// Every client query of the run has its response (the readiness
	// probes included).
	all := map[string]int{}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 3 {
			all[f[2]]++
		}
	}
	if all["CQ"] == 0 || all["CQ"] != all["CR"] || all["FQ"] != all["FR"] {
		t.Errorf("dnstap-read kinds %v: want one CR per CQ and one FR per FQ", all)
	}
}

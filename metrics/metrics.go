// SPDX-License-Identifier: MIT

// Package metrics serves dnstun's counters to Prometheus (`--metrics
// ADDR`, path /metrics). A scrape reads one snapshot the daemon assembles
// from counters the data path keeps anyway: the packet step never touches
// Prometheus, and label values are bounded (decisions, rcodes, transports,
// paths, drop reasons, the configured upstreams; never names or clients).
package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"time"

	"github.com/dnstun/dnstun/engine"
	"github.com/dnstun/dnstun/packet"
	"github.com/dnstun/dnstun/querylog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Snapshot is what one scrape reports.
type Snapshot struct {
	Version string
	Enabled bool
	// Stats and Metrics are the engine's, summed over the process's
	// sessions (counters never go back when filtering is disabled and
	// enabled again); their gauges (pending queries, sockets, cache) are
	// the current session's.
	Stats     engine.Stats
	Metrics   engine.Metrics
	Upstreams []engine.UpstreamState
	// Rules and Lists describe the rule set serving; ListsLoad is how long
	// its last load took, ListsLoaded when it was swapped in.
	Rules       int
	Lists       int
	ListsLoad   time.Duration
	ListsLoaded time.Time
	// Extra are further counters by name (attribution, dnstap), reported
	// as dnstun_<name>_total; nil entries are left out.
	Extra map[string]uint64
}

// Handler serves /metrics from snap, which must be safe to call from the
// HTTP server's goroutines.
func Handler(snap func() Snapshot) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		&collector{snap: snap},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Timeout: 10 * time.Second}))
	return mux
}

// Server is a running metrics endpoint.
type Server struct {
	srv  *http.Server
	addr net.Addr
	done chan struct{}
}

// Serve listens on addr and serves h until Close or ctx ends.
func Serve(ctx context.Context, addr string, h http.Handler, log *slog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: listen on %s: %w (give a free address with --metrics, e.g. 127.0.0.1:9153)", addr, err)
	}
	s := &Server{
		srv: &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
			WriteTimeout: 30 * time.Second, IdleTimeout: 60 * time.Second, MaxHeaderBytes: 16 << 10},
		addr: ln.Addr(),
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics endpoint stopped", "addr", addr, "err", err)
		}
	}()
	context.AfterFunc(ctx, func() { s.Close() })
	log.Info("metrics served", "url", "http://"+ln.Addr().String()+"/metrics")
	return s, nil
}

// Addr is the address served.
func (s *Server) Addr() net.Addr { return s.addr }

// Close stops serving.
func (s *Server) Close() error {
	err := s.srv.Close()
	<-s.done
	return err
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("dnstun_"+name, help, labels, nil)
}

var (
	dBuild        = desc("build_info", "dnstun's version and the Go version it was built with.", "version", "goversion")
	dEnabled      = desc("enabled", "1 while filtering is on, 0 while disabled.")
	dQueries      = desc("queries_total", "DNS queries read, by front-end.", "transport")
	dAnswers      = desc("answers_total", "Queries answered, by what dnstun did and the response code.", "decision", "rcode")
	dEvents       = desc("events_total", "Engine events, by name (as in `dnstun stats`).", "event")
	dDrops        = desc("dropped_total", "Packets and messages not answered normally, by reason.", "reason")
	dPending      = desc("pending_queries", "Forwarded queries waiting for an upstream's answer.")
	dLatency      = desc("added_latency_seconds", "Time dnstun added to each answer: local and cache from the TUN read to the TUN write of the batch; forward from the decision to the answer's write.", "path")
	dUpSent       = desc("upstream_queries_total", "Attempts sent to an upstream.", "upstream")
	dUpAnswers    = desc("upstream_answers_total", "Answers taken from an upstream.", "upstream")
	dUpTimeouts   = desc("upstream_timeouts_total", "Attempts an upstream did not answer in time.", "upstream")
	dUpErrors     = desc("upstream_errors_total", "Failed sends and transport failures, by upstream.", "upstream")
	dUpHealthy    = desc("upstream_healthy", "1 if the upstream is a first choice, 0 while it is skipped as down.", "upstream")
	dUpLatency    = desc("upstream_rtt_seconds", "Round trip of an upstream's answers.", "upstream")
	dCacheEntries = desc("cache_entries", "Answers in the response cache.")
	dCacheBytes   = desc("cache_bytes", "Bytes the response cache holds (its bound is --cache).")
	dCacheMisses  = desc("cache_misses_total", "Cache lookups that found no fresh answer.")
	dCacheEvict   = desc("cache_evictions_total", "Answers evicted from the cache to stay in its bound.")
	dSockOpen     = desc("udp_sockets_open", "Plain UDP upstream sockets open now.")
	dRules        = desc("rules", "Rules in the rule set serving.")
	dLists        = desc("lists", "Block lists loaded.")
	dListsLoad    = desc("lists_load_seconds", "How long the last load of the lists took.")
	dListsLoaded  = desc("lists_loaded_timestamp_seconds", "When the rule set serving was loaded (Unix time).")
)

type collector struct {
	snap func() Snapshot
}

// Describe sends nothing: the collector is unchecked, since the Extra
// counters and the upstreams' labels change with the configuration.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.snap()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge(dBuild, 1, s.Version, runtime.Version())
	gauge(dEnabled, b2f(s.Enabled))
	for t := range engine.NumTransports {
		counter(dQueries, s.Metrics.Queries[t], t.String())
	}
	for d := range engine.NumDecisions {
		for r, v := range s.Metrics.Answers[d] {
			if v != 0 || r == 0 {
				counter(dAnswers, v, querylog.Decision(d).String(), querylog.RcodeString(uint8(r)))
			}
		}
	}
	for i, v := range s.Stats.Counters {
		counter(dEvents, v, engine.Counter(i).String())
	}
	for i, v := range s.Stats.Drops {
		if i != int(packet.OK) {
			counter(dDrops, v, packet.Reason(i).String())
		}
	}
	gauge(dPending, float64(s.Stats.Pending))
	for p := range engine.NumPaths {
		ch <- histogram(dLatency, &s.Metrics.Latency[p], p.String())
	}
	for _, u := range s.Upstreams {
		counter(dUpSent, u.Sent, u.URL)
		counter(dUpAnswers, u.Answers, u.URL)
		counter(dUpTimeouts, u.Timeouts, u.URL)
		counter(dUpErrors, u.Errors, u.URL)
		gauge(dUpHealthy, b2f(u.Healthy), u.URL)
		ch <- histogram(dUpLatency, &u.Latency, u.URL)
	}
	gauge(dCacheEntries, float64(s.Stats.Cache.Entries))
	gauge(dCacheBytes, float64(s.Stats.Cache.Bytes))
	counter(dCacheMisses, s.Stats.Cache.Misses)
	counter(dCacheEvict, s.Stats.Cache.Evictions)
	gauge(dSockOpen, float64(s.Stats.Sockets.Open))
	gauge(dRules, float64(s.Rules))
	gauge(dLists, float64(s.Lists))
	gauge(dListsLoad, s.ListsLoad.Seconds())
	if !s.ListsLoaded.IsZero() {
		gauge(dListsLoaded, float64(s.ListsLoaded.UnixNano())/1e9)
	}
	for name, v := range s.Extra {
		ch <- prometheus.MustNewConstMetric(desc(name+"_total", extraHelp(name)), prometheus.CounterValue, float64(v))
	}
}

// extraHelp is the help line of an Extra counter.
func extraHelp(name string) string {
	return "dnstun's " + name + " counter (see README's Observability section)."
}

// histogram converts an engine histogram to a Prometheus one (seconds,
// cumulative buckets).
func histogram(d *prometheus.Desc, h *engine.Histogram, label string) prometheus.Metric {
	buckets := make(map[float64]uint64, len(engine.LatencyBounds))
	var cum uint64
	for i, b := range engine.LatencyBounds {
		cum += h.Counts[i]
		buckets[b.Seconds()] = cum
	}
	cum += h.Counts[len(engine.LatencyBounds)]
	return prometheus.MustNewConstHistogram(d, cum, h.Sum.Seconds(), buckets, label)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// SPDX-License-Identifier: MIT

package control

import (
	"encoding/json"

	"github.com/dnstun/dnstun/querylog"
)

// Version is the protocol version this package speaks.
const Version = 1

// MaxRequest bounds one request line, newline included.
const MaxRequest = 64 << 10

// Verbs.
const (
	VerbStatus     = "status"
	VerbEnable     = "enable"
	VerbDisable    = "disable"
	VerbReload     = "reload"
	VerbStats      = "stats"
	VerbQueryLog   = "querylog"
	VerbCacheFlush = "cache-flush"
	VerbStop       = "stop"
)

// Verbs lists every verb, in the order PROTOCOL.md documents them.
var Verbs = []string{VerbStatus, VerbEnable, VerbDisable, VerbReload, VerbStats, VerbQueryLog, VerbCacheFlush, VerbStop}

// CacheFlushArgs are cache-flush's arguments.
type CacheFlushArgs struct {
	// Name, if set, flushes that name and every name under it; empty
	// flushes the whole cache.
	Name string `json:"name,omitempty"`
}

// CacheFlushData is cache-flush's data.
type CacheFlushData struct {
	Flushed int `json:"flushed"` // entries removed
}

// Error codes, in Response.Code.
const (
	CodeBadRequest  = "bad_request"         // not JSON, or a field of the wrong type
	CodeVersion     = "unsupported_version" // "v" missing or not spoken here
	CodeUnknownVerb = "unknown_verb"
	CodeBadArgs     = "bad_args"
	CodeTooLarge    = "too_large"
	CodeDenied      = "permission_denied"
	CodeTimeout     = "timeout"
	CodeBusy        = "busy"
	CodeFailed      = "failed" // the daemon tried and failed; Error says why
)

// Request is one request line.
type Request struct {
	V    int             `json:"v"`
	Verb string          `json:"verb"`
	Args json.RawMessage `json:"args,omitempty"`
}

// Response is one response line.
type Response struct {
	V     int             `json:"v"`
	OK    bool            `json:"ok"`
	Data  json.RawMessage `json:"data,omitempty"`
	Error string          `json:"error,omitempty"`
	Code  string          `json:"code,omitempty"`
}

// QueryLogArgs are querylog's arguments.
type QueryLogArgs struct {
	N int `json:"n"` // how many entries at most; 0 = DefaultQueryLogN
	// After, if given, asks for the entries logged after the one with
	// this sequence number (oldest first) instead of the most recent:
	// a follower passes the Last of its previous answer.
	After *uint64 `json:"after,omitempty"`
}

// DefaultQueryLogN and MaxQueryLogN bound querylog's n.
const (
	DefaultQueryLogN = 100
	MaxQueryLogN     = 10000
)

// Status is status's data.
type Status struct {
	Enabled  bool   `json:"enabled"`
	Steering string `json:"steering"` // "off", "virtual", "capture", "capture-withdrawn" or "flow"
	Tun      string `json:"tun"`      // "" while disabled
	// Health is "ok", or "upstreams-lost" when the watchdog's forwarded
	// probes go unanswered; Problem then says why and since when.
	Health  string `json:"health"`
	Problem string `json:"problem,omitempty"`
	// Upstreams in the order they are tried, with their health.
	Upstreams     []UpstreamStatus  `json:"upstreams"`
	UptimeSeconds float64           `json:"uptime_seconds"` // since the process started
	PID           int               `json:"pid"`
	Version       string            `json:"version"`
	Counters      map[string]uint64 `json:"counters,omitempty"`
}

// UpstreamStatus is one upstream resolver's state.
type UpstreamStatus struct {
	Addr    string `json:"addr"` // the upstream as a URL (IP:PORT for plain UDP)
	Healthy bool   `json:"healthy"`
	// Domains the upstream serves (split DNS); none for a default one.
	Domains []string `json:"domains,omitempty"`
	// RTTMillis is the average round trip of its recent answers (0: none yet).
	RTTMillis float64 `json:"rtt_ms"`
	Sent      uint64  `json:"sent"`     // attempts sent to it
	Answers   uint64  `json:"answers"`  // answers accepted from it
	Timeouts  uint64  `json:"timeouts"` // attempts that got no answer in time
	Errors    uint64  `json:"errors"`   // sends that failed, transport failures
}

// QueryLogEntry is one recent query. The type is querylog.Record, defined
// with the ring that records it so that the data path does not import the
// control plane; its JSON form is the one PROTOCOL.md documents.
type QueryLogEntry = querylog.Record

// Handler is the daemon side: one method per verb. Methods may be called
// concurrently. Errors are sent to the client as the response's error.
type Handler interface {
	Status() (Status, error)
	// Enable brings the TUN and steering up and persists the state.
	Enable() error
	// Disable withdraws steering and closes the TUN but keeps the process
	// and the control socket; the state persists.
	Disable() error
	// Reload re-reads the config and the lists; a bad config is refused
	// with the error and the old one keeps serving.
	Reload() error
	Stats() (map[string]uint64, error)
	// QueryLog returns up to a.N of the most recent queries, or of those
	// after a.After, oldest first.
	QueryLog(a QueryLogArgs) (QueryLogData, error)
	// CacheFlush empties the response cache, or, with a name, removes
	// that name and every name under it; it returns how many entries
	// went.
	CacheFlush(name string) (int, error)
	// Stop starts a clean shutdown and returns at once; the response is
	// sent before the process goes.
	Stop() error
}

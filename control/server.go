// SPDX-License-Identifier: MIT

package control

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Server serves the control protocol on a unix socket.
type Server struct {
	path  string
	group string // "" = root only
	gid   int    // the group's id; -1 when group is ""
	h     Handler
	log   *slog.Logger
	ln    *net.UnixListener
	ident os.FileInfo // the socket file we created, to remove only ours

	readTimeout atomic.Int64  // nanoseconds; tests shorten it while serving
	stopAfter   func() bool   // unregisters the ctx hook
	sem         chan struct{} // bounds concurrent connections

	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

// Limits of a Server.
const (
	// ReadTimeout is how long a connection may take to send a request (and
	// may stay idle between requests).
	ReadTimeout = 10 * time.Second
	// WriteTimeout bounds writing one response.
	WriteTimeout = 10 * time.Second
	// MaxConns bounds concurrent connections; more get a busy error.
	MaxConns = 32
)

// Serve creates the socket at path and serves h on it until ctx ends or
// Close is called. The socket is mode 0600 (root only), or 0660 owned by
// group when group is not "" (a group name or number); members of group
// may then use it too. A stale socket file at path is removed; one that
// a process still listens on is left alone and Serve fails.
func Serve(ctx context.Context, path, group string, h Handler, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{path: path, group: group, gid: -1, h: h, log: log,
		sem: make(chan struct{}, MaxConns), conns: map[net.Conn]struct{}{}}
	s.readTimeout.Store(int64(ReadTimeout))
	if group != "" {
		gid, err := lookupGroup(group)
		if err != nil {
			return nil, fmt.Errorf("control socket group: %w", err)
		}
		s.gid = gid
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := groupCanReach(filepath.Dir(path), group); err != nil {
		return nil, err
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	ln.SetUnlinkOnClose(false) // Close removes it, if it is still ours
	s.ln = ln
	mode := os.FileMode(0o600)
	if s.gid >= 0 {
		mode = 0o660
		if err := os.Chown(path, -1, s.gid); err != nil {
			s.Close()
			return nil, fmt.Errorf("control socket: %w", err)
		}
	}
	if err := os.Chmod(path, mode); err != nil {
		s.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if s.ident, err = os.Lstat(path); err != nil {
		s.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	s.wg.Add(1)
	go s.accept()
	s.stopAfter = context.AfterFunc(ctx, func() { s.Close() })
	log.Info("control socket listening", "path", path, "mode", fmt.Sprintf("%04o", mode), "group", group)
	return s, nil
}

// Path is the socket's path.
func (s *Server) Path() string { return s.path }

// lookupGroup resolves a group name or number.
func lookupGroup(group string) (int, error) {
	if n, err := strconv.Atoi(group); err == nil && n >= 0 {
		return n, nil
	}
	g, err := user.LookupGroup(group)
	if err != nil {
		return -1, err
	}
	return strconv.Atoi(g.Gid)
}

// removeStale removes a socket file nothing listens on.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	if fi.Mode().Type() != os.ModeSocket {
		return fmt.Errorf("control socket: %s exists and is not a socket; not removing it", path)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("control socket: another process listens on %s (is dnstun already running?)", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("control socket: %s: cannot tell whether it is stale: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("control socket: removing stale %s: %w", path, err)
	}
	return nil
}

// Close stops accepting, closes every connection, waits for their
// goroutines and removes the socket file (if it is still the one Serve
// created).
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	if s.stopAfter != nil {
		s.stopAfter()
	}
	err := s.ln.Close()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	if s.ident != nil {
		if fi, lerr := os.Lstat(s.path); lerr == nil && os.SameFile(fi, s.ident) {
			if rerr := os.Remove(s.path); rerr != nil && err == nil {
				err = rerr
			}
		}
	}
	return err
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.AcceptUnix()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed || errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Warn("control socket: accept", "err", err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			defer func() {
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
				c.Close()
			}()
			select {
			case s.sem <- struct{}{}:
				defer func() { <-s.sem }()
				s.serveConn(c)
			default:
				s.write(c, errResponse(CodeBusy, fmt.Sprintf("busy: %d control connections are open", MaxConns)))
			}
		}()
	}
}

// authorize checks the peer's credentials.
func (s *Server) authorize(c *net.UnixConn) (peer, error) {
	p, err := peerCred(c)
	if err != nil {
		return p, fmt.Errorf("permission denied: cannot read the peer's credentials: %v", err)
	}
	if p.UID == 0 || (s.gid >= 0 && slices.Contains(p.GIDs, uint32(s.gid))) {
		return p, nil
	}
	return p, errors.New(refusal(p.UID, s.gid, s.group))
}

// refusal is the error a refused peer gets.
func refusal(uid uint32, gid int, group string) string {
	if gid < 0 {
		return fmt.Sprintf("permission denied: uid %d is not root and no group is allowed (the control socket's group option names one)", uid)
	}
	return fmt.Sprintf("permission denied: uid %d is not root and not in group %s", uid, group)
}

func (s *Server) serveConn(c *net.UnixConn) {
	p, err := s.authorize(c)
	if err != nil {
		s.log.Warn("control socket: peer refused", "uid", p.UID, "pid", p.PID, "gids", p.GIDs, "err", err)
		// Answer the peer's first request (unread, unparsed) with the
		// refusal, so a client that writes first sees it rather than a
		// broken pipe; then close.
		c.SetReadDeadline(time.Now().Add(time.Second))
		bufio.NewReaderSize(c, MaxRequest).ReadSlice('\n')
		s.write(c, errResponse(CodeDenied, err.Error()))
		return
	}
	br := bufio.NewReaderSize(c, MaxRequest)
	for {
		timeout := time.Duration(s.readTimeout.Load())
		c.SetReadDeadline(time.Now().Add(timeout))
		line, err := br.ReadSlice('\n')
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			s.write(c, errResponse(CodeTooLarge, fmt.Sprintf("request too large: the limit is %d bytes per line", MaxRequest)))
			return
		case err != nil && len(line) == 0:
			return // EOF, idle timeout or closed between requests
		case err != nil && !errors.Is(err, os.ErrDeadlineExceeded):
			// EOF after an unterminated last line: answer it, then stop.
		case err != nil:
			s.write(c, errResponse(CodeTimeout, "request not completed within "+timeout.String()))
			return
		}
		if len(bytes.TrimSpace(line)) > 0 {
			resp := s.dispatch(line, p)
			if !s.write(c, resp) {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (s *Server) write(c net.Conn, r Response) bool {
	b, err := json.Marshal(r)
	if err != nil {
		b, _ = json.Marshal(errResponse(CodeFailed, "cannot encode the response: "+err.Error()))
	}
	c.SetWriteDeadline(time.Now().Add(WriteTimeout))
	_, err = c.Write(append(b, '\n'))
	return err == nil
}

func errResponse(code, msg string) Response {
	return Response{V: Version, OK: false, Code: code, Error: msg}
}

// wireRequest tells a missing field from a zero one.
type wireRequest struct {
	V    *int            `json:"v"`
	Verb *string         `json:"verb"`
	Args json.RawMessage `json:"args"`
}

func (s *Server) dispatch(line []byte, p peer) (resp Response) {
	var req wireRequest
	if err := json.Unmarshal(line, &req); err != nil {
		return errResponse(CodeBadRequest, "bad request: "+err.Error())
	}
	switch {
	case req.V == nil:
		return errResponse(CodeVersion, fmt.Sprintf(`bad request: "v" is missing; this daemon speaks protocol version %d`, Version))
	case *req.V != Version:
		return errResponse(CodeVersion, fmt.Sprintf("unsupported protocol version %d: this daemon speaks version %d", *req.V, Version))
	case req.Verb == nil:
		return errResponse(CodeBadRequest, `bad request: "verb" is missing`)
	}
	verb := *req.Verb
	if !slices.Contains(Verbs, verb) {
		return errResponse(CodeUnknownVerb, fmt.Sprintf("unknown verb %q: want one of %s", verb, strings.Join(Verbs, ", ")))
	}
	args := bytes.TrimSpace(req.Args)
	noArgs := len(args) == 0 || string(args) == "null" || string(args) == "{}"
	if verb != VerbQueryLog && verb != VerbCacheFlush && !noArgs {
		return errResponse(CodeBadArgs, fmt.Sprintf("%s takes no arguments", verb))
	}
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("control: handler panicked", "verb", verb, "panic", r)
			resp = errResponse(CodeFailed, verb+": internal error")
		}
	}()
	s.log.Debug("control request", "verb", verb, "uid", p.UID, "pid", p.PID)
	var data any
	var err error
	switch verb {
	case VerbStatus:
		data, err = s.h.Status()
	case VerbEnable:
		err = s.h.Enable()
	case VerbDisable:
		err = s.h.Disable()
	case VerbReload:
		err = s.h.Reload()
	case VerbStats:
		var m map[string]uint64
		m, err = s.h.Stats()
		if m == nil {
			m = map[string]uint64{}
		}
		data = m
	case VerbQueryLog:
		a := QueryLogArgs{N: DefaultQueryLogN}
		if !noArgs {
			dec := json.NewDecoder(bytes.NewReader(args))
			dec.DisallowUnknownFields()
			if derr := dec.Decode(&a); derr != nil {
				return errResponse(CodeBadArgs, "querylog: bad args: "+derr.Error())
			}
		}
		if a.N == 0 {
			a.N = DefaultQueryLogN
		}
		if a.N < 0 || a.N > MaxQueryLogN {
			return errResponse(CodeBadArgs, fmt.Sprintf("querylog: n %d out of range: want 1 to %d", a.N, MaxQueryLogN))
		}
		var d QueryLogData
		d, err = s.h.QueryLog(a)
		if d.Entries == nil {
			d.Entries = []QueryLogEntry{}
		}
		data = d
	case VerbCacheFlush:
		var a CacheFlushArgs
		if !noArgs {
			dec := json.NewDecoder(bytes.NewReader(args))
			dec.DisallowUnknownFields()
			if derr := dec.Decode(&a); derr != nil {
				return errResponse(CodeBadArgs, "cache-flush: bad args: "+derr.Error())
			}
		}
		var n int
		n, err = s.h.CacheFlush(a.Name)
		data = CacheFlushData{Flushed: n}
	case VerbStop:
		s.log.Info("control: stop requested", "uid", p.UID, "pid", p.PID)
		err = s.h.Stop()
	}
	if err != nil {
		return errResponse(CodeFailed, verb+": "+err.Error())
	}
	resp = Response{V: Version, OK: true}
	if data != nil {
		b, merr := json.Marshal(data)
		if merr != nil {
			return errResponse(CodeFailed, verb+": cannot encode: "+merr.Error())
		}
		resp.Data = b
	}
	return resp
}

// QueryLogData is querylog's data.
type QueryLogData struct {
	Entries []QueryLogEntry `json:"entries"`
	// Last is the sequence number of the newest entry returned, or when
	// none, the one asked after (or the newest logged): pass it as the next
	// request's after to follow the log.
	Last uint64 `json:"last"`
	// Lost counts the entries after the one asked for that were
	// overwritten before this request (the follower read too slowly).
	Lost uint64 `json:"lost,omitempty"`
}

// groupCanReach checks that members of group (when one is given) can
// traverse dir to reach the socket: a directory without the search bit
// for its group or others would refuse them before the socket's own mode
// is looked at.
func groupCanReach(dir, group string) error {
	if group == "" {
		return nil
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	if fi.Mode().Perm()&0o011 == 0 {
		return fmt.Errorf("control socket directory %s is mode %04o: members of group %s cannot reach the socket in it; give it the search bit (chmod 0755 %s) or put the socket elsewhere (--control)", dir, fi.Mode().Perm(), group, dir)
	}
	return nil
}

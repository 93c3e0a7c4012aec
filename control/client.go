// SPDX-License-Identifier: MIT

package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// Client talks to a dnstun daemon's control socket. Its methods are safe
// for concurrent use; requests on one Client are sent one at a time.
type Client struct {
	mu     sync.Mutex
	conn   net.Conn
	br     *bufio.Reader
	broken error
}

// DefaultTimeout bounds a request whose context has no deadline.
const DefaultTimeout = 30 * time.Second

// MaxResponse bounds one response line.
const MaxResponse = 32 << 20

// Error is a response with "ok":false.
type Error struct {
	Code    string // one of the Code constants
	Message string
}

func (e *Error) Error() string { return e.Message }

// IsDenied reports whether err is the daemon refusing this process.
func IsDenied(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == CodeDenied
}

// Dial connects to the control socket at path.
func Dial(path string) (*Client, error) {
	c, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w (is dnstun running?)", path, err)
	}
	return &Client{conn: c, br: bufio.NewReaderSize(c, 64<<10)}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Do sends one request and returns the response's data (nil when it has
// none). A response with "ok":false is returned as an *Error. args may be
// nil.
func (c *Client) Do(ctx context.Context, verb string, args map[string]any) (json.RawMessage, error) {
	req := Request{V: Version, Verb: verb}
	if len(args) > 0 {
		b, err := json.Marshal(args)
		if err != nil {
			return nil, err
		}
		req.Args = b
	}
	line, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.broken != nil {
		return nil, c.broken
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(DefaultTimeout)
	}
	c.conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { c.conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	resp, err := c.roundTrip(append(line, '\n'))
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("control %s: %w", verb, ctx.Err())
		} else {
			err = fmt.Errorf("control %s: %w", verb, err)
		}
		// The stream may hold half a response: this connection is done.
		c.broken = err
		return nil, err
	}
	if resp.V != Version {
		return nil, fmt.Errorf("control %s: the daemon answered protocol version %d, this client speaks %d", verb, resp.V, Version)
	}
	if !resp.OK {
		msg := resp.Error
		if msg == "" {
			msg = "request failed"
		}
		return nil, &Error{Code: resp.Code, Message: msg}
	}
	return resp.Data, nil
}

func (c *Client) roundTrip(line []byte) (Response, error) {
	if _, werr := c.conn.Write(line); werr != nil {
		// The daemon may have answered and closed (a refusal): its
		// answer says more than the broken pipe.
		if r, err := c.readResponse(); err == nil {
			return r, nil
		}
		return Response{}, werr
	}
	return c.readResponse()
}

func (c *Client) readResponse() (Response, error) {
	var buf []byte
	for {
		part, err := c.br.ReadSlice('\n')
		buf = append(buf, part...)
		if err == nil {
			break
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			if len(buf) > 0 && errors.Is(err, io.EOF) {
				break
			}
			return Response{}, err
		}
		if len(buf) > MaxResponse {
			return Response{}, fmt.Errorf("response larger than %d bytes", MaxResponse)
		}
	}
	var r Response
	if err := json.Unmarshal(buf, &r); err != nil {
		return Response{}, fmt.Errorf("bad response: %w", err)
	}
	return r, nil
}

func (c *Client) call(ctx context.Context, verb string, args map[string]any, out any) error {
	data, err := c.Do(ctx, verb, args)
	if err != nil || out == nil {
		return err
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("control %s: bad data: %w", verb, err)
	}
	return nil
}

// Status asks for the daemon's state.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var s Status
	err := c.call(ctx, VerbStatus, nil, &s)
	return s, err
}

// Enable brings the TUN and steering up (persistent).
func (c *Client) Enable(ctx context.Context) error { return c.call(ctx, VerbEnable, nil, nil) }

// Disable withdraws steering and closes the TUN; the daemon stays
// (persistent).
func (c *Client) Disable(ctx context.Context) error { return c.call(ctx, VerbDisable, nil, nil) }

// Reload re-reads the config and the lists; a bad config is refused.
func (c *Client) Reload(ctx context.Context) error { return c.call(ctx, VerbReload, nil, nil) }

// Stop asks the daemon to shut down cleanly.
func (c *Client) Stop(ctx context.Context) error { return c.call(ctx, VerbStop, nil, nil) }

// Stats returns the daemon's counters.
func (c *Client) Stats(ctx context.Context) (map[string]uint64, error) {
	var m map[string]uint64
	err := c.call(ctx, VerbStats, nil, &m)
	return m, err
}

// CacheFlush empties the daemon's cache, or removes name and every name
// under it; it returns how many entries went.
func (c *Client) CacheFlush(ctx context.Context, name string) (int, error) {
	var d CacheFlushData
	var args map[string]any
	if name != "" {
		args = map[string]any{"name": name}
	}
	err := c.call(ctx, VerbCacheFlush, args, &d)
	return d.Flushed, err
}

// QueryLog returns up to n of the most recent queries, oldest first
// (n = 0: DefaultQueryLogN).
func (c *Client) QueryLog(ctx context.Context, n int) ([]QueryLogEntry, error) {
	var args map[string]any
	if n != 0 {
		args = map[string]any{"n": n}
	}
	d, err := c.queryLog(ctx, args)
	return d.Entries, err
}

// QueryLogRecent returns up to n of the most recent queries, oldest first,
// with the Last to follow the log from.
func (c *Client) QueryLogRecent(ctx context.Context, n int) (QueryLogData, error) {
	return c.queryLog(ctx, map[string]any{"n": n})
}

// QueryLogAfter returns up to n queries logged after the one with sequence
// number after, oldest first, with the Last to pass next time.
func (c *Client) QueryLogAfter(ctx context.Context, after uint64, n int) (QueryLogData, error) {
	args := map[string]any{"after": after}
	if n != 0 {
		args["n"] = n
	}
	return c.queryLog(ctx, args)
}

func (c *Client) queryLog(ctx context.Context, args map[string]any) (QueryLogData, error) {
	var d QueryLogData
	err := c.call(ctx, VerbQueryLog, args, &d)
	return d, err
}

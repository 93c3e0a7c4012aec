// SPDX-License-Identifier: MIT

package upstream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

// h3MediaType is the media type of a DNS message over HTTP (RFC 8484 §6).
const h3MediaType = "application/dns-message"

// newDoH3 returns a DNS-over-HTTPS upstream over HTTP/3: RFC 8484 POST
// requests (RFC 9114) on one QUIC connection, which quicExchanger dials
// (the server's name through the bootstrap resolvers, a marked socket)
// and quic-go's http3.Transport speaks HTTP/3 on. The transport's own
// connection pool is not used: it drops a connection from the pool on a
// single request's error without closing it, and leaves its dials
// unbounded in time.
func newDoH3(spec Spec, opt DialOptions, answer func([]byte), fail func(uint16, error)) (Exchanger, error) {
	path := spec.Path
	if path == "" {
		path = "/dns-query"
	}
	if !strings.HasPrefix(path, "/") {
		return nil, fmt.Errorf("upstream %s: the path %q must start with /", spec, path)
	}
	url := "https://" + net.JoinHostPort(spec.Host, strconv.Itoa(int(spec.Port))) + path
	if _, err := http.NewRequest(http.MethodPost, url, nil); err != nil {
		return nil, fmt.Errorf("upstream %s: %w", spec, err)
	}
	x := newQUICExchanger(spec, opt, answer, fail)
	x.tls = tlsConfig(spec, opt, http3.NextProtoH3)
	x.h3 = &http3.Transport{
		// A DNS answer's headers are a few dozen bytes.
		MaxResponseHeaderBytes: 16 << 10,
		// DNS messages are not worth compressing, and a gzip reader
		// would hide the answer's size from the bound below.
		DisableCompression: true,
		Logger:             x.log,
	}
	x.closeCode = quic.ApplicationErrorCode(http3.ErrCodeNoError)
	x.exchange = func(ctx context.Context, c *quicConn, q []byte) ([]byte, error) {
		return doh3Exchange(ctx, c, url, q)
	}
	return x, nil
}

// doh3Exchange POSTs q to url on c and reads the answer.
func doh3Exchange(ctx context.Context, c *quicConn, url string, q []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(q))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", h3MediaType)
	req.Header.Set("Accept", h3MediaType)
	resp, err := c.h3.RoundTrip(req)
	if err != nil {
		var se *quic.StreamError
		var he *http3.Error
		if ctx.Err() == nil && c.Context().Err() == nil && !errors.As(err, &se) && !errors.As(err, &he) {
			// Neither the request's stream nor the connection failed,
			// yet no request went: the server ended the connection for
			// new requests (GOAWAY, RFC 9114 §5.2).
			err = &connGoneError{err}
		}
		return nil, fmt.Errorf("HTTP/3 POST: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP/3 POST: the server answered %q, not 200 OK: check the path in the URL", resp.Status)
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != h3MediaType {
		return nil, fmt.Errorf("HTTP/3 POST: the answer's content type is %q, not %s: is the URL a DoH endpoint?", resp.Header.Get("Content-Type"), h3MediaType)
	}
	ans, err := io.ReadAll(io.LimitReader(resp.Body, quicMaxMsg+1))
	switch {
	case err != nil:
		return nil, fmt.Errorf("HTTP/3 POST: read the answer: %w", err)
	case len(ans) > quicMaxMsg:
		return nil, fmt.Errorf("HTTP/3 POST: the answer is longer than a DNS message can be (%d bytes)", quicMaxMsg)
	case len(ans) < quicHeaderLen:
		return nil, fmt.Errorf("HTTP/3 POST: a %d-byte answer, shorter than a DNS header", len(ans))
	}
	return ans, nil
}

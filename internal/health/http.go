package health

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"
)

// maxHTTPRead caps the response headers and the part of the body a probe reads.
const maxHTTPRead = 64 << 10

// probeDialer opens every probe's connection, without TCP keep-alives.
var probeDialer = &net.Dialer{KeepAlive: -1}

// probeClient is shared by every HTTP checker. Keep-alives are off so each
// probe proves the server still accepts new connections, which is what the
// VIP's clients need; redirects are not followed, so a 3xx is judged by the
// status range; proxies from the environment are ignored, since a probe must
// reach the target itself. Deadlines come from each check's context.
var probeClient = &http.Client{
	Transport: &http.Transport{
		Proxy:                  nil,
		DialContext:            probeDialer.DialContext,
		DisableKeepAlives:      true,
		DisableCompression:     true,
		MaxResponseHeaderBytes: maxHTTPRead,
	},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// HTTP passes when a GET of URL answers with a status in [StatusMin, StatusMax].
// A zero StatusMax means StatusMin alone; both zero mean 200-299. It has a value
// receiver, so HTTP and *HTTP are both Checkers.
type HTTP struct {
	URL       string
	StatusMin int
	StatusMax int
}

var _ Checker = HTTP{}

// Check implements Checker. Plain http is spoken over a bare connection:
// a probe needs one request and its status, not the client's connection
// pool and its two goroutines per connection, and that halves the cost of
// thousands of checks a second. https goes through the standard client.
func (h HTTP) Check(ctx context.Context) error {
	u, err := url.Parse(h.URL)
	if err != nil || u.Host == "" {
		return fmt.Errorf("GET %s: not a URL with a host", h.URL)
	}
	var status int
	var body io.ReadCloser
	if u.Scheme == "http" {
		status, body, err = getPlain(ctx, u)
	} else {
		status, body, err = getWithClient(ctx, h.URL)
	}
	if err != nil {
		return fmt.Errorf("GET %s: %w", h.URL, err)
	}
	defer body.Close()
	lo, hi := h.statusRange()
	if status < lo || status > hi {
		return fmt.Errorf("GET %s: status %d, want %s", h.URL, status, rangeText(lo, hi))
	}
	// Read what a client would, up to the cap: a server that cannot finish
	// its answer in time fails, one that sends an endless body does not.
	if _, err := io.Copy(io.Discard, io.LimitReader(body, maxHTTPRead)); err != nil {
		return fmt.Errorf("GET %s: read body: %w", h.URL, deadlineError(ctx, err))
	}
	return nil
}

// deadlineError reports a read or write that the connection's deadline,
// which is ctx's, cut short as ctx's error, as the standard client would.
func deadlineError(ctx context.Context, err error) error {
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		return err
	}
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	return context.DeadlineExceeded
}

// getPlain sends one GET over a new connection, closed afterwards, with
// ctx's deadline on every read and write.
func getPlain(ctx context.Context, u *url.URL) (int, io.ReadCloser, error) {
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	conn, err := probeDialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0, nil, err
	}
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(deadline)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	closer := func() error { stop(); return conn.Close() }
	req := "GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host + "\r\nUser-Agent: vipd-health\r\nConnection: close\r\n\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		closer()
		return 0, nil, deadlineError(ctx, err)
	}
	// The cap covers the headers too: a server that never ends them fails.
	r := bufio.NewReader(io.LimitReader(conn, 2*maxHTTPRead))
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		closer()
		return 0, nil, deadlineError(ctx, err)
	}
	return resp.StatusCode, readCloser{resp.Body, closer}, nil
}

// getWithClient sends a GET through probeClient.
func getWithClient(ctx context.Context, rawURL string) (int, io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("User-Agent", "vipd-health")
	resp, err := probeClient.Do(req)
	if err != nil {
		var uerr *url.Error // it repeats the method and URL
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return 0, nil, err
	}
	return resp.StatusCode, resp.Body, nil
}

// readCloser reads from a response body and closes its connection.
type readCloser struct {
	io.Reader
	close func() error
}

func (r readCloser) Close() error { return r.close() }

func (h HTTP) statusRange() (lo, hi int) {
	switch {
	case h.StatusMin == 0 && h.StatusMax == 0:
		return 200, 299
	case h.StatusMax == 0:
		return h.StatusMin, h.StatusMin
	}
	return h.StatusMin, h.StatusMax
}

func rangeText(lo, hi int) string {
	if lo == hi {
		return fmt.Sprint(lo)
	}
	return fmt.Sprintf("%d-%d", lo, hi)
}

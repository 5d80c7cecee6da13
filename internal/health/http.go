package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
)

// maxHTTPRead caps the response headers and the part of the body a probe reads.
const maxHTTPRead = 64 << 10

// probeClient is shared by every HTTP checker. Keep-alives are off so each
// probe proves the server still accepts new connections, which is what the
// VIP's clients need; redirects are not followed, so a 3xx is judged by the
// status range; proxies from the environment are ignored, since a probe must
// reach the target itself. Deadlines come from each check's context.
var probeClient = &http.Client{
	Transport: &http.Transport{
		Proxy:                  nil,
		DialContext:            (&net.Dialer{KeepAlive: -1}).DialContext,
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

// Check implements Checker.
func (h HTTP) Check(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.URL, nil)
	if err != nil {
		return fmt.Errorf("GET %s: %w", h.URL, err)
	}
	req.Header.Set("User-Agent", "vipd-health")
	resp, err := probeClient.Do(req)
	if err != nil {
		var uerr *url.Error // it repeats the method and URL
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return fmt.Errorf("GET %s: %w", h.URL, err)
	}
	defer resp.Body.Close()
	lo, hi := h.statusRange()
	if resp.StatusCode < lo || resp.StatusCode > hi {
		return fmt.Errorf("GET %s: status %d, want %s", h.URL, resp.StatusCode, rangeText(lo, hi))
	}
	// Read what a client would, up to the cap: a server that cannot finish
	// its answer in time fails, one that sends an endless body does not.
	if _, err := io.Copy(io.Discard, io.LimitReader(resp.Body, maxHTTPRead)); err != nil {
		return fmt.Errorf("GET %s: read body: %w", h.URL, err)
	}
	return nil
}

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

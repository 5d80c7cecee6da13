package api

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/vipd/vipd/internal/lb"
)

// failingStore answers every create as an agent whose state write failed.
type failingStore struct{ *fakeLBs }

func (failingStore) CreateLoadBalancer(context.Context, lb.Spec) (LoadBalancer, bool, error) {
	return LoadBalancer{}, false, errors.New("state db: write load balancer: no space left on device")
}

func TestServerErrorsAreLogged(t *testing.T) {
	var logs bytes.Buffer
	h := NewServer(failingStore{newFakeLBs()}, slog.New(slog.NewTextHandler(&logs, nil))).Handler()

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/loadbalancer", strings.NewReader(`{"name": "a", "port": 80}`)))
	if rec.Code != http.StatusInternalServerError {
		t.Fatalf("got %d %s, want 500", rec.Code, rec.Body)
	}
	if got := logs.String(); !strings.Contains(got, "level=ERROR") || !strings.Contains(got, "no space left on device") ||
		!strings.Contains(got, "path=/loadbalancer") {
		t.Errorf("log after a 500:\n%s\nwant an ERROR line with the cause and the path", got)
	}

	// A client's mistake is the client's: no log line.
	logs.Reset()
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/loadbalancer", strings.NewReader(`{"nme": "a"}`)))
	if rec.Code != http.StatusBadRequest || logs.Len() != 0 {
		t.Errorf("400 reply %d logged %q, want nothing", rec.Code, logs.String())
	}
}

func TestWrongTokenLogIsRateLimited(t *testing.T) {
	var logs bytes.Buffer
	h := requireToken([]byte(testToken), slog.New(slog.NewTextHandler(&logs, nil)),
		http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }))
	for range 50 {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/status", nil)
		req.Header.Set("Authorization", "Bearer guess")
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusUnauthorized {
			t.Fatalf("wrong token: %d, want 401", rec.Code)
		}
	}
	if n := strings.Count(logs.String(), "wrong bearer token"); n != 1 {
		t.Errorf("50 wrong tokens in a burst logged %d lines, want 1:\n%s", n, logs.String())
	}
	if strings.Contains(logs.String(), "guess") {
		t.Errorf("log quotes the token sent: %s", logs.String())
	}
}

func TestRateLimited(t *testing.T) {
	l := &rateLimited{every: 10 * time.Second}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	steps := []struct {
		at         time.Duration
		ok         bool
		suppressed int
	}{
		{0, true, 0},
		{time.Second, false, 0},
		{9 * time.Second, false, 0},
		{10 * time.Second, true, 2},
		{11 * time.Second, false, 0},
		{time.Minute, true, 1},
		{2 * time.Minute, true, 0},
	}
	for _, s := range steps {
		ok, n := l.allow(t0.Add(s.at))
		if ok != s.ok || n != s.suppressed {
			t.Errorf("allow at +%s = %v, %d; want %v, %d", s.at, ok, n, s.ok, s.suppressed)
		}
	}
}

package health

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func statusServer(t *testing.T, code int) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(code)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestHTTPStatus(t *testing.T) {
	tests := []struct {
		name     string
		code     int
		min, max int
		wantErr  string // substring; "" means pass
	}{
		{name: "default range passes 200", code: 200},
		{name: "default range passes 204", code: 204},
		{name: "default range fails 500", code: 500, wantErr: "status 500, want 200-299"},
		{name: "in explicit range", code: 404, min: 400, max: 404},
		{name: "below explicit range", code: 399, min: 400, max: 404, wantErr: "status 399, want 400-404"},
		{name: "single code matches", code: 204, min: 204},
		{name: "single code differs", code: 200, min: 204, wantErr: "status 200, want 204"},
		{name: "redirect not followed, judged by range", code: 302, min: 200, max: 299, wantErr: "status 302"},
		{name: "redirect in range passes", code: 302, min: 300, max: 399},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := statusServer(t, tt.code)
			h := HTTP{URL: srv.URL + "/healthz", StatusMin: tt.min, StatusMax: tt.max}
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			err := h.Check(ctx)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Check() = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Check() = %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestHTTPRedirectTargetNotFetched(t *testing.T) {
	hit := make(chan struct{}, 1)
	target := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hit <- struct{}{} }))
	t.Cleanup(target.Close)
	srv := httptest.NewServer(http.RedirectHandler(target.URL, http.StatusFound))
	t.Cleanup(srv.Close)

	err := HTTP{URL: srv.URL, StatusMin: 302}.Check(t.Context())
	if err != nil {
		t.Fatalf("Check() = %v, want nil", err)
	}
	select {
	case <-hit:
		t.Fatal("the redirect was followed")
	default:
	}
}

func TestHTTPSlowServerTimesOut(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })

	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := HTTP{URL: srv.URL}.Check(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Check() = %v, want a deadline error", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("Check took %v, want about the 200ms deadline", took)
	}
}

// An endless body must not keep the probe reading: it reads up to the cap and
// passes long before the deadline.
func TestHTTPBodyReadIsCapped(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := make([]byte, 32<<10)
		stop := time.Now().Add(30 * time.Second) // outlasts the probe's deadline
		for time.Now().Before(stop) {
			if _, err := w.Write(chunk); err != nil || r.Context().Err() != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	start := time.Now()
	if err := (HTTP{URL: srv.URL}).Check(ctx); err != nil {
		t.Fatalf("Check() = %v, want nil", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("Check took %v: the body read is not capped", took)
	}
}

// A body that stalls after a good status fails: the server did not finish.
func TestHTTPStalledBodyFails(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })

	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	err := HTTP{URL: srv.URL}.Check(ctx)
	if err == nil || !strings.Contains(err.Error(), "read body") {
		t.Fatalf("Check() = %v, want a read body error", err)
	}
}

func TestHTTPUnreachable(t *testing.T) {
	srv := statusServer(t, 200)
	url := srv.URL
	srv.Close()
	err := HTTP{URL: url}.Check(t.Context())
	if err == nil || !strings.Contains(err.Error(), url) {
		t.Fatalf("Check() = %v, want an error naming %s", err, url)
	}
}

func TestHTTPBadURL(t *testing.T) {
	if err := (HTTP{URL: "http://[::1"}).Check(t.Context()); err == nil {
		t.Fatal("Check() = nil for a malformed URL")
	}
}

// https goes through the standard client and its certificate checks.
func TestHTTPSVerifiesCertificate(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(srv.Close)
	err := HTTP{URL: srv.URL}.Check(t.Context())
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("Check() = %v, want a certificate error from the TLS client", err)
	}
}

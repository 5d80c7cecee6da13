package lab

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vipd/vipd/internal/testnet"
)

func TestHandler(t *testing.T) {
	fail := filepath.Join(t.TempDir(), "fail")
	h := Handler("n2", fail)
	do := func(method, path string) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
		return rec.Code, rec.Body.String()
	}
	for _, tt := range []struct {
		name, method, path string
		failing            bool
		code               int
		body               string
	}{
		{name: "name", method: "GET", path: "/", code: 200, body: "n2\n"},
		{name: "name while failing", method: "GET", path: "/", failing: true, code: 200, body: "n2\n"},
		{name: "healthy", method: "GET", path: "/healthz", code: 200, body: "ok\n"},
		{name: "failing", method: "GET", path: "/healthz", failing: true, code: 503},
		{name: "other path", method: "GET", path: "/x", code: 404},
		{name: "post", method: "POST", path: "/", code: 405},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.failing {
				if err := os.WriteFile(fail, nil, 0o644); err != nil {
					t.Fatal(err)
				}
				defer os.Remove(fail)
			}
			code, body := do(tt.method, tt.path)
			if code != tt.code || (tt.body != "" && body != tt.body) {
				t.Errorf("%s %s = %d %q, want %d %q", tt.method, tt.path, code, body, tt.code, tt.body)
			}
		})
	}
}

// TestServe serves on loopback and stops when its context ends.
func TestServe(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	address := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, address, "n1", filepath.Join(t.TempDir(), "fail")) }()
	var body []byte
	err = testnet.WaitFor(t.Context(), 10*time.Second, func(context.Context) error { // until it listens
		resp, err := http.Get("http://" + address + "/")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, err = io.ReadAll(resp.Body)
		return err
	})
	if err != nil || string(body) != "n1\n" {
		t.Errorf("GET / = %q, %v; want %q", body, err, "n1\n")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve outlived its context")
	}
}

func TestServeBadAddress(t *testing.T) {
	if err := Serve(context.Background(), "127.0.0.1:99999", "n1", "/nonexistent"); err == nil {
		t.Error("Serve on port 99999 succeeded")
	}
}

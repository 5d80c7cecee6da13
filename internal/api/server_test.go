package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vipd/vipd/internal/config"
)

// fixedBackend is the non-load-balancer part of a fake Backend (fakeLBs).
type fixedBackend Status

func (b fixedBackend) Status() Status { return Status(b) }
func (fixedBackend) Reload(context.Context) (ReloadResult, error) {
	return ReloadResult{Hash: "h"}, nil
}
func (fixedBackend) Drain(_ context.Context, name string) error   { return drainErr(name) }
func (fixedBackend) Undrain(_ context.Context, name string) error { return drainErr(name) }

// drainErr plays a backend's answers: "web" exists, "maint" has a
// maintenance file, anything else is unknown.
func drainErr(name string) error {
	switch name {
	case "web":
		return nil
	case "maint":
		return fmt.Errorf("service %q in maintenance: %w", name, ErrConflict)
	default:
		return fmt.Errorf("service %q: %w", name, ErrNotFound)
	}
}

// startServer serves b on a socket in a temp dir and returns its path.
func startServer(t *testing.T, b Backend) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "run", "vipd.sock")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ln, err := ListenSocket(sock)
	if err != nil {
		t.Fatal(err)
	}
	go func() { done <- NewServer(b, slog.New(slog.DiscardHandler)).ServeSocket(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeSocket: %v", err)
		}
	})
	return sock
}

func TestStatusRoundTrip(t *testing.T) {
	want := Status{Version: "v1", RouterID: "10.0.0.1", ASN: 4200000000,
		Peers: []PeerStatus{{Name: "r1", Address: "10.0.0.254", ASN: 65535, State: "Established"}},
		VIPs:  []VIPStatus{{Prefix: "192.168.0.16/32", Service: "web", Announced: true, Peers: []string{"r1"}, Reason: "checks passing"}},
	}
	b := newFakeLBs()
	b.fixedBackend = fixedBackend(want)
	sock := startServer(t, b)
	got, err := NewClient(sock).Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got.ASN != want.ASN || got.Peers[0].State != "Established" || got.VIPs[0].Peers[0] != "r1" {
		t.Errorf("Status() = %+v, want %+v", got, want)
	}
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("socket mode %o, want 600", perm)
	}
}

func TestUnknownPathIsJSONError(t *testing.T) {
	sock := startServer(t, newFakeLBs())
	c := NewClient(sock)
	_, err := c.do(context.Background(), http.MethodGet, "/nope", nil, &struct{}{})
	var he *HTTPError
	if !errors.As(err, &he) || he.Status != http.StatusNotFound || he.Message == "" {
		t.Fatalf("GET /nope: err %v, want a 404 HTTPError with a message", err)
	}
	// Wrong method on a known path: the mux answers 405.
	req, _ := http.NewRequest(http.MethodPost, "http://vipd/status", strings.NewReader("{}"))
	resp, err := c.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /status: %s, want 405", resp.Status)
	}
}

func TestSocketTakeover(t *testing.T) {
	sock := startServer(t, newFakeLBs())
	// A live daemon on the socket is never displaced.
	if _, err := ListenSocket(sock); err == nil || !strings.Contains(err.Error(), "another daemon") {
		t.Fatalf("listenUnix on a live socket: err %v, want 'another daemon'", err)
	}
	// A stale socket file (nobody listening) is replaced.
	stale := filepath.Join(t.TempDir(), "stale.sock")
	ln, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	if _, err := os.Stat(stale); err != nil {
		t.Fatalf("stale socket file missing: %v", err)
	}
	ln2, err := ListenSocket(stale)
	if err != nil {
		t.Fatalf("listenUnix on a stale socket: %v", err)
	}
	ln2.Close()
}

func TestDrainReplies(t *testing.T) {
	c := NewClient(startServer(t, newFakeLBs()))
	ctx := context.Background()
	if err := c.Drain(ctx, "web", true); err != nil {
		t.Errorf("drain web: %v", err)
	}
	for name, want := range map[string]int{"nope": http.StatusNotFound, "maint": http.StatusConflict} {
		err := c.Drain(ctx, name, false)
		var he *HTTPError
		if !errors.As(err, &he) || he.Status != want || !strings.Contains(he.Message, name) {
			t.Errorf("undrain %s: %v, want HTTP %d naming it", name, err, want)
		}
	}
	if res, err := c.Reload(ctx); err != nil || res.Hash != "h" {
		t.Errorf("reload: %+v %v", res, err)
	}
}

func TestConfigErrorsReply(t *testing.T) {
	_, err := config.Parse([]byte("bgp:\n  asn: 0\n  bogus: 1\n"))
	if err == nil {
		t.Fatal("config.Parse accepted a bad config")
	}
	status, body := errorReply(fmt.Errorf("reload: %w", err))
	if status != http.StatusBadRequest || len(body.Errors) < 2 || body.Field == "" || body.Errors[0].Line == 0 {
		t.Errorf("errorReply = %d %+v, want 400 with every field and line", status, body)
	}
}

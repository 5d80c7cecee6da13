package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vipd/vipd/internal/testnet"
)

// runLab runs `vipd lab ARGS` and returns its stdout.
func runLab(ctx context.Context, args ...string) (string, error) {
	cmd := newLabCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(io.Discard)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(ctx)
	return out.String(), err
}

func TestLabUsage(t *testing.T) {
	for _, args := range [][]string{{"fail"}, {"heal", "n1", "n2"}, {"kill"}, {"up", "now"}, {"down", "n1"}} {
		_, err := runLab(t.Context(), args...)
		var ue usageError
		if !errors.As(err, &ue) {
			t.Errorf("vipd lab %s: %v, want a usage error", strings.Join(args, " "), err)
		}
	}
}

// TestLabServe runs the hidden demo service on loopback until its context
// ends.
func TestLabServe(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	address := l.Addr().String()
	l.Close()
	fail := filepath.Join(t.TempDir(), "fail")
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := runLab(ctx, "serve", "--name", "n3", "--listen", address, "--fail-file", fail)
		done <- err
	}()
	get := func(path string) (int, string, error) {
		resp, err := http.Get("http://" + address + path)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), err
	}
	var code int
	var body string
	err = testnet.WaitFor(t.Context(), 10*time.Second, func(context.Context) error { // until it listens
		c, b, err := get("/")
		code, body = c, b
		return err
	})
	if code != 200 || body != "n3\n" {
		t.Errorf("GET / = %d %q, %v; want 200 \"n3\\n\"", code, body, err)
	}
	if err := os.WriteFile(fail, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, err := get("/healthz"); code != http.StatusServiceUnavailable {
		t.Errorf("GET /healthz with the fail file = %d, %v; want 503", code, err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve outlived its context")
	}
}

// TestLabDownWithoutLab: down with no lab says so and succeeds.
func TestLabDownWithoutLab(t *testing.T) {
	if os.Geteuid() != 0 {
		_, err := runLab(t.Context(), "down", "--state-dir", t.TempDir())
		if err == nil || !strings.Contains(err.Error(), "needs root") {
			t.Errorf("down without root: %v, want the root error", err)
		}
		return
	}
	out, err := runLab(t.Context(), "down", "--prefix", fmt.Sprintf("vt%d-cmd", os.Getpid()), "--state-dir", t.TempDir())
	if err != nil || !strings.Contains(out, "no lab is up") {
		t.Errorf("down without a lab: %q, %v; want \"no lab is up\" and no error", out, err)
	}
}

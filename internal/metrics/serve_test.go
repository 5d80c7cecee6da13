package metrics

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

const testWait = 10 * time.Second

// serve runs Serve on a fresh loopback listener until the returned stop
// function is called, which checks that Serve returned nil in time.
func serve(t *testing.T, h http.Handler) (addr string, stop func() time.Duration) {
	t.Helper()
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, h) }()
	stopped := false
	stop = func() time.Duration {
		if stopped {
			return 0
		}
		stopped = true
		start := time.Now()
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve() = %v, want nil after ctx ended", err)
			}
		case <-time.After(testWait):
			t.Fatal("Serve did not return after its context ended")
		}
		return time.Since(start)
	}
	t.Cleanup(func() { stop() })
	return ln.Addr().String(), stop
}

func TestServe(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := New(reg, nil, BuildInfo{Version: "test"}); err != nil {
		t.Fatal(err)
	}
	addr, stop := serve(t, Handler(reg, nil))

	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `vipd_build_info{goversion="",revision="",version="test"} 1`) {
		t.Fatalf("GET /metrics: %d\n%s", resp.StatusCode, body)
	}

	stop()
	if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		conn.Close()
		t.Error("the listener still accepts connections after Serve returned")
	}
}

// A scrape that hangs does not hold up shutdown for more than the grace.
func TestServeCutsOffAHungScrape(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	hung := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		close(entered)
		<-release
	})
	addr, stop := serve(t, hung)

	client := make(chan error, 1)
	go func() {
		resp, err := http.Get("http://" + addr + "/")
		if err == nil {
			resp.Body.Close()
		}
		client <- err
	}()
	select {
	case <-entered:
	case <-time.After(testWait):
		t.Fatal("the request never reached the handler")
	}
	if took := stop(); took < shutdownGrace || took > shutdownGrace+5*time.Second {
		t.Errorf("Serve returned %v after cancel, want about the %v grace", took, shutdownGrace)
	}
	select {
	case err := <-client:
		if err == nil {
			t.Error("the hung scrape got an answer, want its connection cut")
		}
	case <-time.After(testWait):
		t.Error("the hung scrape's connection was not cut off")
	}
}

func TestListenAddressInUse(t *testing.T) {
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = Listen(ln.Addr().String())
	if err == nil || !strings.Contains(err.Error(), ln.Addr().String()) {
		t.Errorf("Listen on a used address: %v, want an error naming it", err)
	}
}

// Serve reports a listener that fails before ctx ends.
func TestServeListenerClosed(t *testing.T) {
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	done := make(chan error, 1)
	go func() { done <- Serve(t.Context(), ln, http.NotFoundHandler()) }()
	select {
	case err := <-done:
		if err == nil {
			t.Error("Serve on a closed listener returned nil")
		}
	case <-time.After(testWait):
		t.Fatal("Serve on a closed listener did not return")
	}
}

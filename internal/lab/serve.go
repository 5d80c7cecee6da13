package lab

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"
)

// Handler is a lab node's demo service: GET / answers with the node's
// name and a newline, and GET /healthz, which vipd's http check asks,
// answers 200 unless failFile exists, then 503.
func Handler(name, failFile string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, name)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if _, err := os.Stat(failFile); err == nil {
			http.Error(w, "failing: "+failFile+" exists", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	return mux
}

// Serve serves Handler(name, failFile) on address until ctx ends.
func Serve(ctx context.Context, address, name, failFile string) error {
	l, err := net.Listen("tcp", address)
	if err != nil {
		return fmt.Errorf("lab serve: %w", err)
	}
	srv := &http.Server{
		Handler:           Handler(name, failFile),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown) // Serve below reports how it ended
	}()
	slog.Info("demo service up", "name", name, "listen", l.Addr().String(), "fail_file", failFile)
	err = srv.Serve(l)
	cancel()
	<-done
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("lab serve: %w", err)
}

package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// Backend is what the server exposes; the agent implements it.
type Backend interface {
	Status() Status
}

// Server serves the REST API.
type Server struct {
	backend Backend
	log     *slog.Logger
}

// NewServer returns a server for b. It does not listen yet.
func NewServer(b Backend, log *slog.Logger) *Server {
	return &Server{backend: b, log: log}
}

// Handler returns the API's HTTP handler. Every reply, errors included, is JSON.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	route(mux, http.MethodGet, "/status", s.status)
	route(mux, http.MethodGet, "/healthz", func(w http.ResponseWriter, _ *http.Request) error {
		return writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.Handle("/", handlerFunc(func(http.ResponseWriter, *http.Request) error {
		return &HTTPError{Status: http.StatusNotFound, Message: "no such endpoint"}
	}))
	return mux
}

// route registers h for method and path, and a JSON 405 for other methods.
func route(mux *http.ServeMux, method, path string, h handlerFunc) {
	mux.Handle(method+" "+path, h)
	mux.Handle(path, handlerFunc(func(w http.ResponseWriter, _ *http.Request) error {
		w.Header().Set("Allow", method)
		return &HTTPError{Status: http.StatusMethodNotAllowed, Message: "method not allowed; use " + method}
	}))
}

func (s *Server) status(w http.ResponseWriter, _ *http.Request) error {
	return writeJSON(w, http.StatusOK, s.backend.Status())
}

// ServeSocket serves the API on a unix socket at path (mode 0600) until ctx
// ends. A stale socket file left by a dead daemon is replaced; a live one is
// an error.
func (s *Server) ServeSocket(ctx context.Context, path string) error {
	ln, err := listenUnix(path)
	if err != nil {
		return err
	}
	defer os.Remove(path)
	return s.serve(ctx, ln)
}

func (s *Server) serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("api %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutCtx)
	<-errc
	return nil
}

func listenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("api socket %s: %w", path, err)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("api socket %s: another daemon is answering on it", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("api socket %s: remove stale socket: %w", path, err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("api socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("api socket %s: %w", path, err)
	}
	return ln, nil
}

// HTTPError is an error with an HTTP status and an optional field name.
type HTTPError struct {
	Status  int
	Message string
	Field   string
}

func (e *HTTPError) Error() string { return e.Message }

// handlerFunc lets handlers return an error that one place turns into JSON.
type handlerFunc func(http.ResponseWriter, *http.Request) error

func (f handlerFunc) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	err := f(w, r)
	if err == nil {
		return
	}
	var he *HTTPError
	if !errors.As(err, &he) {
		he = &HTTPError{Status: http.StatusInternalServerError, Message: err.Error()}
	}
	_ = writeJSON(w, he.Status, Error{Message: he.Message, Field: he.Field})
}

func writeJSON(w http.ResponseWriter, code int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

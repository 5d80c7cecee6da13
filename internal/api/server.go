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

	"github.com/vipd/vipd/internal/config"
)

// Backend is what the server exposes; the agent implements it. Its errors
// wrap ErrNotFound or ErrConflict, or are *config.Errors, to choose the
// reply's status.
type Backend interface {
	Status() Status
	Reload(ctx context.Context) (ReloadResult, error)
	Drain(ctx context.Context, service string) error
	Undrain(ctx context.Context, service string) error
}

// Errors a Backend wraps to choose the reply's status.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict")
)

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
	route(mux, http.MethodPost, "/reload", s.reload)
	route(mux, http.MethodPost, "/services/{name}/drain", s.drain(true))
	route(mux, http.MethodPost, "/services/{name}/undrain", s.drain(false))
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

func (s *Server) reload(w http.ResponseWriter, r *http.Request) error {
	res, err := s.backend.Reload(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, res)
}

func (s *Server) drain(drained bool) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		name := r.PathValue("name")
		op := s.backend.Undrain
		if drained {
			op = s.backend.Drain
		}
		if err := op(r.Context(), name); err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, map[string]any{"service": name, "drained": drained})
	}
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
	Details []FieldError // a rejected config's problems, as the client got them
}

func (e *HTTPError) Error() string { return e.Message }

// handlerFunc lets handlers return an error that one place turns into JSON.
type handlerFunc func(http.ResponseWriter, *http.Request) error

func (f handlerFunc) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := f(w, r); err != nil {
		status, body := errorReply(err)
		_ = writeJSON(w, status, body)
	}
}

// errorReply maps an error to a status and a JSON body that names the field.
func errorReply(err error) (int, Error) {
	var he *HTTPError
	var ce *config.Errors
	switch {
	case errors.As(err, &he):
		return he.Status, Error{Message: he.Message, Field: he.Field}
	case errors.As(err, &ce):
		body := Error{Message: err.Error()}
		for _, fe := range ce.List {
			body.Errors = append(body.Errors, FieldError{Field: fe.Path, Line: fe.Line, Message: fe.Msg})
		}
		if len(body.Errors) > 0 {
			body.Field = body.Errors[0].Field
		}
		return http.StatusBadRequest, body
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound, Error{Message: err.Error()}
	case errors.Is(err, ErrConflict):
		return http.StatusConflict, Error{Message: err.Error()}
	default:
		return http.StatusInternalServerError, Error{Message: err.Error()}
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

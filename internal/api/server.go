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
	"strings"
	"time"

	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/internal/lb"
)

// Backend is what the server exposes; the agent implements it. Its errors
// wrap ErrNotFound or ErrConflict (or lb's), or are *config.Errors or
// *lb.FieldError, to choose the reply's status.
type Backend interface {
	Status() Status
	Reload(ctx context.Context) (ReloadResult, error)
	Drain(ctx context.Context, service string) error
	Undrain(ctx context.Context, service string) error
	// Cluster is the cluster store's state; without a cluster section it
	// wraps ErrNotFound.
	Cluster() (ClusterStatus, error)
	LoadBalancers
}

// LoadBalancers is the load-balancer part of a Backend. The specs it gets
// are decoded but neither defaulted nor validated: that is its job, and a
// rejected field comes back as an *lb.FieldError.
type LoadBalancers interface {
	// CreateLoadBalancer creates a load balancer, or returns the existing
	// one of that name (created false) when its spec is the same; a
	// different spec under a taken name wraps ErrConflict.
	CreateLoadBalancer(ctx context.Context, spec lb.Spec) (l LoadBalancer, created bool, err error)
	LoadBalancers() []LoadBalancer
	LoadBalancer(uuid string) (LoadBalancer, error)
	DeleteLoadBalancer(ctx context.Context, uuid string) error
	AddBackend(ctx context.Context, lbUUID string, b lb.BackendSpec) (LoadBalancer, error)
	RemoveBackend(ctx context.Context, lbUUID, backendUUID string) (LoadBalancer, error)
}

// Errors a Backend wraps to choose the reply's status.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict")
	// ErrUnavailable: what the request needs is out of reach for now (the
	// cluster store); 503.
	ErrUnavailable = errors.New("unavailable")
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

// endpoint is one route of the API. GET /openapi.json describes them all.
type endpoint struct {
	method, pattern string
	h               handlerFunc
}

func (s *Server) endpoints() []endpoint {
	return []endpoint{
		{http.MethodGet, "/status", s.status},
		{http.MethodPost, "/reload", s.reload},
		{http.MethodPost, "/services/{name}/drain", s.drain(true)},
		{http.MethodPost, "/services/{name}/undrain", s.drain(false)},
		{http.MethodGet, "/healthz", healthz},
		{http.MethodGet, "/cluster", s.cluster},
		{http.MethodGet, "/openapi.json", serveOpenAPI},
		{http.MethodPost, "/loadbalancer", s.createLoadBalancer},
		{http.MethodGet, "/loadbalancers", s.listLoadBalancers},
		{http.MethodGet, "/loadbalancer/{uuid}", s.getLoadBalancer},
		{http.MethodDelete, "/loadbalancer/{uuid}", s.deleteLoadBalancer},
		{http.MethodPost, "/loadbalancer/{uuid}/backend", s.addBackend},
		{http.MethodDelete, "/loadbalancer/{uuid}/backend/{backend}", s.removeBackend},
	}
}

// Handler returns the API's HTTP handler, without authentication (the
// control socket's mode is its access control). Every reply, errors
// included, is JSON.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	var patterns []string
	allow := map[string][]string{}
	for _, e := range s.endpoints() {
		mux.Handle(e.method+" "+e.pattern, s.logFailures(e.h))
		if allow[e.pattern] == nil {
			patterns = append(patterns, e.pattern)
		}
		allow[e.pattern] = append(allow[e.pattern], e.method)
	}
	// Known paths answer other methods with a JSON 405.
	for _, p := range patterns {
		methods := strings.Join(allow[p], ", ")
		mux.Handle(p, handlerFunc(func(w http.ResponseWriter, _ *http.Request) error {
			w.Header().Set("Allow", methods)
			return &HTTPError{Status: http.StatusMethodNotAllowed, Message: "method not allowed; use " + methods}
		}))
	}
	mux.Handle("/", handlerFunc(func(http.ResponseWriter, *http.Request) error {
		return &HTTPError{Status: http.StatusNotFound, Message: "no such endpoint"}
	}))
	return mux
}

// logFailures logs every reply of 500 or more with its cause. The client
// gets the message, but a failed state write (disk full, read-only
// state_dir) is the operator's problem, and the operator reads logs.
func (s *Server) logFailures(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		err := h(w, r)
		if err == nil {
			return nil
		}
		if status, _ := errorReply(err); status >= http.StatusInternalServerError {
			s.log.Error("api: request failed", "event", "api_error", "method", r.Method,
				"path", r.URL.Path, "status", status, "err", err)
		}
		return err
	}
}

func healthz(w http.ResponseWriter, _ *http.Request) error {
	return writeJSON(w, http.StatusOK, Health{Status: "ok"})
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
		return writeJSON(w, http.StatusOK, DrainResult{Service: name, Drained: drained})
	}
}

// ServeSocket serves the API on ln, the control socket from ListenSocket,
// until ctx ends. Closing ln removes the socket file.
func (s *Server) ServeSocket(ctx context.Context, ln net.Listener) error {
	return s.serve(ctx, ln, s.Handler())
}

func (s *Server) serve(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{
		Handler:           h,
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

// ListenSocket opens the control socket at path, mode 0600. A stale socket
// file left by a dead daemon is replaced; a live one is an error.
func ListenSocket(path string) (net.Listener, error) {
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

// Error names the field first, if there is one: "port: must be 1..65535".
func (e *HTTPError) Error() string {
	if e.Field != "" {
		return e.Field + ": " + e.Message
	}
	return e.Message
}

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
	var fe *lb.FieldError
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
	case errors.As(err, &fe):
		return http.StatusBadRequest, Error{Message: fe.Msg, Field: fe.Field}
	case errors.Is(err, ErrNotFound), errors.Is(err, lb.ErrNotFound):
		return http.StatusNotFound, Error{Message: err.Error()}
	case errors.Is(err, ErrConflict), errors.Is(err, lb.ErrConflict):
		return http.StatusConflict, Error{Message: err.Error()}
	case errors.Is(err, ErrUnavailable):
		return http.StatusServiceUnavailable, Error{Message: err.Error()}
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

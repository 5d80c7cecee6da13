package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/vipd/vipd/internal/config"
)

// ListenTCP opens the API's TCP listener on addr (api.listen). With
// certFile and keyFile (PEM) it speaks TLS 1.2 or newer; with neither,
// plain HTTP. The certificate is read once: a new one takes a restart.
func ListenTCP(addr, certFile, keyFile string) (net.Listener, error) {
	if (certFile == "") != (keyFile == "") {
		return nil, fmt.Errorf("api %s: TLS needs both a certificate and a key", addr)
	}
	var cfg *tls.Config
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("api %s: %w", addr, err)
		}
		cfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("api %s: %w", addr, err)
	}
	if cfg != nil {
		return tls.NewListener(ln, cfg), nil
	}
	return ln, nil
}

// ReadToken reads a bearer token from path (api.token_file); see
// config.ReadToken, which check-config uses too.
func ReadToken(path string) ([]byte, error) {
	token, err := config.ReadToken(path)
	if err != nil {
		return nil, fmt.Errorf("token file: %w", err)
	}
	return token, nil
}

// ServeTCP serves the API on ln (from ListenTCP) until ctx ends. Every
// request except GET /healthz must carry "Authorization: Bearer <token>":
// a load balancer's health probe needs no secret and learns nothing.
func (s *Server) ServeTCP(ctx context.Context, ln net.Listener, token []byte) error {
	if len(token) == 0 {
		ln.Close()
		return errors.New("api: the TCP listener needs a token")
	}
	return s.serve(ctx, ln, requireToken(token, s.log, s.Handler()))
}

// requireToken lets a request through to h only with the bearer token.
// Tokens are compared as SHA-256 sums in constant time, so neither the
// content nor the length of the token leaks through the reply's timing.
func requireToken(token []byte, log *slog.Logger, h http.Handler) http.Handler {
	want := sha256.Sum256(token)
	warn := &rateLimited{every: authLogEvery}
	return handlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		if r.URL.Path == "/healthz" {
			h.ServeHTTP(w, r)
			return nil
		}
		got, ok := bearerToken(r.Header.Get("Authorization"))
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="vipd"`)
			return &HTTPError{Status: http.StatusUnauthorized, Message: "missing bearer token (Authorization: Bearer …)"}
		}
		sum := sha256.Sum256([]byte(got))
		if subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
			if ok, suppressed := warn.allow(time.Now()); ok {
				log.Warn("api: wrong bearer token", "event", "api_auth", "remote", r.RemoteAddr,
					"method", r.Method, "path", r.URL.Path, "suppressed", suppressed)
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="vipd", error="invalid_token"`)
			return &HTTPError{Status: http.StatusUnauthorized, Message: "wrong bearer token"}
		}
		h.ServeHTTP(w, r)
		return nil
	})
}

// authLogEvery is the least time between two "wrong bearer token" lines:
// a client guessing tokens must not be able to fill the disk with logs.
// Each line says how many were left out since the last.
const authLogEvery = 10 * time.Second

// rateLimited lets one event through per interval and counts the rest.
type rateLimited struct {
	every time.Duration

	mu         sync.Mutex
	last       time.Time
	suppressed int
}

// allow reports whether an event at now may be logged and, if so, how
// many were held back before it.
func (l *rateLimited) allow(now time.Time) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.last.IsZero() && now.Sub(l.last) < l.every {
		l.suppressed++
		return false, 0
	}
	n := l.suppressed
	l.last, l.suppressed = now, 0
	return true, n
}

// bearerToken returns the token of an "Authorization: Bearer <token>"
// header; the scheme is case-insensitive (RFC 9110 §11.1).
func bearerToken(header string) (string, bool) {
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

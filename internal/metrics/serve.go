package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const (
	// scrapeTimeout answers a scrape that takes longer with 503; Prometheus
	// gives up after 10s by default anyway.
	scrapeTimeout = 10 * time.Second
	// maxScrapesInFlight bounds concurrent scrapes; more get 503.
	maxScrapesInFlight = 4

	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	writeTimeout      = scrapeTimeout + 5*time.Second // room for the 503 after a timeout
	idleTimeout       = 60 * time.Second
	// shutdownGrace is how long scrapes in flight get when Serve stops.
	shutdownGrace = 2 * time.Second
)

// Handler serves g's metrics at GET /metrics; every other path is 404.
// Errors while gathering are logged to log (nil: discarded) and the series
// that could be gathered are still served.
func Handler(g prometheus.Gatherer, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{
		ErrorLog:            errorLog{log},
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: maxScrapesInFlight,
		Timeout:             scrapeTimeout,
	}))
	return mux
}

// errorLog adapts slog to promhttp.Logger, on one line.
type errorLog struct{ log *slog.Logger }

func (l errorLog) Println(v ...any) {
	msg := strings.ReplaceAll(strings.TrimSpace(fmt.Sprint(v...)), "\n", "; ")
	l.log.Warn("metrics scrape incomplete", "event", "metrics_error", "reason", msg)
}

// Listen opens the metrics listener on addr (host:port). Listening before
// Serve lets the daemon report a port in use at start.
func Listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: listen on %s: %w", addr, err)
	}
	return ln, nil
}

// Serve serves h on ln until ctx ends, then shuts the server down, giving
// scrapes in flight shutdownGrace before it cuts them off, and returns nil.
// It closes ln. It returns an error only if serving fails before ctx ends.
func Serve(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    16 << 10,
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	select {
	case err := <-served:
		return fmt.Errorf("metrics: serve on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		srv.Close() // scrapes still running after the grace period are cut off
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("metrics: serve on %s: %w", ln.Addr(), err)
	}
	return nil
}

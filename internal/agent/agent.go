// Package agent wires vipd together: config, API requests and health in;
// desired state out to the VIP binder and the BGP speaker.
//
// One goroutine, the loop, owns every change: health transitions only wake
// it, and API requests (reload, drain) run inside it. Each pass recomputes
// the whole desired state and hands it to the idempotent actuators, so a
// failed pass is simply retried.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/vipd/vipd/internal/api"
	"github.com/vipd/vipd/internal/bfd"
	"github.com/vipd/vipd/internal/bgp"
	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/internal/lb"
	"github.com/vipd/vipd/internal/metrics"
	"github.com/vipd/vipd/internal/store"
	"github.com/vipd/vipd/internal/systemd"
	"github.com/vipd/vipd/internal/vip"
)

// shutdownTimeout bounds the withdraw/close/unbind work after a stop signal.
const shutdownTimeout = 10 * time.Second

// Agent is one running vipd daemon.
type Agent struct {
	path    string // the config file, re-read on reload
	version string
	log     *slog.Logger
	wake    signal
	ops     chan op
	notify  systemd.Notifier
	hurry   chan struct{} // closed by Hurry
	once    sync.Once

	store           *store.Store
	binder          *vip.Binder
	monitors        *monitors
	backendMonitors *monitors
	metrics         *metrics.Metrics
	bfd             *bfd.Manager
	registry        *prometheus.Registry

	mu        sync.Mutex // guards the fields below, which Status reads
	cfg       *config.Config
	hash      string
	routerID  netip.Addr
	speaker   *speaker
	drained   map[string]bool // by the operator (persisted)
	decisions []decision      // the last pass's, for status
	lbs       *lb.Registry    // changed only inside the loop
	dataPlane dataPlane       // owned by the loop; host settings read by Status
}

// New returns an agent for cfg, loaded from path. It has no side effects;
// Run does the work.
func New(path string, cfg *config.Config, version string, log *slog.Logger) *Agent {
	return &Agent{
		path: path, cfg: cfg, version: version, log: log,
		wake: newSignal(), ops: make(chan op), hurry: make(chan struct{}), notify: systemd.FromEnv(),
		drained: make(map[string]bool),
	}
}

// Hurry cuts the shutdown grace period short (a second SIGTERM).
func (a *Agent) Hurry() { a.once.Do(func() { close(a.hurry) }) }

// Run runs the daemon until ctx ends, then withdraws every route (after
// bgp.shutdown_grace with the GRACEFUL_SHUTDOWN community), closes the BGP
// sessions and removes the addresses it added, in that order.
func (a *Agent) Run(ctx context.Context) error {
	st, err := store.Open(a.cfg.StateDir)
	if err != nil {
		return err
	}
	defer st.Close()
	a.store = st
	if err := a.loadDrains(); err != nil {
		return err
	}
	if err := a.loadLoadBalancers(); err != nil {
		return err
	}
	if a.hash, err = a.cfg.Hash(); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if a.routerID, err = resolveRouterID(a.cfg); err != nil {
		return err
	}
	a.binder = vip.New(st, a.log)
	if a.speaker, err = startSpeaker(a.cfg, a.routerID, a.log); err != nil {
		return err
	}
	stopBFD, err := a.startBFD()
	if err != nil {
		return errors.Join(err, a.speaker.stop())
	}
	defer func() { _ = stopBFD() }() // after the BGP sessions are closed
	a.registry = prometheus.NewRegistry()
	if a.metrics, err = metrics.New(a.registry, a, metrics.ReadBuildInfo(a.version)); err != nil {
		return errors.Join(err, a.speaker.stop())
	}
	a.metrics.ConfigLoaded(a.hash)
	a.monitors = newMonitors(a.log, a.wake.notify, a.metrics.ObserveCheck)
	a.monitors.sync(a.cfg.Services)
	a.backendMonitors = newBackendMonitors(a.log, a.wake.notify, a.metrics.ObserveCheck)
	a.syncBackendMonitors()

	err = a.serve(ctx)

	a.monitors.stopAll()
	a.backendMonitors.stopAll()
	return errors.Join(err, a.shutdown())
}

// serve runs the API and the loop until ctx ends.
func (a *Agent) serve(ctx context.Context) error {
	// Listen before any goroutine starts, so a taken port fails cleanly.
	var metricsLn net.Listener
	if addr := a.cfg.Metrics.Listen; addr != "" {
		ln, err := metrics.Listen(addr)
		if err != nil {
			return fmt.Errorf("metrics.listen: %w", err)
		}
		metricsLn = ln
	}
	apiLn, token, err := a.listenAPI()
	if err != nil {
		if metricsLn != nil {
			metricsLn.Close()
		}
		return err
	}
	srv := api.NewServer(a, a.log)
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return srv.ServeSocket(ctx, a.cfg.API.Socket) })
	if apiLn != nil {
		g.Go(func() error { return srv.ServeTCP(ctx, apiLn, token) })
	}
	g.Go(func() error { return a.loop(ctx) })
	g.Go(func() error { return a.watchdog(ctx, a.notify) })
	if metricsLn != nil {
		g.Go(func() error { return metrics.Serve(ctx, metricsLn, metrics.Handler(a.registry, a.log)) })
	}
	if err := a.notify.Ready(); err != nil {
		a.log.Warn("sd_notify", "event", "start", "err", err)
	}
	a.log.Info("started", "event", "start", "router_id", a.routerID, "asn", a.cfg.BGP.ASN,
		"peers", len(a.cfg.BGP.Peers), "services", len(a.cfg.Services), "config_hash", a.hash)
	return g.Wait()
}

// listenAPI opens the optional TCP API listener and reads its token.
func (a *Agent) listenAPI() (net.Listener, []byte, error) {
	c := a.cfg.API
	if c.Listen == "" {
		return nil, nil, nil
	}
	token, err := api.ReadToken(c.TokenFile)
	if err != nil {
		return nil, nil, fmt.Errorf("api.token_file: %w", err)
	}
	ln, err := api.ListenTCP(c.Listen, c.TLSCert, c.TLSKey)
	if err != nil {
		return nil, nil, fmt.Errorf("api.listen: %w", err)
	}
	return ln, token, nil
}

// shutdown withdraws and closes the sessions before the addresses go, so
// no router sends traffic to a node that no longer holds the VIP.
func (a *Agent) shutdown() error {
	_ = a.notify.Stopping()
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if a.cfg.BGP.GracefulRestart {
		// A planned restart: the routers keep the routes, so the
		// addresses and load-balancer rules stay to serve that traffic;
		// the next start takes them over.
		err := a.speaker.stop()
		a.log.Info("stopped for a graceful restart; routes and addresses left in place", "event", "shutdown")
		return err
	}
	if grace := a.cfg.BGP.ShutdownGrace; grace > 0 {
		a.gracePeriod(ctx, grace)
	}
	stopErr := a.speaker.stop()
	var dpErr error
	if t := a.dataPlane.table; t != nil {
		dpErr = t.Delete(ctx)
	}
	unbindErr := a.binder.Set(ctx, nil)
	a.log.Info("stopped", "event", "shutdown")
	return errors.Join(stopErr, dpErr, unbindErr)
}

// gracePeriod re-announces every route with GRACEFUL_SHUTDOWN (RFC 8326)
// and waits, so routers that honour it move traffic away before the
// withdrawal. Hurry ends the wait.
func (a *Agent) gracePeriod(ctx context.Context, grace time.Duration) {
	routes := withGracefulShutdown(routesOf(a.decisions))
	if err := a.speaker.SetRoutes(ctx, routes); err != nil {
		a.log.Error("graceful shutdown: announce 65535:0", "event", "graceful_shutdown", "err", err)
		return
	}
	a.log.Info("graceful shutdown: announced 65535:0, waiting", "event", "graceful_shutdown",
		"grace", grace, "routes", len(routes))
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-t.C:
	case <-a.hurry:
		a.log.Info("graceful shutdown: wait cut short", "event", "graceful_shutdown")
	}
}

func (a *Agent) loadDrains() error {
	names, err := a.store.Drained()
	if err != nil {
		return err
	}
	for _, n := range names {
		a.drained[n] = true
	}
	return nil
}

func resolveRouterID(cfg *config.Config) (netip.Addr, error) {
	if cfg.BGP.RouterID.IsValid() {
		return cfg.BGP.RouterID, nil
	}
	var vips []netip.Addr
	for _, s := range cfg.Services {
		vips = append(vips, s.VIPs...)
	}
	id, err := defaultRouterID(vips)
	if err != nil {
		return id, fmt.Errorf("bgp.router_id: %w", err)
	}
	return id, nil
}

// speaker is a running bgp.Speaker with its own lifetime: it ends only when
// stop is called, after everything that could still change routes.
type speaker struct {
	*bgp.Speaker
	stop func() error
}

func startSpeaker(cfg *config.Config, routerID netip.Addr, log *slog.Logger) (*speaker, error) {
	sp := bgp.New(bgp.Global{
		ASN:             cfg.BGP.ASN,
		RouterID:        routerID,
		ListenPort:      cfg.BGP.ListenPort,
		AllowedPrefixes: cfg.BGP.AllowedPrefixes,
		GracefulRestart: cfg.BGP.GracefulRestart,
	}, log)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan struct{})
	go func() { done <- sp.Run(ctx, func() { close(ready) }) }()
	s := &speaker{Speaker: sp, stop: func() error {
		cancel()
		if err := <-done; err != nil {
			return fmt.Errorf("bgp: %w", err)
		}
		return nil
	}}
	select {
	case <-ready:
	case err := <-done:
		cancel()
		return nil, fmt.Errorf("bgp: start: %w", err)
	}
	if err := sp.SetPeers(ctx, cfg.BGP.Peers); err != nil {
		return nil, errors.Join(fmt.Errorf("bgp: peers: %w", err), s.stop())
	}
	return s, nil
}

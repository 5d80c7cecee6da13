// Package agent wires vipd together: sources of desired state (the config
// file, the stored load balancers or the cluster store's, Kubernetes) and
// health in; the data plane, the
// addresses and the BGP routes out.
//
// One goroutine, the loop, owns every change: sources and health
// transitions only wake it, and API requests (reload, drain) run inside
// it. Each pass merges every source's snapshot, decides what to announce,
// and applies the result in one order: additions go rules, address, route;
// removals go withdraw, then address and rules, so a router never sends
// traffic to a node that cannot take it. The actuators are idempotent, so
// a failed pass is simply retried. The seams are small interfaces
// (seams.go), which the unit tests fill with fakes.
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
	"github.com/vipd/vipd/internal/cluster"
	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/internal/kube"
	"github.com/vipd/vipd/internal/lb"
	"github.com/vipd/vipd/internal/metrics"
	"github.com/vipd/vipd/internal/store"
	"github.com/vipd/vipd/internal/systemd"
	"github.com/vipd/vipd/internal/vip"
)

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
	act     actuators
	// stopTimeout bounds each step of the shutdown (shutdownTimeout).
	stopTimeout time.Duration

	store           *store.Store
	binder          Binder
	monitors        *monitors
	backendMonitors *monitors
	metrics         *metrics.Metrics
	registry        *prometheus.Registry

	mu        sync.Mutex // guards the fields below, which Status reads
	cfg       *config.Config
	hash      string
	routerID  netip.Addr
	speaker   Speaker
	bfd       BFD
	drained   map[string]bool    // by the operator (persisted)
	sources   []namedSource      // in priority order; changed only inside the loop
	services  []config.Service   // the last pass's, from every source, load balancers' excepted
	verdicts  map[string]Verdict // the last pass's, for the services whose source decides
	kube      *kube.Watcher      // nil without a kubernetes section
	cluster   *cluster.Store     // nil without a cluster section
	decisions []decision         // the last pass's, for status
	lbs       *lb.Registry       // changed only inside the loop
	dataPlane dataPlane          // owned by the loop; host settings read by Status
	xdp       xdpPlane           // load balancers in mode dsr; see xdp.go
	addresses []vip.Address      // the last set handed to the binder; owned by the loop
	// withdrawnAt is when each address that is going was first seen
	// withdrawn; removals fires when the first of them may go. Both are
	// owned by the loop.
	withdrawnAt map[netip.Prefix]time.Time
	removals    *time.Timer
}

// New returns an agent for cfg, loaded from path. It has no side effects;
// Run does the work.
func New(path string, cfg *config.Config, version string, log *slog.Logger) *Agent {
	a := &Agent{
		path: path, cfg: cfg, version: version, log: log, act: realActuators(), stopTimeout: shutdownTimeout,
		wake: newSignal(), ops: make(chan op), hurry: make(chan struct{}), notify: systemd.FromEnv(),
		drained: make(map[string]bool),
	}
	a.sources = []namedSource{
		{name: "config", src: SourceFunc(func() Snapshot { return Snapshot{Services: a.cfg.Services} })},
		{name: "loadbalancers", src: SourceFunc(func() Snapshot { return Snapshot{LoadBalancers: a.loadBalancers()} })},
	}
	return a
}

// Hurry cuts the shutdown grace period short (a second SIGTERM).
func (a *Agent) Hurry() { a.once.Do(func() { close(a.hurry) }) }

// Wake asks the loop for a pass, for example because a source changed. It
// never blocks.
func (a *Agent) Wake() { a.wake.notify() }

// Run runs the daemon until ctx ends, then withdraws every route (after
// bgp.shutdown_grace with the GRACEFUL_SHUTDOWN community), closes the BGP
// sessions and removes the addresses and rules it added, in that order.
//
// It checks and opens everything that can be refused (the state
// directory, the listeners) before it opens any BGP or BFD session, so a
// daemon that cannot start never flaps a session.
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
	if err := a.newKubernetes(); err != nil {
		return err
	}
	if err := a.newCluster(); err != nil {
		return err
	}
	if a.hash, err = a.cfg.Hash(); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if a.routerID, err = resolveRouterID(a.cfg); err != nil {
		return err
	}
	ls, err := a.listen()
	if err != nil {
		return err
	}
	a.registry = prometheus.NewRegistry()
	if a.metrics, err = metrics.New(a.registry, a, metrics.ReadBuildInfo(a.version)); err != nil {
		return errors.Join(err, ls.close())
	}
	a.metrics.ConfigLoaded(a.hash)
	a.binder = a.act.newBinder(st, a.log)
	if a.speaker, err = a.act.startSpeaker(a.cfg, a.routerID, a.restarting(), a.log); err != nil {
		return errors.Join(err, ls.close())
	}
	if a.bfd, err = a.act.startBFD(bfdPeers(a.cfg.BGP.Peers), a.log, a.onBFDEvent); err != nil {
		return errors.Join(err, a.speaker.Stop(), ls.close())
	}
	a.monitors = newMonitors(a.log, a.wake.notify, a.metrics.ObserveCheck)
	a.backendMonitors = newBackendMonitors(a.log, a.wake.notify, a.metrics.ObserveCheck)

	err = a.serve(ctx, ls)

	a.monitors.stopAll()
	a.backendMonitors.stopAll()
	return errors.Join(err, a.shutdown())
}

// listeners are the sockets the daemon serves, opened before anything else
// starts.
type listeners struct {
	socket, tcp, metrics net.Listener
	token                []byte
}

func (a *Agent) listen() (*listeners, error) {
	ls := &listeners{}
	var err error
	if addr := a.cfg.Metrics.Listen; addr != "" {
		if ls.metrics, err = metrics.Listen(addr); err != nil {
			return nil, fmt.Errorf("metrics.listen: %w", err)
		}
	}
	if ls.socket, err = api.ListenSocket(a.cfg.API.Socket); err != nil {
		return nil, errors.Join(fmt.Errorf("api.socket: %w", err), ls.close())
	}
	if c := a.cfg.API; c.Listen != "" {
		if ls.token, err = api.ReadToken(c.TokenFile); err != nil {
			return nil, errors.Join(fmt.Errorf("api.token_file: %w", err), ls.close())
		}
		if ls.tcp, err = api.ListenTCP(c.Listen, c.TLSCert, c.TLSKey); err != nil {
			return nil, errors.Join(fmt.Errorf("api.listen: %w", err), ls.close())
		}
	}
	return ls, nil
}

// close closes the listeners that were opened, for a start that failed.
func (ls *listeners) close() error {
	var errs []error
	for _, ln := range []net.Listener{ls.socket, ls.tcp, ls.metrics} {
		if ln != nil {
			errs = append(errs, ln.Close())
		}
	}
	return errors.Join(errs...)
}

// serve runs the API, metrics and the loop until ctx ends. The servers
// close their listeners.
func (a *Agent) serve(ctx context.Context, ls *listeners) error {
	a.log.Info("starting", "event", "start", "router_id", a.routerID, "asn", a.cfg.BGP.ASN,
		"peers", len(a.cfg.BGP.Peers), "services", len(a.cfg.Services), "config_hash", a.hash)
	srv := api.NewServer(a, a.log)
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return srv.ServeSocket(ctx, ls.socket) })
	if ls.tcp != nil {
		g.Go(func() error { return srv.ServeTCP(ctx, ls.tcp, ls.token) })
	}
	if ls.metrics != nil {
		g.Go(func() error { return metrics.Serve(ctx, ls.metrics, metrics.Handler(a.registry, a.log)) })
	}
	g.Go(func() error { return a.loop(ctx) })
	g.Go(func() error { return a.watchdog(ctx, a.notify) })
	if a.kube != nil {
		g.Go(func() error { return a.kube.Run(ctx) })
	}
	if a.cluster != nil {
		g.Go(func() error { return a.cluster.Run(ctx) })
	}
	if err := a.notify.Ready(); err != nil {
		a.log.Warn("sd_notify", "event", "start", "err", err)
	}
	return g.Wait()
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

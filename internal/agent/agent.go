// Package agent wires vipd together: config and health in, desired state out
// to the VIP binder and the BGP speaker.
//
// Every change (a health transition, a peer event) only wakes the reconcile
// loop; each pass recomputes the whole desired state and hands it to the
// idempotent actuators, so a failed pass is simply retried.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/vipd/vipd/internal/api"
	"github.com/vipd/vipd/internal/bgp"
	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/internal/health"
	"github.com/vipd/vipd/internal/store"
	"github.com/vipd/vipd/internal/vip"
)

// shutdownTimeout bounds the withdraw/close/unbind work after a stop signal.
const shutdownTimeout = 10 * time.Second

// Agent is one running vipd daemon.
type Agent struct {
	cfg      *config.Config
	version  string
	log      *slog.Logger
	wake     signal
	routerID netip.Addr

	speaker  *bgp.Speaker
	binder   *vip.Binder
	monitors map[string]*health.Monitor

	mu        sync.Mutex
	decisions []decision // last pass's, for status
}

// New returns an agent for cfg. It has no side effects; Run does the work.
func New(cfg *config.Config, version string, log *slog.Logger) *Agent {
	return &Agent{cfg: cfg, version: version, log: log, wake: newSignal()}
}

// Run runs the daemon until ctx ends, then withdraws every route, closes the
// BGP sessions and removes the addresses it added, in that order.
func (a *Agent) Run(ctx context.Context) error {
	for _, w := range a.cfg.Warnings {
		a.log.Warn("config key not active", "event", "config_warning", "reason", w)
	}
	st, err := store.Open(a.cfg.StateDir)
	if err != nil {
		return err
	}
	defer st.Close()

	if a.routerID, err = a.resolveRouterID(); err != nil {
		return err
	}
	a.binder = vip.New(st, a.log)
	a.monitors = a.newMonitors()
	a.speaker = bgp.New(bgp.Global{
		ASN:             a.cfg.BGP.ASN,
		RouterID:        a.routerID,
		ListenPort:      a.cfg.BGP.ListenPort,
		AllowedPrefixes: a.cfg.BGP.AllowedPrefixes,
	}, a.log)

	stopSpeaker, err := a.startSpeaker()
	if err != nil {
		return err
	}
	err = a.serve(ctx)

	// Withdraw and close the sessions before the addresses go, so no router
	// sends traffic to a node that no longer holds the VIP.
	stopErr := stopSpeaker()
	unbindCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	unbindErr := a.binder.Set(unbindCtx, nil)
	a.log.Info("stopped", "event", "shutdown")
	return errors.Join(err, stopErr, unbindErr)
}

// startSpeaker runs the BGP speaker on its own lifetime, which ends only
// when the returned stop function is called: after everything that could
// still change routes has stopped.
func (a *Agent) startSpeaker() (stop func() error, err error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan struct{})
	go func() { done <- a.speaker.Run(ctx, func() { close(ready) }) }()
	stop = func() error {
		cancel()
		if err := <-done; err != nil {
			return fmt.Errorf("bgp: %w", err)
		}
		return nil
	}
	select {
	case <-ready:
	case err := <-done:
		cancel()
		return nil, fmt.Errorf("bgp: start: %w", err)
	}
	if err := a.speaker.SetPeers(ctx, a.cfg.BGP.Peers); err != nil {
		return nil, errors.Join(fmt.Errorf("bgp: peers: %w", err), stop())
	}
	return stop, nil
}

// serve runs the health monitors, the API and the reconcile loop until ctx ends.
func (a *Agent) serve(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	for _, m := range a.monitors {
		g.Go(func() error { return m.Run(ctx) })
	}
	g.Go(func() error {
		return api.NewServer(a, a.log).ServeSocket(ctx, a.cfg.API.Socket)
	})
	g.Go(func() error { return a.reconcileLoop(ctx) })
	a.log.Info("started", "event", "start", "router_id", a.routerID, "asn", a.cfg.BGP.ASN,
		"peers", len(a.cfg.BGP.Peers), "services", len(a.cfg.Services))
	return g.Wait()
}

func (a *Agent) resolveRouterID() (netip.Addr, error) {
	if a.cfg.BGP.RouterID.IsValid() {
		return a.cfg.BGP.RouterID, nil
	}
	var vips []netip.Addr
	for _, s := range a.cfg.Services {
		vips = append(vips, s.VIPs...)
	}
	id, err := defaultRouterID(vips)
	if err != nil {
		return id, fmt.Errorf("bgp.router_id: %w", err)
	}
	return id, nil
}

func (a *Agent) newMonitors() map[string]*health.Monitor {
	ms := make(map[string]*health.Monitor, len(a.cfg.Services))
	for _, svc := range a.cfg.Services {
		p := health.Params{Interval: svc.Interval, Timeout: svc.Timeout, Rise: svc.Rise, Fall: svc.Fall}
		ms[svc.Name] = health.NewMonitor(svc.Name, checkers(svc.Checks), p, a.wake.notify)
	}
	return ms
}

func checkers(cs []config.Check) []health.Checker {
	out := make([]health.Checker, 0, len(cs))
	for _, c := range cs {
		switch {
		case c.HTTP != nil:
			out = append(out, &health.HTTP{URL: c.HTTP.URL, StatusMin: c.HTTP.StatusMin, StatusMax: c.HTTP.StatusMax})
		case c.TCP != nil:
			out = append(out, &health.TCP{Address: c.TCP.Address})
		case c.Exec != nil:
			out = append(out, &health.Exec{Command: c.Exec.Command})
		}
	}
	return out
}

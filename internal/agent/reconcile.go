package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/vipd/vipd/internal/vip"
)

// Retry backoff after a failed pass.
const (
	minRetry = 100 * time.Millisecond
	maxRetry = 10 * time.Second
)

// reconcileLoop runs a pass at start and after every wake-up, and retries a
// failed pass with backoff until one succeeds.
func (a *Agent) reconcileLoop(ctx context.Context) error {
	a.wake.notify()
	retry := time.NewTimer(0)
	<-retry.C
	backoff := minRetry
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-a.wake:
		case <-retry.C:
		}
		if err := a.reconcile(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			a.log.Error("reconcile failed; will retry", "event", "reconcile", "err", err, "retry_in", backoff)
			retry.Reset(backoff)
			backoff = min(2*backoff, maxRetry)
			continue
		}
		retry.Stop()
		backoff = minRetry
	}
}

// reconcile makes addresses and routes match the config and health now.
// Addresses are bound first so a route never points at a node without its VIP.
func (a *Agent) reconcile(ctx context.Context) error {
	ds := decide(a.cfg, func(name string) bool { return a.monitors[name].Up() })
	a.logChanges(ds)
	a.mu.Lock()
	a.decisions = ds
	a.mu.Unlock()

	var errs []error
	if err := a.binder.Set(ctx, a.desiredAddresses()); err != nil {
		errs = append(errs, fmt.Errorf("bind: %w", err))
	}
	if err := a.speaker.SetRoutes(ctx, routesOf(ds)); err != nil {
		errs = append(errs, fmt.Errorf("bgp: %w", err))
	}
	return errors.Join(errs...)
}

// logChanges writes one line per service whose announcement reason changed.
func (a *Agent) logChanges(ds []decision) {
	a.mu.Lock()
	prev := make(map[string]Reason, len(a.decisions))
	for _, d := range a.decisions {
		prev[d.service] = d.reason
	}
	a.mu.Unlock()
	seen := make(map[string]bool)
	for _, d := range ds {
		if seen[d.service] {
			continue
		}
		seen[d.service] = true
		if old, ok := prev[d.service]; ok && old == d.reason {
			continue
		}
		a.log.Info("service state", "event", "service_state", "service", d.service,
			"announce", d.route != nil, "reason", string(d.reason))
	}
}

func (a *Agent) desiredAddresses() []vip.Address {
	var out []vip.Address
	for _, svc := range a.cfg.Services {
		if !svc.Bind {
			continue
		}
		for _, addr := range svc.VIPs {
			out = append(out, vip.Address{Addr: addr, Interface: svc.Interface})
		}
	}
	return out
}

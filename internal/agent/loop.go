package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/internal/lb"
	"github.com/vipd/vipd/internal/vip"
)

const (
	// Retry backoff after a failed pass.
	minRetry = 100 * time.Millisecond
	maxRetry = 10 * time.Second
	// maintenancePoll is how often maintenance files are looked for.
	maintenancePoll = time.Second
)

// op is a request (reload, drain) run inside the loop.
type op struct {
	fn   func(ctx context.Context) error
	done chan error
}

// do runs fn inside the loop, then a pass, and returns fn's error once the
// pass is done, so a caller sees the state its change led to.
func (a *Agent) do(ctx context.Context, fn func(ctx context.Context) error) error {
	o := op{fn: fn, done: make(chan error, 1)}
	select {
	case a.ops <- o:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-o.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// loop runs a pass at start, after every wake-up, request or maintenance
// file change, and retries a failed pass with backoff until one succeeds.
func (a *Agent) loop(ctx context.Context) error {
	retry := time.NewTimer(0) // the first pass
	defer retry.Stop()
	poll := time.NewTicker(maintenancePoll)
	defer poll.Stop()
	backoff := minRetry
	for {
		var reply func() // answers an op after the pass
		select {
		case <-ctx.Done():
			return nil
		case o := <-a.ops:
			err := o.fn(ctx)
			reply = func() { o.done <- err }
		case <-a.wake:
		case <-retry.C:
		case <-poll.C:
			if !a.maintenanceChanged() {
				continue
			}
		}
		err := a.reconcile(ctx)
		if reply != nil {
			reply()
		}
		if err != nil {
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

// reconcile makes the data plane, addresses and routes match the config,
// load balancers, health and drains now. Routes come last, so a route never
// points at a node without its VIP or its load balancer's rules; a load
// balancer whose rules could not be written is withdrawn.
func (a *Agent) reconcile(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err // stopping: the shutdown sequence takes over
	}
	lbs := a.loadBalancers()
	services := slices.Clone(a.cfg.Services)
	lbByService := make(map[string]lb.LoadBalancer, len(lbs))
	for _, l := range lbs {
		svc := lbService(l)
		services = append(services, svc)
		lbByService[svc.Name] = l
	}
	var errs []error
	dpErr := a.applyDataplane(ctx, a.desiredDataplane(services, lbs))
	if dpErr != nil {
		errs = append(errs, fmt.Errorf("dataplane: %w", dpErr))
	}
	ds := decide(a.cfg.BGP, services, func(name string) serviceInput {
		l, ok := lbByService[name]
		switch {
		case !ok:
			return a.serviceInput(name)
		case dpErr != nil:
			return serviceInput{downReason: ReasonNoDataplane}
		}
		return a.lbInput(l)
	})
	a.logChanges(ds)
	a.mu.Lock()
	a.decisions = ds
	a.mu.Unlock()

	if err := a.binder.Set(ctx, desiredAddresses(services)); err != nil {
		errs = append(errs, fmt.Errorf("bind: %w", err))
	}
	if err := a.speaker.SetRoutes(ctx, routesOf(ds)); err != nil {
		errs = append(errs, fmt.Errorf("bgp: %w", err))
	}
	return errors.Join(errs...)
}

func (a *Agent) serviceInput(name string) serviceInput {
	in := serviceInput{up: a.monitors.up(name)}
	switch {
	case a.inMaintenance(name):
		in.drain = ReasonMaintenance
	case a.drained[name]:
		in.drain = ReasonDrained
	}
	return in
}

func (a *Agent) inMaintenance(name string) bool {
	svc := a.cfg.Service(name)
	if svc == nil || svc.MaintenanceFile == "" {
		return false
	}
	_, err := os.Stat(svc.MaintenanceFile)
	return err == nil
}

// maintenanceChanged reports whether a maintenance file appeared or went
// since the last pass.
func (a *Agent) maintenanceChanged() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, d := range a.decisions {
		if (d.reason == ReasonMaintenance) != a.inMaintenance(d.service) {
			return true
		}
	}
	return false
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

func desiredAddresses(services []config.Service) []vip.Address {
	var out []vip.Address
	for _, svc := range services {
		if !svc.Bind {
			continue
		}
		for _, addr := range svc.VIPs {
			out = append(out, vip.Address{Addr: addr, Interface: svc.Interface})
		}
	}
	return out
}

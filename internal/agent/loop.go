package agent

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"time"

	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/internal/dataplane"
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
	a.removals = time.NewTimer(time.Hour)
	a.removals.Stop()
	defer a.removals.Stop()
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
		case <-a.removals.C:
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

// removalDelay is how long an address and its rules outlive the
// withdrawal of their route. The speaker returns once the withdrawal is
// written; this covers the router reading it and reprogramming its FIB, so
// that packets it still forwards meanwhile are served, not dropped.
const removalDelay = 100 * time.Millisecond

// reconcile makes the data plane, addresses and routes match the sources,
// health and drains now, in the order that never sends traffic to a node
// that cannot take it:
//
//  1. additions: rules, then addresses (what is going stays for now);
//  2. routes: announcements and withdrawals;
//  3. removals, once their withdrawal is sent: addresses, then rules.
//
// A load balancer whose rules could not be written is withdrawn.
func (a *Agent) reconcile(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err // stopping: the shutdown sequence takes over
	}
	a.mu.Lock()
	sources := slices.Clone(a.sources)
	a.mu.Unlock()
	d := merge(sources)
	a.monitors.sync(d.checked())
	a.syncBackendMonitors(d.lbs)

	// 1. Additions. What is going stays until its route is withdrawn.
	var errs []error
	wantDP := a.desiredDataplane(d)
	hadDP := a.dataPlane.appliedState()
	dpErr := a.applyDataplane(ctx, unionState(wantDP, hadDP))
	if dpErr != nil {
		errs = append(errs, fmt.Errorf("dataplane: %w", dpErr))
	}
	xdpErr := a.xdpError()
	if xdpErr != nil {
		errs = append(errs, fmt.Errorf("xdp: %w", xdpErr))
	}
	services := d.all()
	wantAddrs := desiredAddresses(services)
	hadAddrs := a.addresses
	if err := a.bind(ctx, unionBy(wantAddrs, hadAddrs, identity)); err != nil {
		errs = append(errs, fmt.Errorf("bind: %w", err))
	}

	// 2. Routes.
	ds := decide(a.cfg.BGP, services, func(name string) serviceInput {
		if v, ok := d.verdicts[name]; ok {
			return a.verdictInput(name, v)
		}
		l, ok := d.lbByService[name]
		switch {
		case !ok:
			return a.serviceInput(name)
		case l.Spec.Mode == lb.ModeDSR && xdpErr != nil:
			return serviceInput{downReason: ReasonNoXDP, detail: xdpErr.Error()}
		case l.Spec.Mode != lb.ModeDSR && dpErr != nil:
			return serviceInput{downReason: ReasonNoDataplane}
		}
		in := a.lbInput(l)
		// In a cluster its drains are the cluster's: one left in the
		// state file from before (vipd cluster import copied it) no
		// longer counts.
		if d.drained[name] || (a.cluster == nil && a.drained[name]) {
			in.drain = ReasonDrained
		}
		return in
	})
	ds = append(ds, d.refused...)
	a.logChanges(ds)
	a.mu.Lock()
	prev := a.decisions
	a.decisions, a.services, a.verdicts = ds, d.services, d.verdicts
	a.mu.Unlock()
	if err := a.speaker.SetRoutes(ctx, routesOf(ds)); err != nil {
		errs = append(errs, fmt.Errorf("bgp: %w", err))
	} else {
		a.tellObservers(sources, prev, ds)
	}
	a.reportToCluster(d)

	// 3. Removals, but not of what is still announced (a withdrawal
	// failed: the next pass retries those) nor of what was withdrawn less
	// than removalDelay ago: a timer brings the pass that removes those,
	// so the loop never waits and other changes go ahead meanwhile.
	held := a.heldForRemoval(hadAddrs, wantAddrs, hadDP, wantDP)
	keepAddrs := slices.DeleteFunc(minus(hadAddrs, wantAddrs), func(v vip.Address) bool { return !held(hostPrefix(v.Addr)) })
	finalAddrs := append(slices.Clone(wantAddrs), keepAddrs...)
	finalDP := unionState(wantDP, leaving(hadDP, wantDP, held))
	removeDP := dpErr == nil && !a.dataPlane.applied(finalDP)
	if len(a.addresses) == len(finalAddrs) && !removeDP {
		return errors.Join(errs...)
	}
	if err := a.bind(ctx, finalAddrs); err != nil {
		errs = append(errs, fmt.Errorf("unbind: %w", err))
	}
	if removeDP {
		if err := a.applyDataplane(ctx, finalDP); err != nil {
			errs = append(errs, fmt.Errorf("dataplane: %w", err))
		}
	}
	return errors.Join(errs...)
}

// heldForRemoval returns whether an address that is going must stay for
// now: its route is still announced, or was withdrawn less than
// removalDelay ago. It notes when each going address was first seen
// withdrawn, and sets the timer for the pass that removes it.
func (a *Agent) heldForRemoval(hadAddrs, wantAddrs []vip.Address, hadDP, wantDP dataplane.State) func(netip.Prefix) bool {
	now := time.Now()
	going := make(map[netip.Prefix]bool)
	for _, v := range minus(hadAddrs, wantAddrs) {
		going[hostPrefix(v.Addr)] = true
	}
	gone := leaving(hadDP, wantDP, func(netip.Prefix) bool { return true })
	for _, l := range gone.LoadBalancers {
		going[hostPrefix(l.Address)] = true
	}
	for _, f := range gone.Filters {
		going[hostPrefix(f.Address)] = true
	}
	withdrawnAt := make(map[netip.Prefix]time.Time, len(going))
	var next time.Duration
	for p := range going {
		if a.speaker.Announced(p) {
			continue
		}
		at, ok := a.withdrawnAt[p]
		if !ok {
			at = now
		}
		withdrawnAt[p] = at
		if wait := at.Add(removalDelay).Sub(now); wait > 0 && (next == 0 || wait < next) {
			next = wait
		}
	}
	a.withdrawnAt = withdrawnAt
	if next > 0 {
		a.removals.Reset(next)
	}
	return func(p netip.Prefix) bool {
		at, withdrawn := withdrawnAt[p]
		return !withdrawn || now.Sub(at) < removalDelay
	}
}

// bind hands addrs to the binder and remembers them, so the next pass
// removes none of them before its route is withdrawn.
func (a *Agent) bind(ctx context.Context, addrs []vip.Address) error {
	a.addresses = addrs
	return a.binder.Set(ctx, addrs)
}

func identity[T any](x T) T { return x }

// minus returns the elements of a that b lacks.
func minus[T comparable](a, b []T) []T {
	in := make(map[T]bool, len(b))
	for _, x := range b {
		in[x] = true
	}
	var out []T
	for _, x := range a {
		if !in[x] {
			out = append(out, x)
		}
	}
	return out
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

// verdictInput is serviceInput for a service whose source decides its
// health; the operator's drain still wins.
func (a *Agent) verdictInput(name string, v Verdict) serviceInput {
	in := serviceInput{up: v.Up, detail: v.Detail}
	if v.Up {
		in.upReason = v.Reason
	} else {
		in.downReason = v.Reason
	}
	if a.drained[name] {
		in.drain = ReasonDrained
	}
	return in
}

// tellObservers tells the sources that asked which services this node
// started or stopped announcing in this pass.
func (a *Agent) tellObservers(sources []namedSource, prev, now []decision) {
	var observers []AnnounceObserver
	for _, s := range sources {
		if o, ok := s.src.(AnnounceObserver); ok {
			observers = append(observers, o)
		}
	}
	if len(observers) == 0 {
		return
	}
	was := announcedServices(prev)
	is := announcedServices(now)
	for _, d := range now {
		if _, seen := is[d.service]; !seen || was[d.service] == is[d.service] {
			continue
		}
		for _, o := range observers {
			o.Announced(d.service, is[d.service], d.why())
		}
		delete(is, d.service) // once per service
	}
}

// announcedServices says, per service, whether any of its VIPs is
// announced.
func announcedServices(ds []decision) map[string]bool {
	out := make(map[string]bool)
	for _, d := range ds {
		out[d.service] = out[d.service] || d.route != nil
	}
	return out
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
			"announce", d.route != nil, "reason", string(d.reason), "why", d.why())
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

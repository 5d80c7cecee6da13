package agent

import (
	"context"
	"net/netip"
	"time"

	"github.com/vipd/vipd/internal/api"
	"github.com/vipd/vipd/internal/lb"
)

var _ api.LoadBalancers = (*Agent)(nil)

// CreateLoadBalancer implements api.LoadBalancers. It returns once the
// address is bound and the data plane programmed.
func (a *Agent) CreateLoadBalancer(ctx context.Context, spec lb.Spec) (api.LoadBalancer, bool, error) {
	var l lb.LoadBalancer
	var created bool
	var err error
	if a.cluster != nil {
		err = a.clusterWrite(ctx, func() (rev int64, err error) {
			l, created, rev, err = a.cluster.Create(ctx, spec)
			return rev, err
		})
		if created {
			a.logCreated(l)
		}
	} else {
		err = a.do(ctx, func(context.Context) (err error) {
			l, created, err = a.createLB(spec)
			return err
		})
	}
	if err != nil {
		return api.LoadBalancer{}, false, err
	}
	return a.lbView(l), created, nil
}

// LoadBalancers implements api.LoadBalancers: in a cluster, every one of
// the cluster's, served here or not.
func (a *Agent) LoadBalancers() []api.LoadBalancer {
	var lbs []lb.LoadBalancer
	if a.cluster != nil {
		lbs = a.cluster.LoadBalancers()
	} else {
		lbs = a.loadBalancers()
	}
	out := make([]api.LoadBalancer, len(lbs))
	for i, l := range lbs {
		out[i] = a.lbView(l)
	}
	return out
}

// LoadBalancer implements api.LoadBalancers.
func (a *Agent) LoadBalancer(id string) (api.LoadBalancer, error) {
	var l lb.LoadBalancer
	var err error
	if a.cluster != nil {
		l, err = a.cluster.Get(id)
	} else {
		a.mu.Lock()
		l, err = a.lbs.Get(id)
		a.mu.Unlock()
	}
	if err != nil {
		return api.LoadBalancer{}, err
	}
	return a.lbView(l), nil
}

// DeleteLoadBalancer implements api.LoadBalancers: it returns once the
// route is withdrawn, the data plane rules are gone and the address is
// released.
func (a *Agent) DeleteLoadBalancer(ctx context.Context, id string) error {
	var err error
	if a.cluster != nil {
		err = a.clusterWrite(ctx, func() (int64, error) {
			l, rev, err := a.cluster.Delete(ctx, id)
			if err == nil {
				a.logDeleted(l)
			}
			return rev, err
		})
	} else {
		err = a.do(ctx, func(context.Context) error {
			_, err := a.deleteLB(id)
			return err
		})
	}
	if err != nil {
		return err
	}
	// The pass withdrew the route; the address and rules go removalDelay
	// later, in a pass of their own. Wait for it here, not in the loop.
	t := time.NewTimer(removalDelay)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
	}
	return a.do(ctx, func(context.Context) error { return nil })
}

// AddBackend implements api.LoadBalancers.
func (a *Agent) AddBackend(ctx context.Context, id string, b lb.BackendSpec) (api.LoadBalancer, error) {
	if a.cluster != nil {
		return a.changeClusterLB(ctx, func() (lb.LoadBalancer, int64, error) { return a.cluster.AddBackend(ctx, id, b) })
	}
	return a.changeLB(ctx, func() (lb.LoadBalancer, error) { return a.addBackend(id, b) })
}

// RemoveBackend implements api.LoadBalancers.
func (a *Agent) RemoveBackend(ctx context.Context, id, backendID string) (api.LoadBalancer, error) {
	if a.cluster != nil {
		return a.changeClusterLB(ctx, func() (lb.LoadBalancer, int64, error) { return a.cluster.RemoveBackend(ctx, id, backendID) })
	}
	return a.changeLB(ctx, func() (lb.LoadBalancer, error) { return a.removeBackend(id, backendID) })
}

func (a *Agent) changeLB(ctx context.Context, change func() (lb.LoadBalancer, error)) (api.LoadBalancer, error) {
	var l lb.LoadBalancer
	err := a.do(ctx, func(context.Context) (err error) {
		l, err = change()
		return err
	})
	if err != nil {
		return api.LoadBalancer{}, err
	}
	return a.lbView(l), nil
}

func (a *Agent) changeClusterLB(ctx context.Context, change func() (lb.LoadBalancer, int64, error)) (api.LoadBalancer, error) {
	var l lb.LoadBalancer
	err := a.clusterWrite(ctx, func() (rev int64, err error) {
		l, rev, err = change()
		return rev, err
	})
	if err != nil {
		return api.LoadBalancer{}, err
	}
	a.log.Info("load balancer changed", "event", "lb_backend", "lb", l.Spec.Name, "backends", len(l.Backends), "cluster", true)
	return a.lbView(l), nil
}

// lbView renders l with its backends' health and what the last pass
// decided for its address.
func (a *Agent) lbView(l lb.LoadBalancer) api.LoadBalancer {
	announced, reason := a.lbDecision(l)
	state := func(b lb.Backend) lb.BackendState { return a.backendState(l, b) }
	if a.cluster != nil && !a.cluster.Selects(l) {
		reason = ReasonNotSelected
	}
	v := api.NewLoadBalancer(l, state, announced, string(reason))
	v.PerNode = a.perNode(l)
	return v
}

// lbDecision is what the last pass decided for l's address.
func (a *Agent) lbDecision(l lb.LoadBalancer) (announced bool, reason Reason) {
	prefix := netip.PrefixFrom(l.Address(), l.Address().BitLen())
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, d := range a.decisions {
		if d.prefix == prefix {
			return d.route != nil, d.reason
		}
	}
	return false, ""
}

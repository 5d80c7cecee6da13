package agent

import (
	"fmt"
	"net/netip"

	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/internal/lb"
)

// lbServicePrefix starts the service name a load balancer's address is
// announced under ("lb/web"). Config service names cannot contain '/'.
const lbServicePrefix = "lb/"

// loadLoadBalancers reads the persisted load balancers and checks them
// against the config's pools, so a stale or damaged state stops the start
// with a reason instead of being dropped.
func (a *Agent) loadLoadBalancers() error {
	stored, err := a.store.LoadBalancers()
	if err != nil {
		return err
	}
	reg, err := lb.NewRegistry(a.cfg.Pools, stored)
	if err != nil {
		return fmt.Errorf("state db: load balancers: %w", err)
	}
	// Looked up at each create, through a.binder as it is by then.
	reg.SetHostAddrs(func() (map[netip.Addr]string, error) { return a.binder.ForeignAddrs() })
	a.lbs = reg
	return nil
}

// createLB persists and registers a new load balancer; a repeat of an
// existing one changes nothing.
func (a *Agent) createLB(spec lb.Spec) (l lb.LoadBalancer, created bool, err error) {
	l, exists, err := a.lbs.PlanCreate(spec)
	if err != nil || exists {
		return l, false, err
	}
	if err := a.commitLB(l); err != nil {
		return l, false, err
	}
	a.logCreated(l)
	return l, true, nil
}

func (a *Agent) logCreated(l lb.LoadBalancer) {
	a.log.Info("load balancer created", "event", "lb_create", "lb", l.Spec.Name, "uuid", l.UUID,
		"address", l.Address(), "port", l.Spec.Port, "protocol", l.Spec.Protocol, "mode", l.Spec.Mode, "cluster", a.cluster != nil)
}

func (a *Agent) logDeleted(l lb.LoadBalancer) {
	a.log.Info("load balancer deleted", "event", "lb_delete", "lb", l.Spec.Name, "uuid", l.UUID, "address", l.Address(), "cluster", a.cluster != nil)
}

func (a *Agent) deleteLB(id string) (lb.LoadBalancer, error) {
	l, err := a.lbs.Get(id)
	if err != nil {
		return l, err
	}
	if err := a.store.DeleteLoadBalancer(id); err != nil {
		return l, err
	}
	a.mu.Lock()
	a.lbs.Remove(id)
	a.mu.Unlock()
	a.logDeleted(l)
	return l, nil
}

func (a *Agent) addBackend(id string, b lb.BackendSpec) (lb.LoadBalancer, error) {
	l, err := a.lbs.PlanAddBackend(id, b)
	if err != nil {
		return l, err
	}
	if err := a.commitLB(l); err != nil {
		return l, err
	}
	a.log.Info("backend added", "event", "lb_backend", "lb", l.Spec.Name, "backends", len(l.Backends))
	return l, nil
}

func (a *Agent) removeBackend(id, backendID string) (lb.LoadBalancer, error) {
	l, err := a.lbs.PlanRemoveBackend(id, backendID)
	if err != nil {
		return l, err
	}
	if err := a.commitLB(l); err != nil {
		return l, err
	}
	a.log.Info("backend removed", "event", "lb_backend", "lb", l.Spec.Name, "backend", backendID, "backends", len(l.Backends))
	return l, nil
}

// commitLB writes l to disk first, so memory never holds what a crash
// would lose.
func (a *Agent) commitLB(l lb.LoadBalancer) error {
	if err := a.store.PutLoadBalancer(l); err != nil {
		return err
	}
	a.mu.Lock()
	a.lbs.Put(l)
	a.mu.Unlock()
	return nil
}

// loadBalancers returns the load balancers this node serves; safe from
// any goroutine.
func (a *Agent) loadBalancers() []lb.LoadBalancer {
	if a.cluster != nil {
		return a.cluster.Serving()
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.lbs.List()
}

// lbService is the service a load balancer's address is bound and
// announced as: the same path as a configured VIP, guard included.
func lbService(l lb.LoadBalancer) config.Service {
	return config.Service{
		Name: lbServicePrefix + l.Spec.Name, VIPs: []netip.Addr{l.Address()},
		Interface: "lo", Bind: true, OnDown: config.OnDownWithdraw, LocalPref: l.Spec.LocalPrefOrDefault(),
	}
}

// lbInput says whether a load balancer's address should be announced:
// while a backend is up, or always under on_empty: announce. The pass adds
// drains (vipd drain lb/NAME), which take this node out of the routers'
// ECMP set while it keeps forwarding what still arrives.
func (a *Agent) lbInput(l lb.LoadBalancer) serviceInput {
	up := 0
	for _, b := range l.Backends {
		if a.backendHealth(l, b) == lb.BackendUp && a.dsrServes(l, b) {
			up++
		}
	}
	switch {
	case up > 0:
		return serviceInput{up: true, upReason: ReasonBackendsUp}
	case l.Spec.OnEmpty == lb.OnEmptyAnnounce:
		return serviceInput{up: true, upReason: ReasonAnnounceNoneUp}
	}
	return serviceInput{downReason: ReasonNoBackend}
}

// backendState is a backend's state as status shows it: up only once the
// data plane has it in the load balancer's table.
func (a *Agent) backendState(l lb.LoadBalancer, b lb.Backend) lb.BackendState {
	a.mu.Lock()
	inTable := a.dataPlane.inTable[tableEntry{l.UUID, b.AddrPort()}]
	if l.Spec.Mode == lb.ModeDSR { // with a MAC, on an interface the program runs on
		inTable = a.xdp.inTable[tableEntry{l.UUID, b.AddrPort()}]
	}
	a.mu.Unlock()
	switch h := a.backendHealth(l, b); {
	case inTable:
		return lb.BackendUp
	case h == lb.BackendUp:
		return lb.BackendPending
	default:
		return h
	}
}

// backendHealth is a backend's health: up at once without a check, else
// as its monitor says.
func (a *Agent) backendHealth(l lb.LoadBalancer, b lb.Backend) lb.BackendState {
	if l.Spec.Check == nil {
		return lb.BackendUp
	}
	st, ok := a.backendMonitors.status(backendMonitorName(l, b))
	switch {
	case ok && st.Up:
		return lb.BackendUp
	case !ok || st.LastCheck.IsZero():
		return lb.BackendPending
	}
	return lb.BackendDown
}

// syncBackendMonitors runs one health monitor per checked backend.
func (a *Agent) syncBackendMonitors(lbs []lb.LoadBalancer) {
	var targets []config.Service
	for _, l := range lbs {
		c := l.Spec.Check
		if c == nil {
			continue
		}
		for _, b := range l.Backends {
			targets = append(targets, config.Service{
				Name:     backendMonitorName(l, b),
				Checks:   []config.Check{backendCheck(*c, b)},
				Interval: c.Interval, FastInterval: c.FastInterval, Timeout: c.Timeout, Rise: c.Rise, Fall: c.Fall,
			})
		}
	}
	a.backendMonitors.sync(targets)
}

// backendMonitorName keys a backend's monitor, and labels its check
// metrics, by what identifies it on every node.
func backendMonitorName(l lb.LoadBalancer, b lb.Backend) string {
	return lbServicePrefix + l.Spec.Name + "/" + b.Key()
}

func backendCheck(c lb.Check, b lb.Backend) config.Check {
	if c.Type == lb.CheckHTTP {
		return config.Check{HTTP: &config.HTTPCheck{
			URL:       "http://" + b.AddrPort().String() + c.Path,
			StatusMin: c.StatusMin, StatusMax: c.StatusMax,
		}}
	}
	return config.Check{TCP: &config.TCPCheck{Address: b.AddrPort().String()}}
}

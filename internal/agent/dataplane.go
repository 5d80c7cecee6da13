package agent

import (
	"context"
	"fmt"
	"net/netip"
	"reflect"

	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/internal/dataplane"
	"github.com/vipd/vipd/internal/lb"
)

// dataPlane is the nftables side of the agent: owned by the loop, it
// writes only when the desired state changes.
type dataPlane struct {
	table   *dataplane.Table    // nil until first needed
	applied *dataplane.State    // nil: nothing applied yet in this run
	host    []dataplane.Setting // the kernel parameters set for nat mode, for status
	inTable map[tableEntry]bool // the backends applied, for status
}

// tableEntry is a backend in a load balancer's Maglev table.
type tableEntry struct {
	lb      string // UUID
	backend netip.AddrPort
}

// desiredDataplane renders each load balancer with the backends that are
// up, and a port filter for every address that restricts its ports.
func (a *Agent) desiredDataplane(services []config.Service, lbs []lb.LoadBalancer) dataplane.State {
	var s dataplane.State
	for _, svc := range services {
		if len(svc.Ports) == 0 {
			continue
		}
		for _, addr := range svc.VIPs {
			s.Filters = append(s.Filters, dataplane.PortFilter{Address: addr, Ports: svc.Ports})
		}
	}
	for _, l := range lbs {
		d := dataplane.LoadBalancer{
			ID: l.UUID, Address: l.Address(), Port: l.Spec.Port, Protocol: l.Spec.Protocol,
			Mode: l.Spec.Mode, Masquerade: l.Spec.Masquerade != nil && *l.Spec.Masquerade,
		}
		for _, b := range l.Backends {
			if a.backendHealth(l, b) == lb.BackendUp {
				d.Backends = append(d.Backends, dataplane.Backend{Addr: b.AddrPort(), Weight: b.Weight})
			}
		}
		s.LoadBalancers = append(s.LoadBalancers, d)
		if len(l.Spec.Ports) > 0 { // the data plane lets the load balancer's own port through
			s.Filters = append(s.Filters, dataplane.PortFilter{Address: l.Address(), Ports: l.Spec.Ports})
		}
	}
	return s
}

// applyDataplane programs want if it differs from what was applied, or
// removes the table when want is empty. The first call always writes,
// which clears what a crashed vipd left; on a host without nft and with
// nothing to program it does nothing.
func (a *Agent) applyDataplane(ctx context.Context, want dataplane.State) error {
	dp := &a.dataPlane
	if dp.applied != nil && reflect.DeepEqual(*dp.applied, want) {
		return nil
	}
	empty := len(want.LoadBalancers) == 0 && len(want.Filters) == 0
	if dp.table == nil {
		t, err := dataplane.New(a.log)
		if err != nil {
			if empty {
				dp.applied = &want
				return nil
			}
			return err
		}
		dp.table = t
	}
	if empty {
		// No table at all, rather than an empty one: its NAT chains
		// would make the kernel track every connection of the host.
		if err := dp.table.Delete(ctx); err != nil {
			return err
		}
	} else {
		if err := a.applyHostSettings(want); err != nil {
			return err
		}
		if err := dp.table.Set(ctx, want); err != nil {
			return err
		}
	}
	dp.applied = &want
	inTable := make(map[tableEntry]bool)
	for _, l := range want.LoadBalancers {
		for _, b := range l.Backends {
			inTable[tableEntry{l.ID, b.Addr}] = true
		}
	}
	a.mu.Lock()
	dp.inTable = inTable
	a.mu.Unlock()
	return nil
}

// applyHostSettings sets the kernel parameters nat mode needs, once, when
// the first nat load balancer appears.
func (a *Agent) applyHostSettings(want dataplane.State) error {
	if a.dataPlane.host != nil {
		return nil
	}
	forwarding := false
	for _, l := range want.LoadBalancers {
		forwarding = forwarding || l.Mode == lb.ModeNAT
	}
	if !forwarding {
		return nil
	}
	settings, err := dataplane.ApplyHostSettings(dataplane.ProcSys, true)
	for _, s := range settings {
		if s.Was != s.Want {
			a.log.Info("kernel parameter set for nat load balancing", "event", "host_setting",
				"name", s.Name, "was", s.Was, "now", s.Want)
		}
	}
	if err != nil {
		return fmt.Errorf("dataplane: host settings: %w", err)
	}
	a.mu.Lock()
	a.dataPlane.host = settings
	a.mu.Unlock()
	return nil
}

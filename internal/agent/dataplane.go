package agent

import (
	"context"
	"fmt"
	"net/netip"
	"reflect"
	"slices"

	"github.com/vipd/vipd/internal/dataplane"
	"github.com/vipd/vipd/internal/lb"
)

// dataPlane is the agent's side of the data plane: owned by the loop, it
// writes only when the desired state changes.
type dataPlane struct {
	table   DataPlane           // nil until first needed
	last    *dataplane.State    // nil: nothing applied yet in this run
	host    []dataplane.Setting // the kernel parameters set for nat mode, for status
	inTable map[tableEntry]bool // the backends applied, for status
}

// tableEntry is a backend in a load balancer's Maglev table.
type tableEntry struct {
	lb      string // UUID
	backend netip.AddrPort
}

// appliedState is what the last successful write programmed.
func (dp *dataPlane) appliedState() dataplane.State {
	if dp.last == nil {
		return dataplane.State{}
	}
	return *dp.last
}

// applied reports whether s is what the data plane holds.
func (dp *dataPlane) applied(s dataplane.State) bool {
	return dp.last != nil && reflect.DeepEqual(*dp.last, s)
}

// desiredDataplane renders each load balancer with the backends that are
// up, and a port filter for every address that restricts its ports.
func (a *Agent) desiredDataplane(d desired) dataplane.State {
	var s dataplane.State
	for _, svc := range d.services {
		if len(svc.Ports) == 0 {
			continue
		}
		for _, addr := range svc.VIPs {
			s.Filters = append(s.Filters, dataplane.PortFilter{Address: addr, Ports: svc.Ports})
		}
	}
	for _, l := range d.lbs {
		dl := dataplane.LoadBalancer{
			ID: l.UUID, Address: l.Address(), Port: l.Spec.Port, Protocol: l.Spec.Protocol,
			Mode: l.Spec.Mode, Masquerade: l.Spec.Masquerade != nil && *l.Spec.Masquerade,
		}
		for _, b := range l.Backends {
			if a.backendHealth(l, b) == lb.BackendUp {
				dl.Backends = append(dl.Backends, dataplane.Backend{Addr: b.AddrPort(), Weight: b.Weight})
			}
		}
		s.LoadBalancers = append(s.LoadBalancers, dl)
		if len(l.Spec.Ports) > 0 { // the data plane lets the load balancer's own port through
			s.Filters = append(s.Filters, dataplane.PortFilter{Address: l.Address(), Ports: l.Spec.Ports})
		}
	}
	return s
}

// unionState is want plus the load balancers and filters of had that want
// lacks: what the data plane holds while a removal waits for its
// withdrawal. A load balancer leaving an address that a wanted one takes
// (deleted and created again at once, as a cluster can) goes at once:
// the two cannot both be programmed, and the address stays bound and
// announced for the new one, so there is no withdrawal to wait for.
func unionState(want, had dataplane.State) dataplane.State {
	taken := make(map[netip.Addr]bool, len(want.LoadBalancers))
	for _, l := range want.LoadBalancers {
		taken[l.Address] = true
	}
	stays := slices.DeleteFunc(slices.Clone(had.LoadBalancers), func(l dataplane.LoadBalancer) bool { return taken[l.Address] })
	return dataplane.State{
		LoadBalancers: unionBy(want.LoadBalancers, stays, func(l dataplane.LoadBalancer) string { return l.ID }),
		Filters:       unionBy(want.Filters, had.Filters, func(f dataplane.PortFilter) netip.Addr { return f.Address }),
	}
}

// leaving returns the load balancers and filters of had that want lacks
// and whose address keep holds.
func leaving(had, want dataplane.State, keep func(netip.Prefix) bool) dataplane.State {
	var out dataplane.State
	for _, l := range had.LoadBalancers {
		wanted := slices.ContainsFunc(want.LoadBalancers, func(w dataplane.LoadBalancer) bool { return w.ID == l.ID })
		if !wanted && keep(hostPrefix(l.Address)) {
			out.LoadBalancers = append(out.LoadBalancers, l)
		}
	}
	for _, f := range had.Filters {
		wanted := slices.ContainsFunc(want.Filters, func(w dataplane.PortFilter) bool { return w.Address == f.Address })
		if !wanted && keep(hostPrefix(f.Address)) {
			out.Filters = append(out.Filters, f)
		}
	}
	return out
}

// unionBy returns want with the elements of had whose key want lacks.
func unionBy[T any, K comparable](want, had []T, key func(T) K) []T {
	out := slices.Clone(want)
	seen := make(map[K]bool, len(want))
	for _, x := range want {
		seen[key(x)] = true
	}
	for _, x := range had {
		if !seen[key(x)] {
			out = append(out, x)
		}
	}
	return out
}

// applyDataplane programs want if it differs from what was applied, or
// removes the table when want is empty. The first call always writes,
// which clears what a crashed vipd left; on a host without nft and with
// nothing to program it does nothing.
func (a *Agent) applyDataplane(ctx context.Context, want dataplane.State) error {
	a.applyXDP(ctx, want) // its error: a.xdpError
	dp := &a.dataPlane
	if dp.applied(want) {
		return nil
	}
	// Load balancers in mode dsr are the XDP data plane's.
	nft := dataplane.State{Filters: want.Filters, LoadBalancers: slices.DeleteFunc(slices.Clone(want.LoadBalancers), isDSR)}
	empty := len(nft.LoadBalancers) == 0 && len(nft.Filters) == 0
	if dp.table == nil {
		t, err := a.act.newDataPlane(a.log)
		if err != nil {
			if empty {
				dp.last = &want
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
		if err := a.applyHostSettings(nft); err != nil {
			return err
		}
		if err := dp.table.Set(ctx, nft); err != nil {
			return err
		}
	}
	dp.last = &want
	inTable := make(map[tableEntry]bool)
	for _, l := range nft.LoadBalancers {
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
	settings, err := a.dataPlane.table.HostSettings()
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

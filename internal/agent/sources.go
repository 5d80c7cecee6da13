package agent

import (
	"context"
	"fmt"
	"net/netip"
	"slices"

	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/internal/lb"
)

// namedSource is a source of desired state and the name status and logs
// give it.
type namedSource struct {
	name string
	src  Source
}

// SetSource adds the source called name, or replaces it, and wakes the
// loop. A nil src removes it: its VIPs are withdrawn, then unbound. It
// returns once the loop has applied the change.
func (a *Agent) SetSource(ctx context.Context, name string, src Source) error {
	return a.do(ctx, func(context.Context) error {
		a.setSource(name, src)
		return nil
	})
}

func (a *Agent) setSource(name string, src Source) {
	a.mu.Lock()
	defer a.mu.Unlock()
	i := slices.IndexFunc(a.sources, func(s namedSource) bool { return s.name == name })
	switch {
	case src == nil && i >= 0:
		a.sources = slices.Delete(a.sources, i, i+1)
	case src == nil:
	case i >= 0:
		a.sources[i].src = src
	default:
		a.sources = append(a.sources, namedSource{name: name, src: src})
	}
}

// desired is every source's snapshot merged: what the node should serve,
// before health and drains decide what is announced.
type desired struct {
	services []config.Service // every source's, load balancers' excepted
	lbs      []lb.LoadBalancer
	// lbServices announce the load balancers' addresses, one each;
	// lbByService finds the load balancer behind one.
	lbServices  []config.Service
	lbByService map[string]lb.LoadBalancer
	// verdicts decide the services whose health a source decides.
	verdicts map[string]Verdict
	// drained are the services the sources say are drained.
	drained map[string]bool
	// refused are VIPs a later source claimed after an earlier one, and
	// those a source itself refused; they are neither bound nor announced
	// for that source.
	refused []decision
}

// merge combines the sources' snapshots. An earlier source wins a service
// name or a VIP that a later one also claims: the config file is first,
// so nothing can take an operator's VIP away.
func merge(sources []namedSource) desired {
	d := desired{lbByService: make(map[string]lb.LoadBalancer), verdicts: make(map[string]Verdict), drained: make(map[string]bool)}
	names := make(map[string]bool)
	owner := make(map[netip.Addr]string)
	add := func(to *[]config.Service, svc config.Service) {
		names[svc.Name] = true
		kept := svc.VIPs[:0:0]
		for _, addr := range svc.VIPs {
			if other, taken := owner[addr]; taken {
				d.refused = append(d.refused, decision{service: svc.Name, prefix: hostPrefix(addr),
					reason: ReasonConflict, detail: fmt.Sprintf("%s also belongs to service %s", addr, other)})
				continue
			}
			owner[addr] = svc.Name
			kept = append(kept, addr)
		}
		svc.VIPs = kept
		*to = append(*to, svc)
	}
	var lbs []lb.LoadBalancer
	for _, s := range sources {
		snap := s.src.Snapshot()
		for _, svc := range snap.Services {
			if names[svc.Name] {
				why := fmt.Sprintf("service name %q is taken; source %s is ignored for it", svc.Name, s.name)
				d.refused = append(d.refused, conflictDecisions(svc, why)...)
				continue
			}
			add(&d.services, svc)
			if v, ok := snap.Verdicts[svc.Name]; ok {
				d.verdicts[svc.Name] = v
			}
		}
		for _, r := range snap.Refused {
			d.refused = append(d.refused, decision{service: r.Service, prefix: hostPrefix(r.Addr), reason: r.Reason, detail: r.Detail})
		}
		lbs = append(lbs, snap.LoadBalancers...)
		for _, name := range snap.Drained {
			d.drained[name] = true
		}
	}
	// Load balancers come after every configured service, so a service's
	// VIP wins over a load balancer's address.
	for _, l := range lbs {
		svc := lbService(l)
		other, taken := owner[l.Address()]
		switch {
		case names[svc.Name]:
			d.refused = append(d.refused, conflictDecisions(svc, fmt.Sprintf("service name %q is taken", svc.Name))...)
		case taken:
			d.refused = append(d.refused, conflictDecisions(svc, fmt.Sprintf("%s also belongs to service %s", l.Address(), other))...)
		default:
			add(&d.lbServices, svc)
			d.lbs = append(d.lbs, l)
			d.lbByService[svc.Name] = l
		}
	}
	return d
}

// all is every service: configured ones, then load balancers'.
func (d desired) all() []config.Service { return slices.Concat(d.services, d.lbServices) }

// checked are the services whose health vipd checks itself.
func (d desired) checked() []config.Service {
	return slices.DeleteFunc(slices.Clone(d.services), func(s config.Service) bool {
		_, ok := d.verdicts[s.Name]
		return ok
	})
}

func conflictDecisions(svc config.Service, why string) []decision {
	out := make([]decision, 0, len(svc.VIPs))
	for _, addr := range svc.VIPs {
		out = append(out, decision{service: svc.Name, prefix: hostPrefix(addr), reason: ReasonConflict, detail: why})
	}
	return out
}

func hostPrefix(addr netip.Addr) netip.Prefix { return netip.PrefixFrom(addr, addr.BitLen()) }

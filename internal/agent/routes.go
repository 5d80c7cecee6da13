package agent

import (
	"net/netip"

	"github.com/vipd/vipd/internal/bgp"
	"github.com/vipd/vipd/internal/config"
)

// Reason says why a service's VIPs are announced the way they are, or not at all.
type Reason string

const (
	ReasonHealthy    Reason = "checks passing"
	ReasonNoChecks   Reason = "no checks configured"
	ReasonHealthDown Reason = "checks failing"
	ReasonDegraded   Reason = "checks failing, announced degraded"
)

// decision is what the agent wants for one VIP.
type decision struct {
	service string
	prefix  netip.Prefix
	route   *bgp.Route // nil: withdraw
	reason  Reason
}

// decide turns the config and the services' health into the desired routes.
// It is pure so every rule about what gets announced is tested in one place.
func decide(cfg *config.Config, up func(service string) bool) []decision {
	var out []decision
	for _, svc := range cfg.Services {
		route, reason := serviceRoute(cfg.BGP, svc, up(svc.Name))
		for _, addr := range svc.VIPs {
			d := decision{service: svc.Name, prefix: netip.PrefixFrom(addr, addr.BitLen()), reason: reason}
			if route != nil {
				r := *route
				r.Prefix = d.prefix
				d.route = &r
			}
			out = append(out, d)
		}
	}
	return out
}

// serviceRoute returns the route template for a service (Prefix unset), or nil to withdraw.
func serviceRoute(g config.BGP, svc config.Service, up bool) (*bgp.Route, Reason) {
	r := &bgp.Route{
		MED:              svc.MED,
		Prepend:          svc.Prepend,
		Communities:      append(append([]config.Community(nil), g.Communities...), svc.Communities...),
		LargeCommunities: append(append([]config.LargeCommunity(nil), g.LargeCommunities...), svc.LargeCommunities...),
	}
	switch {
	case up && len(svc.Checks) == 0:
		return r, ReasonNoChecks
	case up:
		return r, ReasonHealthy
	case svc.OnDown == config.OnDownDegrade:
		r.MED, r.Prepend = svc.DownMED, svc.DownPrepend
		return r, ReasonDegraded
	default:
		return nil, ReasonHealthDown
	}
}

func routesOf(ds []decision) []bgp.Route {
	routes := make([]bgp.Route, 0, len(ds))
	for _, d := range ds {
		if d.route != nil {
			routes = append(routes, *d.route)
		}
	}
	return routes
}

package agent

import (
	"net/netip"

	"github.com/vipd/vipd/internal/bgp"
	"github.com/vipd/vipd/internal/config"
)

// Reason says why a service's VIPs are announced the way they are, or not
// at all. Its values are stable: status shows them as reason_code and
// metrics as a label. Text is the same for people.
type Reason string

const (
	ReasonHealthy     Reason = "checks_passing"
	ReasonNoChecks    Reason = "no_checks"
	ReasonHealthDown  Reason = "checks_failing"
	ReasonDegraded    Reason = "degraded"
	ReasonDrained     Reason = "drained"
	ReasonMaintenance Reason = "maintenance"
	// Load balancers: their address is up while a backend is.
	ReasonBackendsUp     Reason = "backends_up"
	ReasonNoBackend      Reason = "no_backend"
	ReasonNoXDP          Reason = "xdp_failed" // mode dsr: no silent fallback
	ReasonAnnounceNoneUp Reason = "no_backend_announced"
	ReasonNoDataplane    Reason = "dataplane_failed"
	// A cluster load balancer whose nodes selector leaves this node out.
	ReasonNotSelected Reason = "node_not_selected"
	// Two sources claim one VIP or service name; the earlier one has it.
	ReasonConflict Reason = "conflict"
)

var reasonText = map[Reason]string{
	ReasonHealthy:        "checks passing",
	ReasonNoChecks:       "no checks configured",
	ReasonHealthDown:     "checks failing",
	ReasonDegraded:       "checks failing, announced degraded",
	ReasonDrained:        "drained by operator",
	ReasonMaintenance:    "maintenance file exists",
	ReasonBackendsUp:     "healthy backends",
	ReasonNoBackend:      "no healthy backend",
	ReasonNoXDP:          "the XDP data plane does not work (see xdp in status)",
	ReasonAnnounceNoneUp: "no healthy backend; announced anyway (on_empty: announce)",
	ReasonNoDataplane:    "its nftables rules could not be written (see the log)",
	ReasonConflict:       "claimed by another service",
	ReasonNotSelected:    "its nodes selector leaves this node out",
}

// Text says what r means, for people.
func (r Reason) Text() string {
	if t, ok := reasonText[r]; ok {
		return t
	}
	return string(r)
}

// gracefulShutdown is the RFC 8326 GRACEFUL_SHUTDOWN community, 65535:0.
const gracefulShutdown config.Community = 0xFFFF0000

// serviceInput is what decide needs to know about one service now.
type serviceInput struct {
	up    bool
	drain Reason // ReasonDrained, ReasonMaintenance or ""
	// upReason and downReason, if set, explain the state instead of the
	// checks (a load balancer's backends, a source's verdict); detail
	// says more.
	upReason, downReason Reason
	detail               string
}

// decision is what the agent wants for one VIP.
type decision struct {
	service string
	prefix  netip.Prefix
	route   *bgp.Route // nil: withdraw
	reason  Reason
	detail  string // says more than reason.Text(), if set
}

// why explains d for people. A source's own reasons have no text here:
// their detail says it all.
func (d decision) why() string {
	if _, known := reasonText[d.reason]; !known && d.detail != "" {
		return d.detail
	}
	if d.detail != "" {
		return d.reason.Text() + ": " + d.detail
	}
	return d.reason.Text()
}

// decide turns the services (configured ones and those of load balancers)
// and their health and drains into the desired routes. It is pure so every
// rule about what gets announced is tested in one place.
func decide(g config.BGP, services []config.Service, input func(service string) serviceInput) []decision {
	var out []decision
	for _, svc := range services {
		in := input(svc.Name)
		route, reason := serviceRoute(g, svc, in)
		detail := in.detail
		if reason == in.drain {
			detail = ""
		}
		for _, addr := range svc.VIPs {
			d := decision{service: svc.Name, prefix: hostPrefix(addr), reason: reason, detail: detail}
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

// serviceRoute returns the route template for a service (Prefix unset), or
// nil to withdraw. A drain acts like failing checks, and wins over them.
func serviceRoute(g config.BGP, svc config.Service, in serviceInput) (*bgp.Route, Reason) {
	r := &bgp.Route{
		MED:              svc.MED,
		Prepend:          svc.Prepend,
		LocalPref:        svc.LocalPref,
		Communities:      append(append([]config.Community(nil), g.Communities...), svc.Communities...),
		LargeCommunities: append(append([]config.LargeCommunity(nil), g.LargeCommunities...), svc.LargeCommunities...),
	}
	reason := ReasonHealthy
	switch {
	case in.drain != "":
		reason = in.drain
	case !in.up && in.downReason != "":
		reason = in.downReason
	case !in.up:
		reason = ReasonHealthDown
	case in.upReason != "":
		return r, in.upReason
	case len(svc.Checks) == 0:
		return r, ReasonNoChecks
	default:
		return r, ReasonHealthy
	}
	if svc.OnDown != config.OnDownDegrade {
		return nil, reason
	}
	r.MED, r.Prepend, r.LocalPref = svc.DownMED, svc.DownPrepend, svc.DownLocalPref
	if reason == ReasonHealthDown {
		reason = ReasonDegraded
	}
	return r, reason
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

// withGracefulShutdown returns routes with 65535:0 added, for the grace
// period before a planned shutdown.
func withGracefulShutdown(routes []bgp.Route) []bgp.Route {
	out := make([]bgp.Route, len(routes))
	for i, r := range routes {
		r.Communities = append(append([]config.Community(nil), r.Communities...), gracefulShutdown)
		out[i] = r
	}
	return out
}

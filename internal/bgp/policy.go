package bgp

import (
	"context"
	"fmt"
	"net/netip"
	"slices"

	"github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/server"
)

// Names of the GoBGP policy objects vipd owns.
const (
	importPolicy = "vipd-import"
	exportPolicy = "vipd-export"
	anyPeerSet   = "vipd-any-peer"
	allowedV4Set = "vipd-allowed-v4"
	allowedV6Set = "vipd-allowed-v6"
)

func ipv4Unicast() *api.Family {
	return &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
}
func ipv6Unicast() *api.Family {
	return &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}
}

// nextHopRule makes IPv6 routes sent to peer carry nextHop.
type nextHopRule struct {
	peer    netip.Addr
	nextHop netip.Addr
}

// policies returns vipd's complete GoBGP routing policy:
//
//   - import: reject every path learned from a peer. Locally originated paths
//     have no source address, match no neighbor set and pass, which a plain
//     default-reject would not allow.
//   - export: reject what the export guard would (a second line of defence),
//     set each peer's IPv6 next hop, and reject IPv6 paths for peers without
//     one (GoBGP would send the IPv4 session address, which routers reject).
//     Everything else is accepted by the default action.
func policies(allowed []netip.Prefix, rules []nextHopRule) *api.SetPoliciesRequest {
	req := &api.SetPoliciesRequest{
		DefinedSets: []*api.DefinedSet{{
			DefinedType: api.DefinedType_DEFINED_TYPE_NEIGHBOR,
			Name:        anyPeerSet,
			List:        []string{"0.0.0.0/0", "::/0"},
		}},
		Policies: []*api.Policy{{
			Name: importPolicy,
			Statements: []*api.Statement{
				statement("vipd-reject-learned", &api.Conditions{NeighborSet: matchAny(anyPeerSet)}, reject()),
			},
		}},
	}

	var export []*api.Statement
	for _, g := range []struct {
		set     string
		family  *api.Family
		hostLen uint32
	}{{allowedV4Set, ipv4Unicast(), 32}, {allowedV6Set, ipv6Unicast(), 128}} {
		cond := &api.Conditions{PrefixSet: &api.MatchSet{Type: api.MatchSet_TYPE_INVERT, Name: g.set}}
		if set := allowedSet(g.set, allowed, g.family.Afi == api.Family_AFI_IP, g.hostLen); set != nil {
			req.DefinedSets = append(req.DefinedSets, set)
		} else {
			// An empty prefix set matches no path, even inverted: refuse the
			// whole family instead.
			cond = &api.Conditions{AfiSafiIn: []*api.Family{g.family}}
		}
		export = append(export, statement("vipd-guard-"+g.set, cond, reject()))
	}

	for _, r := range sortedRules(rules) {
		set := "vipd-peer-" + r.peer.String()
		req.DefinedSets = append(req.DefinedSets, &api.DefinedSet{
			DefinedType: api.DefinedType_DEFINED_TYPE_NEIGHBOR,
			Name:        set,
			List:        []string{netip.PrefixFrom(r.peer, r.peer.BitLen()).String()},
		})
		export = append(export, statement("vipd-nexthop6-"+r.peer.String(),
			&api.Conditions{NeighborSet: matchAny(set), AfiSafiIn: []*api.Family{ipv6Unicast()}},
			&api.Actions{RouteAction: api.RouteAction_ROUTE_ACTION_ACCEPT, Nexthop: &api.NexthopAction{Address: r.nextHop.String()}}))
	}
	export = append(export, statement("vipd-reject-ipv6-without-nexthop",
		&api.Conditions{AfiSafiIn: []*api.Family{ipv6Unicast()}}, reject()))
	req.Policies = append(req.Policies, &api.Policy{Name: exportPolicy, Statements: export})
	return req
}

func statement(name string, c *api.Conditions, a *api.Actions) *api.Statement {
	return &api.Statement{Name: name, Conditions: c, Actions: a}
}

func matchAny(set string) *api.MatchSet { return &api.MatchSet{Type: api.MatchSet_TYPE_ANY, Name: set} }

func reject() *api.Actions { return &api.Actions{RouteAction: api.RouteAction_ROUTE_ACTION_REJECT} }

// allowedSet is a prefix set of the host routes inside the allowed prefixes
// of one family, or nil if there are none.
func allowedSet(name string, allowed []netip.Prefix, is4 bool, hostLen uint32) *api.DefinedSet {
	set := &api.DefinedSet{DefinedType: api.DefinedType_DEFINED_TYPE_PREFIX, Name: name}
	for _, p := range allowed {
		if !p.IsValid() || p.Addr().Is4() != is4 || p.Addr().Is4In6() {
			continue
		}
		set.Prefixes = append(set.Prefixes, &api.Prefix{
			IpPrefix:      p.Masked().String(),
			MaskLengthMin: hostLen,
			MaskLengthMax: hostLen,
		})
	}
	if len(set.Prefixes) == 0 {
		return nil
	}
	return set
}

func sortedRules(rules []nextHopRule) []nextHopRule {
	out := slices.Clone(rules)
	slices.SortFunc(out, func(a, b nextHopRule) int { return a.peer.Compare(b.peer) })
	return out
}

// installPolicies replaces GoBGP's routing policy. SetPolicies keeps the
// global assignments (they name the policies), so this is all a change of
// next hops needs.
func installPolicies(ctx context.Context, bs *server.BgpServer, allowed []netip.Prefix, rules []nextHopRule) error {
	if err := bs.SetPolicies(ctx, policies(allowed, rules)); err != nil {
		return fmt.Errorf("install routing policy: %w", err)
	}
	return nil
}

// assignPolicies attaches vipd's policies to GoBGP's global RIB; it runs once,
// after the first installPolicies.
func assignPolicies(ctx context.Context, bs *server.BgpServer) error {
	for _, a := range []*api.PolicyAssignment{
		{Direction: api.PolicyDirection_POLICY_DIRECTION_IMPORT, Policies: []*api.Policy{{Name: importPolicy}}, DefaultAction: api.RouteAction_ROUTE_ACTION_ACCEPT},
		{Direction: api.PolicyDirection_POLICY_DIRECTION_EXPORT, Policies: []*api.Policy{{Name: exportPolicy}}, DefaultAction: api.RouteAction_ROUTE_ACTION_ACCEPT},
	} {
		if err := bs.AddPolicyAssignment(ctx, &api.AddPolicyAssignmentRequest{Assignment: a}); err != nil {
			return fmt.Errorf("assign %s policy: %w", a.Direction, err)
		}
	}
	return nil
}

package bgp

import (
	"context"
	"fmt"
	"maps"
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
	externalSet  = "vipd-ebgp-peers"
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

// policyInput is everything vipd's GoBGP policy is built from.
type policyInput struct {
	asn      uint32 // the local AS, the one prepended
	allowed  []netip.Prefix
	nextHops []nextHopRule
	// nextHops4 are the IPv4 next hops of relayed peers; a rule without a
	// next hop refuses the peer IPv4 routes (GoBGP would send its
	// loopback address).
	nextHops4 []nextHopRule
	// external are the eBGP peers (another AS): AS-path prepends go to
	// them only. iBGP peers get the path without prepends.
	external []netip.Addr
	// prepends lists, per prepend count, the routes that ask for it.
	prepends map[int][]netip.Prefix
}

// policies returns vipd's complete GoBGP routing policy:
//
//   - import: reject every path learned from a peer. Locally originated paths
//     have no source address, match no neighbor set and pass, which a plain
//     default-reject would not allow.
//   - export: reject what the export guard would (a second line of defence),
//     prepend our AS to the routes that ask for it on eBGP peers only
//     (statements without a route action, so evaluation goes on), set each
//     peer's IPv6 next hop, and reject IPv6 paths for peers without one
//     (GoBGP would send the IPv4 session address, which routers reject);
//     set each relayed peer's IPv4 next hop (the relay's local address:
//     GoBGP's own session is on loopback), or refuse it IPv4 routes until
//     the relay knows it.
//     Everything else is accepted by the default action.
func policies(in policyInput) *api.SetPoliciesRequest {
	allowed, rules := in.allowed, in.nextHops
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

	sets, prepend := prependStatements(in)
	req.DefinedSets = append(req.DefinedSets, sets...)
	export = append(export, prepend...)

	peerSets := make(map[netip.Addr]bool)
	peerSet := func(peer netip.Addr) string {
		set := "vipd-peer-" + peer.String()
		if !peerSets[peer] {
			peerSets[peer] = true
			req.DefinedSets = append(req.DefinedSets, &api.DefinedSet{
				DefinedType: api.DefinedType_DEFINED_TYPE_NEIGHBOR,
				Name:        set,
				List:        []string{netip.PrefixFrom(peer, peer.BitLen()).String()},
			})
		}
		return set
	}
	for _, r := range sortedRules(rules) {
		export = append(export, statement("vipd-nexthop6-"+r.peer.String(),
			&api.Conditions{NeighborSet: matchAny(peerSet(r.peer)), AfiSafiIn: []*api.Family{ipv6Unicast()}},
			&api.Actions{RouteAction: api.RouteAction_ROUTE_ACTION_ACCEPT, Nexthop: &api.NexthopAction{Address: r.nextHop.String()}}))
	}
	for _, r := range sortedRules(in.nextHops4) {
		cond := &api.Conditions{NeighborSet: matchAny(peerSet(r.peer)), AfiSafiIn: []*api.Family{ipv4Unicast()}}
		if !r.nextHop.IsValid() {
			export = append(export, statement("vipd-reject-ipv4-without-nexthop-"+r.peer.String(), cond, reject()))
			continue
		}
		export = append(export, statement("vipd-nexthop4-"+r.peer.String(), cond,
			&api.Actions{RouteAction: api.RouteAction_ROUTE_ACTION_ACCEPT, Nexthop: &api.NexthopAction{Address: r.nextHop.String()}}))
	}
	export = append(export, statement("vipd-reject-ipv6-without-nexthop",
		&api.Conditions{AfiSafiIn: []*api.Family{ipv6Unicast()}}, reject()))
	req.Policies = append(req.Policies, &api.Policy{Name: exportPolicy, Statements: export})
	return req
}

// prependStatements returns the defined sets and export statements that
// prepend in.asn to routes sent to eBGP peers: one statement per prepend
// count and family. GoBGP prepends one more copy itself on eBGP, and none
// on iBGP, where AS-path length is not ours to lengthen.
func prependStatements(in policyInput) ([]*api.DefinedSet, []*api.Statement) {
	if len(in.external) == 0 || len(in.prepends) == 0 {
		return nil, nil
	}
	peers := &api.DefinedSet{DefinedType: api.DefinedType_DEFINED_TYPE_NEIGHBOR, Name: externalSet}
	for _, a := range slices.SortedFunc(slices.Values(in.external), netip.Addr.Compare) {
		peers.List = append(peers.List, netip.PrefixFrom(a, a.BitLen()).String())
	}
	sets := []*api.DefinedSet{peers}
	var stmts []*api.Statement
	for _, n := range slices.Sorted(maps.Keys(in.prepends)) {
		for _, is4 := range []bool{true, false} {
			name := fmt.Sprintf("vipd-prepend-%d-v6", n)
			if is4 {
				name = fmt.Sprintf("vipd-prepend-%d-v4", n)
			}
			set := &api.DefinedSet{DefinedType: api.DefinedType_DEFINED_TYPE_PREFIX, Name: name}
			for _, p := range in.prepends[n] {
				if p.Addr().Is4() != is4 {
					continue
				}
				bits := uint32(p.Bits())
				set.Prefixes = append(set.Prefixes, &api.Prefix{IpPrefix: p.String(), MaskLengthMin: bits, MaskLengthMax: bits})
			}
			if n <= 0 || len(set.Prefixes) == 0 {
				continue
			}
			sets = append(sets, set)
			stmts = append(stmts, statement(name,
				&api.Conditions{NeighborSet: matchAny(externalSet), PrefixSet: matchAny(name)},
				&api.Actions{AsPrepend: &api.AsPrependAction{Asn: in.asn, Repeat: uint32(n)}}))
		}
	}
	if len(stmts) == 0 {
		return nil, nil
	}
	return sets, stmts
}

// prependsOf groups the routes that ask for prepends by their count, each
// list sorted.
func prependsOf(routes map[netip.Prefix]admitted) map[int][]netip.Prefix {
	out := make(map[int][]netip.Prefix)
	for p, a := range routes {
		if a.route.Prepend > 0 {
			out[a.route.Prepend] = append(out[a.route.Prepend], p)
		}
	}
	for _, ps := range out {
		slices.SortFunc(ps, comparePrefix)
	}
	return out
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
func installPolicies(ctx context.Context, bs *server.BgpServer, in policyInput) error {
	if err := bs.SetPolicies(ctx, policies(in)); err != nil {
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

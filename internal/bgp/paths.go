package bgp

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

// familyOf returns the GoBGP address family of a prefix.
func familyOf(p netip.Prefix) bgp.Family {
	if p.Addr().Is4() {
		return bgp.RF_IPv4_UC
	}
	return bgp.RF_IPv6_UC
}

// announcePath builds the GoBGP path that announces a.
//
// The next hop is unspecified (0.0.0.0 or ::): GoBGP replaces it with the
// session's local address, and the export policy sets each peer's IPv6 next
// hop (policy.go).
func announcePath(a admitted) (*apiutil.Path, error) {
	nlri, err := bgp.NewIPAddrPrefix(a.route.Prefix)
	if err != nil {
		return nil, fmt.Errorf("route %s: %w", a.route.Prefix, err)
	}
	attrs, err := pathAttributes(a.route, nlri)
	if err != nil {
		return nil, fmt.Errorf("route %s: %w", a.route.Prefix, err)
	}
	return &apiutil.Path{Family: familyOf(a.route.Prefix), Nlri: nlri, Attrs: attrs}, nil
}

// withdrawPath builds the GoBGP path that withdraws a's prefix. It names the
// NLRI, not a path UUID: re-announcing a prefix invalidates its old UUID.
func withdrawPath(a admitted) (*apiutil.Path, error) {
	nlri, err := bgp.NewIPAddrPrefix(a.route.Prefix)
	if err != nil {
		return nil, fmt.Errorf("route %s: %w", a.route.Prefix, err)
	}
	return &apiutil.Path{Family: familyOf(a.route.Prefix), Nlri: nlri, Withdrawal: true}, nil
}

// pathAttributes returns the attributes of an announcement of r.
func pathAttributes(r Route, nlri bgp.NLRI) ([]bgp.PathAttributeInterface, error) {
	attrs := []bgp.PathAttributeInterface{bgp.NewPathAttributeOrigin(bgp.BGP_ORIGIN_ATTR_TYPE_IGP)}

	if r.Prefix.Addr().Is4() {
		nh, err := bgp.NewPathAttributeNextHop(netip.IPv4Unspecified())
		if err != nil {
			return nil, err
		}
		attrs = append(attrs, nh)
	} else {
		mp, err := bgp.NewPathAttributeMpReachNLRI(bgp.RF_IPv6_UC, []bgp.PathNLRI{{NLRI: nlri}}, netip.IPv6Unspecified())
		if err != nil {
			return nil, err
		}
		attrs = append(attrs, mp)
	}

	// No AS_PATH: GoBGP sends an empty one to iBGP peers and our AS to
	// eBGP peers, where the export policy adds r.Prepend more copies.
	attrs = append(attrs, bgp.NewPathAttributeMultiExitDisc(r.MED))
	// GoBGP strips LOCAL_PREF towards eBGP peers.
	attrs = append(attrs, bgp.NewPathAttributeLocalPref(r.LocalPref))
	if len(r.Communities) > 0 {
		values := make([]uint32, len(r.Communities))
		for i, c := range r.Communities {
			values[i] = uint32(c)
		}
		attrs = append(attrs, bgp.NewPathAttributeCommunities(values))
	}
	if len(r.LargeCommunities) > 0 {
		values := make([]*bgp.LargeCommunity, len(r.LargeCommunities))
		for i, c := range r.LargeCommunities {
			values[i] = bgp.NewLargeCommunity(c.Global, c.Local1, c.Local2)
		}
		attrs = append(attrs, bgp.NewPathAttributeLargeCommunities(values))
	}
	return attrs, nil
}

// nlriPrefix returns the prefix of a unicast NLRI.
func nlriPrefix(nlri bgp.NLRI) (netip.Prefix, bool) {
	p, ok := nlri.(*bgp.IPAddrPrefix)
	if !ok {
		return netip.Prefix{}, false
	}
	return p.Prefix, true
}

// sameAttributes reports whether two routes for one prefix announce the same
// attributes.
func sameAttributes(a, b Route) bool {
	return a.MED == b.MED && a.Prepend == b.Prepend && a.LocalPref == b.LocalPref &&
		slices.Equal(a.Communities, b.Communities) &&
		slices.Equal(a.LargeCommunities, b.LargeCommunities)
}

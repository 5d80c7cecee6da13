package bgp

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/osrg/gobgp/v4/api"
)

// describePolicy renders the export policy as one line per statement.
func describePolicy(req *api.SetPoliciesRequest) []string {
	sets := map[string]string{}
	for _, d := range req.DefinedSets {
		var items []string
		items = append(items, d.List...)
		for _, p := range d.Prefixes {
			items = append(items, p.IpPrefix)
		}
		sets[d.Name] = strings.Join(items, ",")
	}
	var out []string
	for _, p := range req.Policies {
		for _, s := range p.Statements {
			line := p.Name + ":"
			if c := s.Conditions; c != nil {
				if c.PrefixSet != nil {
					line += " prefix " + c.PrefixSet.Type.String() + "(" + sets[c.PrefixSet.Name] + ")"
				}
				if c.NeighborSet != nil {
					line += " neighbor(" + sets[c.NeighborSet.Name] + ")"
				}
				for _, f := range c.AfiSafiIn {
					line += " family " + f.Afi.String()
				}
			}
			line += " -> " + s.Actions.RouteAction.String()
			if s.Actions.Nexthop != nil {
				line += " nexthop " + s.Actions.Nexthop.Address
			}
			if a := s.Actions.AsPrepend; a != nil {
				line += fmt.Sprintf(" prepend %dx%d", a.Asn, a.Repeat)
			}
			out = append(out, line)
		}
	}
	return out
}

func TestPolicies(t *testing.T) {
	allowed := []netip.Prefix{allowedV4, allowedV6}
	rules := []nextHopRule{
		{peer: netip.MustParseAddr("10.0.0.2"), nextHop: netip.MustParseAddr("2001:db8::2")},
		{peer: netip.MustParseAddr("10.0.0.1"), nextHop: netip.MustParseAddr("2001:db8::1")},
	}
	got := strings.Join(describePolicy(policies(policyInput{allowed: allowed, nextHops: rules})), "\n")
	want := strings.Join([]string{
		"vipd-import: neighbor(0.0.0.0/0,::/0) -> ROUTE_ACTION_REJECT",
		"vipd-export: prefix TYPE_INVERT(192.0.2.16/31) -> ROUTE_ACTION_REJECT",
		"vipd-export: prefix TYPE_INVERT(2001:db8:1::/127) -> ROUTE_ACTION_REJECT",
		"vipd-export: neighbor(10.0.0.1/32) family AFI_IP6 -> ROUTE_ACTION_ACCEPT nexthop 2001:db8::1",
		"vipd-export: neighbor(10.0.0.2/32) family AFI_IP6 -> ROUTE_ACTION_ACCEPT nexthop 2001:db8::2",
		"vipd-export: family AFI_IP6 -> ROUTE_ACTION_REJECT",
	}, "\n")
	if got != want {
		t.Errorf("policy:\n%s\nwant:\n%s", got, want)
	}
}

func TestPoliciesWithoutAllowedFamily(t *testing.T) {
	got := strings.Join(describePolicy(policies(policyInput{allowed: []netip.Prefix{allowedV4}})), "\n")
	want := strings.Join([]string{
		"vipd-import: neighbor(0.0.0.0/0,::/0) -> ROUTE_ACTION_REJECT",
		"vipd-export: prefix TYPE_INVERT(192.0.2.16/31) -> ROUTE_ACTION_REJECT",
		"vipd-export: family AFI_IP6 -> ROUTE_ACTION_REJECT",
		"vipd-export: family AFI_IP6 -> ROUTE_ACTION_REJECT",
	}, "\n")
	if got != want {
		t.Errorf("policy:\n%s\nwant:\n%s", got, want)
	}
	for _, d := range policies(policyInput{allowed: []netip.Prefix{allowedV4}}).DefinedSets {
		for _, p := range d.Prefixes {
			if p.MaskLengthMin != 32 || p.MaskLengthMax != 32 {
				t.Errorf("prefix set %s matches /%d-/%d, want host routes only", d.Name, p.MaskLengthMin, p.MaskLengthMax)
			}
		}
	}
}

// Prepends go to eBGP peers only: a statement per count and family, without
// a route action so the next-hop statements still run.
func TestPoliciesPrependOnEBGPOnly(t *testing.T) {
	v4a, v4b := netip.MustParsePrefix("192.0.2.16/32"), netip.MustParsePrefix("192.0.2.17/32")
	v6 := netip.MustParsePrefix("2001:db8:1::/128")
	in := policyInput{
		asn:      65000,
		allowed:  []netip.Prefix{allowedV4, allowedV6},
		nextHops: []nextHopRule{{peer: netip.MustParseAddr("10.0.0.1"), nextHop: netip.MustParseAddr("2001:db8::1")}},
		external: []netip.Addr{netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.1")},
		prepends: map[int][]netip.Prefix{3: {v4a, v6}, 1: {v4b}},
	}
	got := strings.Join(describePolicy(policies(in)), "\n")
	want := strings.Join([]string{
		"vipd-import: neighbor(0.0.0.0/0,::/0) -> ROUTE_ACTION_REJECT",
		"vipd-export: prefix TYPE_INVERT(192.0.2.16/31) -> ROUTE_ACTION_REJECT",
		"vipd-export: prefix TYPE_INVERT(2001:db8:1::/127) -> ROUTE_ACTION_REJECT",
		"vipd-export: prefix TYPE_ANY(192.0.2.17/32) neighbor(10.0.0.1/32,10.0.0.2/32) -> ROUTE_ACTION_UNSPECIFIED prepend 65000x1",
		"vipd-export: prefix TYPE_ANY(192.0.2.16/32) neighbor(10.0.0.1/32,10.0.0.2/32) -> ROUTE_ACTION_UNSPECIFIED prepend 65000x3",
		"vipd-export: prefix TYPE_ANY(2001:db8:1::/128) neighbor(10.0.0.1/32,10.0.0.2/32) -> ROUTE_ACTION_UNSPECIFIED prepend 65000x3",
		"vipd-export: neighbor(10.0.0.1/32) family AFI_IP6 -> ROUTE_ACTION_ACCEPT nexthop 2001:db8::1",
		"vipd-export: family AFI_IP6 -> ROUTE_ACTION_REJECT",
	}, "\n")
	if got != want {
		t.Errorf("policy:\n%s\nwant:\n%s", got, want)
	}

	// No eBGP peer: no prepend at all.
	in.external = nil
	for _, line := range describePolicy(policies(in)) {
		if strings.Contains(line, "prepend") {
			t.Errorf("with only iBGP peers: %s", line)
		}
	}
}

// Only a kept route with another prepend count needs a re-send: new routes
// go out through the new policy, withdrawn ones need none.
func TestPrependChanged(t *testing.T) {
	a := func(p netip.Prefix, n int) admitted { return admitted{route: Route{Prefix: p, Prepend: n}} }
	current := map[netip.Prefix]admitted{vip4: a(vip4, 2)}
	for _, tc := range []struct {
		name    string
		desired map[netip.Prefix]admitted
		want    bool
	}{
		{"same", map[netip.Prefix]admitted{vip4: a(vip4, 2)}, false},
		{"new route with prepends", map[netip.Prefix]admitted{vip4: a(vip4, 2), vip6: a(vip6, 3)}, false},
		{"withdrawn", map[netip.Prefix]admitted{}, false},
		{"kept, other count", map[netip.Prefix]admitted{vip4: a(vip4, 0)}, true},
	} {
		if got := prependChanged(current, tc.desired); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	if got := prependsOf(map[netip.Prefix]admitted{vip6: a(vip6, 3), vip4: a(vip4, 3)}); len(got) != 1 || !slices.Equal(got[3], []netip.Prefix{vip4, vip6}) {
		t.Errorf("prependsOf = %v, want 3: [vip4 vip6]", got)
	}
}

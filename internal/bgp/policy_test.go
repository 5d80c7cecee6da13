package bgp

import (
	"net/netip"
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
	got := strings.Join(describePolicy(policies(allowed, rules)), "\n")
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
	got := strings.Join(describePolicy(policies([]netip.Prefix{allowedV4}, nil)), "\n")
	want := strings.Join([]string{
		"vipd-import: neighbor(0.0.0.0/0,::/0) -> ROUTE_ACTION_REJECT",
		"vipd-export: prefix TYPE_INVERT(192.0.2.16/31) -> ROUTE_ACTION_REJECT",
		"vipd-export: family AFI_IP6 -> ROUTE_ACTION_REJECT",
		"vipd-export: family AFI_IP6 -> ROUTE_ACTION_REJECT",
	}, "\n")
	if got != want {
		t.Errorf("policy:\n%s\nwant:\n%s", got, want)
	}
	for _, d := range policies([]netip.Prefix{allowedV4}, nil).DefinedSets {
		for _, p := range d.Prefixes {
			if p.MaskLengthMin != 32 || p.MaskLengthMax != 32 {
				t.Errorf("prefix set %s matches /%d-/%d, want host routes only", d.Name, p.MaskLengthMin, p.MaskLengthMax)
			}
		}
	}
}

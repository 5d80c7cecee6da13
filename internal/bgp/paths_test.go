package bgp

import (
	"net/netip"
	"testing"

	"github.com/osrg/gobgp/v4/pkg/packet/bgp"

	"github.com/vipd/vipd/internal/config"
)

func TestAnnouncePath(t *testing.T) {
	tests := []struct {
		name   string
		route  Route
		family bgp.Family
		want   string
	}{
		{
			name:   "v4 plain",
			route:  Route{Prefix: vip4},
			family: bgp.RF_IPv4_UC,
			want:   "nh=0.0.0.0 med=0 aspath= comms= large= lp=0",
		},
		{
			name: "v4 with everything",
			route: Route{Prefix: vip4, MED: 1000, Prepend: 2, LocalPref: 100,
				Communities:      []config.Community{64532<<16 | 100, 65535 << 16},
				LargeCommunities: []config.LargeCommunity{{Global: 4200000000, Local1: 7, Local2: 8}}},
			family: bgp.RF_IPv4_UC,
			// Prepends are the export policy's, for eBGP peers only.
			want: "nh=0.0.0.0 med=1000 aspath= comms=64532:100 65535:0 large=4200000000:7:8 lp=100",
		},
		{
			name:   "v6 next hop left to the export policy",
			route:  Route{Prefix: vip6, MED: 5, LocalPref: 50},
			family: bgp.RF_IPv6_UC,
			want:   "nh=:: med=5 aspath= comms= large= lp=50",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := announcePath(admitted{route: tt.route})
			if err != nil {
				t.Fatal(err)
			}
			if p.Family != tt.family || p.Withdrawal {
				t.Errorf("family %v withdrawal %v, want %v false", p.Family, p.Withdrawal, tt.family)
			}
			if got, _ := nlriPrefix(p.Nlri); got != tt.route.Prefix {
				t.Errorf("NLRI %v, want %v", got, tt.route.Prefix)
			}
			if got := pathSummary(p); got != tt.want {
				t.Errorf("attributes:\n got %s\nwant %s", got, tt.want)
			}
			if origin, ok := p.Attrs[0].(*bgp.PathAttributeOrigin); !ok || origin.Value != bgp.BGP_ORIGIN_ATTR_TYPE_IGP {
				t.Errorf("first attribute %v, want ORIGIN IGP", p.Attrs[0])
			}
		})
	}
}

func TestWithdrawPathNamesTheNLRI(t *testing.T) {
	for _, prefix := range []netip.Prefix{vip4, vip6} {
		p, err := withdrawPath(admitted{route: Route{Prefix: prefix, MED: 9}})
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := nlriPrefix(p.Nlri); got != prefix || !p.Withdrawal || p.Family != familyOf(prefix) || len(p.Attrs) != 0 {
			t.Errorf("withdraw path for %s = %+v", prefix, p)
		}
	}
}

func TestSameAttributes(t *testing.T) {
	base := Route{Prefix: vip4, MED: 1, Prepend: 1, Communities: []config.Community{1}, LargeCommunities: []config.LargeCommunity{{Global: 1, Local1: 2, Local2: 3}}}
	for name, change := range map[string]func(*Route){
		"med":               func(r *Route) { r.MED = 2 },
		"prepend":           func(r *Route) { r.Prepend = 0 },
		"communities":       func(r *Route) { r.Communities = []config.Community{2} },
		"no communities":    func(r *Route) { r.Communities = nil },
		"large communities": func(r *Route) { r.LargeCommunities = []config.LargeCommunity{{Global: 1, Local1: 2, Local2: 4}} },
	} {
		r := base
		change(&r)
		if sameAttributes(base, r) {
			t.Errorf("%s change not detected", name)
		}
	}
	same := base
	same.Communities = []config.Community{1}
	if !sameAttributes(base, same) {
		t.Error("equal routes reported as changed")
	}
}

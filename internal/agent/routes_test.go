package agent

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vipd/vipd/internal/bgp"
	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/internal/lb"
)

func TestDecide(t *testing.T) {
	v4 := netip.MustParseAddr("192.168.0.16")
	v6 := netip.MustParseAddr("fda4:5ff2:8477:1755::")
	cfg := &config.Config{
		BGP: config.BGP{Communities: []config.Community{64532<<16 | 100}},
		Services: []config.Service{
			{Name: "web", VIPs: []netip.Addr{v4, v6}, MED: 100, DownMED: 1000, Prepend: 1, DownPrepend: 3,
				LocalPref: 200, DownLocalPref: 10, OnDown: config.OnDownWithdraw, Checks: []config.Check{{TCP: &config.TCPCheck{Address: "x:1"}}},
				Communities: []config.Community{1<<16 | 2}},
			{Name: "dns", VIPs: []netip.Addr{netip.MustParseAddr("192.168.0.17")}, MED: 5, DownMED: 50, DownPrepend: 2,
				LocalPref: 100, DownLocalPref: 50, OnDown: config.OnDownDegrade, Checks: []config.Check{{TCP: &config.TCPCheck{Address: "x:1"}}}},
			{Name: "static", VIPs: []netip.Addr{netip.MustParseAddr("192.168.0.18")}},
		},
	}
	comm := []config.Community{64532<<16 | 100}
	webComm := []config.Community{64532<<16 | 100, 1<<16 | 2}
	tests := []struct {
		name  string
		up    map[string]bool
		drain map[string]Reason
		want  map[string]*bgp.Route // by prefix; nil = withdrawn
		why   map[string]Reason
	}{
		{
			name: "all up",
			up:   map[string]bool{"web": true, "dns": true, "static": true},
			want: map[string]*bgp.Route{
				"192.168.0.16/32":           {MED: 100, Prepend: 1, LocalPref: 200, Communities: webComm},
				"fda4:5ff2:8477:1755::/128": {MED: 100, Prepend: 1, LocalPref: 200, Communities: webComm},
				"192.168.0.17/32":           {MED: 5, LocalPref: 100, Communities: comm},
				"192.168.0.18/32":           {Communities: comm},
			},
			why: map[string]Reason{"web": ReasonHealthy, "dns": ReasonHealthy, "static": ReasonNoChecks},
		},
		{
			name: "down: withdraw and degrade",
			up:   map[string]bool{"static": true},
			want: map[string]*bgp.Route{
				"192.168.0.16/32":           nil,
				"fda4:5ff2:8477:1755::/128": nil,
				"192.168.0.17/32":           {MED: 50, Prepend: 2, LocalPref: 50, Communities: comm},
				"192.168.0.18/32":           {Communities: comm},
			},
			why: map[string]Reason{"web": ReasonHealthDown, "dns": ReasonDegraded, "static": ReasonNoChecks},
		},
		{
			name:  "drains win over health: withdraw, or degrade under on_down degrade",
			up:    map[string]bool{"web": true, "dns": true, "static": true},
			drain: map[string]Reason{"web": ReasonDrained, "dns": ReasonMaintenance, "static": ReasonDrained},
			want: map[string]*bgp.Route{
				"192.168.0.16/32":           nil,
				"fda4:5ff2:8477:1755::/128": nil,
				"192.168.0.17/32":           {MED: 50, Prepend: 2, LocalPref: 50, Communities: comm},
				"192.168.0.18/32":           nil,
			},
			why: map[string]Reason{"web": ReasonDrained, "dns": ReasonMaintenance, "static": ReasonDrained},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ds := decide(cfg.BGP, cfg.Services, func(s string) serviceInput { return serviceInput{up: tt.up[s], drain: tt.drain[s]} })
			got := map[string]*bgp.Route{}
			why := map[string]Reason{}
			for _, d := range ds {
				if d.route != nil {
					if d.route.Prefix != d.prefix {
						t.Errorf("%s: route prefix %s", d.prefix, d.route.Prefix)
					}
					r := *d.route
					r.Prefix = netip.Prefix{}
					d.route = &r
				}
				got[d.prefix.String()] = d.route
				why[d.service] = d.reason
			}
			if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
				t.Errorf("routes (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.why, why); diff != "" {
				t.Errorf("reasons (-want +got):\n%s", diff)
			}
			if n := len(routesOf(ds)); n != countNonNil(tt.want) {
				t.Errorf("routesOf: %d routes, want %d", n, countNonNil(tt.want))
			}
		})
	}
}

// A load balancer's address goes through decide like a configured VIP, its
// state explained by its backends rather than by checks.
func TestDecideLoadBalancer(t *testing.T) {
	addr := netip.MustParseAddr("198.51.100.1")
	l := lb.LoadBalancer{UUID: "u", Spec: lb.Spec{Name: "web", Address: addr}}
	svc := lbService(l)
	g := config.BGP{Communities: []config.Community{64532<<16 | 100}}
	for _, tc := range []struct {
		in        serviceInput
		announced bool
		why       Reason
	}{
		{serviceInput{up: true, upReason: ReasonBackendsUp}, true, ReasonBackendsUp},
		{serviceInput{up: true, upReason: ReasonAnnounceNoneUp}, true, ReasonAnnounceNoneUp},
		{serviceInput{downReason: ReasonNoBackend}, false, ReasonNoBackend},
		{serviceInput{up: true, upReason: ReasonBackendsUp, drain: ReasonDrained}, false, ReasonDrained},
	} {
		ds := decide(g, []config.Service{svc}, func(string) serviceInput { return tc.in })
		if len(ds) != 1 || ds[0].prefix != netip.PrefixFrom(addr, 32) || ds[0].service != "lb/web" {
			t.Fatalf("decisions %+v, want one for %s as lb/web", ds, addr)
		}
		if got := ds[0].route != nil; got != tc.announced || ds[0].reason != tc.why {
			t.Errorf("%+v: announced %v (%s), want %v (%s)", tc.in, got, ds[0].reason, tc.announced, tc.why)
		}
		if ds[0].route != nil && !slices.Equal(ds[0].route.Communities, g.Communities) {
			t.Errorf("communities %v, want the global ones %v", ds[0].route.Communities, g.Communities)
		}
		if ds[0].route != nil && ds[0].route.LocalPref != config.DefaultLocalPref {
			t.Errorf("local pref %d, want the default %d", ds[0].route.LocalPref, config.DefaultLocalPref)
		}
	}
	pref := uint32(250)
	l.Spec.LocalPref = &pref
	ds := decide(g, []config.Service{lbService(l)}, func(string) serviceInput { return serviceInput{up: true, upReason: ReasonBackendsUp} })
	if len(ds) != 1 || ds[0].route == nil || ds[0].route.LocalPref != 250 {
		t.Errorf("a load balancer with local_pref 250: %+v, want its route with LOCAL_PREF 250", ds)
	}
	if addrs := desiredAddresses([]config.Service{svc}); len(addrs) != 1 || addrs[0].Addr != addr || addrs[0].Interface != "lo" {
		t.Errorf("desiredAddresses = %+v, want %s on lo", addrs, addr)
	}
}

func countNonNil(m map[string]*bgp.Route) int {
	n := 0
	for _, r := range m {
		if r != nil {
			n++
		}
	}
	return n
}

func TestWithGracefulShutdown(t *testing.T) {
	in := []bgp.Route{{Prefix: netip.MustParsePrefix("192.0.2.1/32"), Communities: []config.Community{1}}}
	out := withGracefulShutdown(in)
	if got := out[0].Communities; len(got) != 2 || got[1].String() != "65535:0" {
		t.Errorf("communities %v, want [0:1 65535:0]", got)
	}
	if len(in[0].Communities) != 1 {
		t.Errorf("withGracefulShutdown changed its input: %v", in[0].Communities)
	}
}

package bgp

import (
	"errors"
	"net/netip"
	"testing"
)

func TestGuard(t *testing.T) {
	allowed := []netip.Prefix{
		netip.MustParsePrefix("192.168.0.16/31"),
		netip.MustParsePrefix("fda4:5ff2:8477:1755::/127"),
		netip.MustParsePrefix("198.51.100.7/32"),
		netip.MustParsePrefix("10.0.0.17/28"), // not masked: still means 10.0.0.16/28
	}
	tests := []struct {
		name   string
		prefix string
		want   error
	}{
		{"v4 first of /31", "192.168.0.16/32", nil},
		{"v4 second of /31", "192.168.0.17/32", nil},
		{"v4 allowed as single /32", "198.51.100.7/32", nil},
		{"v4 in unmasked allowed prefix", "10.0.0.30/32", nil},
		{"v6 inside /127", "fda4:5ff2:8477:1755::1/128", nil},
		{"v4 just outside", "192.168.0.18/32", ErrOutsideAllowed},
		{"v4 unrelated", "203.0.113.1/32", ErrOutsideAllowed},
		{"v6 just outside", "fda4:5ff2:8477:1755::2/128", ErrOutsideAllowed},
		{"v4 the allowed prefix itself", "192.168.0.16/31", ErrNotHostRoute},
		{"v4 default route", "0.0.0.0/0", ErrNotHostRoute},
		{"v6 the allowed prefix itself", "fda4:5ff2:8477:1755::/127", ErrNotHostRoute},
		{"v6 with v4 host length", "fda4:5ff2:8477:1755::/32", ErrNotHostRoute},
		{"v4-mapped v6", "::ffff:192.168.0.16/128", ErrInvalidPrefix},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := guard(allowed, netip.MustParsePrefix(tt.prefix))
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("guard(%s) = %v, want %v", tt.prefix, err, tt.want)
			}
		})
	}
	if err := guard(allowed, netip.Prefix{}); !errors.Is(err, ErrInvalidPrefix) {
		t.Errorf("guard(zero prefix) = %v, want ErrInvalidPrefix", err)
	}
	if err := guard(nil, netip.MustParsePrefix("192.168.0.16/32")); !errors.Is(err, ErrOutsideAllowed) {
		t.Errorf("guard with nothing allowed = %v, want ErrOutsideAllowed", err)
	}
}

func TestAdmitRoutes(t *testing.T) {
	allowed := []netip.Prefix{allowedV4, allowedV6}
	routes := []Route{
		{Prefix: vip4, MED: 1},
		{Prefix: netip.MustParsePrefix("10.1.1.1/32")},
		{Prefix: vip4, MED: 2}, // repeated: the first wins
		{Prefix: vip6},
	}
	desired, views, errs := admitRoutes(allowed, routes)
	if len(desired) != 2 || desired[vip4].route.MED != 1 {
		t.Errorf("admitted = %+v, want vip4 (MED 1) and vip6", desired)
	}
	if len(errs) != 2 {
		t.Fatalf("errors = %v, want one refusal and one repeat", errs)
	}
	if !errors.Is(errs[0], ErrOutsideAllowed) {
		t.Errorf("first error = %v, want ErrOutsideAllowed", errs[0])
	}
	if len(views) != 3 || views[1].Refused != ErrOutsideAllowed.Error() {
		t.Errorf("views = %+v", views)
	}
}

func TestDiffRoutes(t *testing.T) {
	a := func(p netip.Prefix, med uint32) admitted { return admitted{route: Route{Prefix: p, MED: med}} }
	current := map[netip.Prefix]admitted{vip4: a(vip4, 1), vip4b: a(vip4b, 1)}
	desired := map[netip.Prefix]admitted{vip4: a(vip4, 2), vip6: a(vip6, 0), vip4b: a(vip4b, 1)}
	announce, withdraw := diffRoutes(current, desired)
	if len(announce) != 2 || announce[0].route.Prefix != vip4 || announce[0].route.MED != 2 || announce[1].route.Prefix != vip6 {
		t.Errorf("announce = %+v, want vip4 (MED changed) and vip6 (new)", announce)
	}
	if len(withdraw) != 0 {
		t.Errorf("withdraw = %+v, want none", withdraw)
	}
	announce, withdraw = diffRoutes(desired, nil)
	if len(announce) != 0 || len(withdraw) != 3 {
		t.Errorf("to empty: announce %d, withdraw %d; want 0, 3", len(announce), len(withdraw))
	}
	announce, withdraw = diffRoutes(desired, desired)
	if len(announce)+len(withdraw) != 0 {
		t.Errorf("repeat: announce %d, withdraw %d; want nothing", len(announce), len(withdraw))
	}
}

package testnet

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestAddr6(t *testing.T) {
	tests := []struct {
		spec Spec
		v4   string
		want string
	}{
		{Spec{}, "10.255.255.11", "fd00:255::b"},
		{Spec{}, "10.255.255.254", "fd00:255::fe"},
		{Spec{LAN4: netip.MustParsePrefix("10.1.0.0/16"), LAN6: netip.MustParsePrefix("fd00:1::/64")}, "10.1.2.3", "fd00:1::203"},
	}
	for _, tt := range tests {
		if got := tt.spec.Addr6(addr(tt.v4)); got != addr(tt.want) {
			t.Errorf("Addr6(%s) = %s, want %s", tt.v4, got, tt.want)
		}
	}
}

func TestSpecValidate(t *testing.T) {
	router := func(mod func(*RouterSpec)) Spec {
		r := RouterSpec{Name: "r1", Kind: BIRD, ASN: 65535, Address: addr("10.255.255.1"),
			Neighbors: []Neighbor{{Address: n1v4, ASN: nodeASN}}}
		mod(&r)
		return Spec{Routers: []RouterSpec{r}, Nodes: []NodeSpec{{Name: "n1", Address: n1v4}}}
	}
	tests := []struct {
		name string
		spec Spec
		want string // substring of the error; "" for none
	}{
		{"valid", router(func(*RouterSpec) {}), ""},
		{"unknown kind", router(func(r *RouterSpec) { r.Kind = "gobgp" }), `kind "gobgp"`},
		{"zero asn", router(func(r *RouterSpec) { r.ASN = 0 }), "asn: must not be 0"},
		{"name too long", router(func(r *RouterSpec) { r.Name = "averyverylongname" }), "name must match"},
		{"name taken by lan", router(func(r *RouterSpec) { r.Name = "lan" }), "name in use"},
		{"address outside lan", router(func(r *RouterSpec) { r.Address = addr("10.0.0.1") }), "not in lan4"},
		{"address in use", router(func(r *RouterSpec) { r.Address = n1v4 }), "already used by r1"},
		{"password with space", router(func(r *RouterSpec) { r.Neighbors[0].Password = "a b" }), "password must match"},
		{"peer address needs multihop", router(func(r *RouterSpec) { r.PeerAddress = addr("169.254.169.254") }), "must be multihop"},
		{"lan6 too small", Spec{LAN4: netip.MustParsePrefix("10.0.0.0/8"), LAN6: netip.MustParsePrefix("fd00::/112")}, "too small"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.spec.withDefaults().validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestFreeAddrs(t *testing.T) {
	tests := []struct {
		name string
		spec Spec
		n    int
		want []string // nil: an error
	}{
		{"default lan", Spec{}, 3, []string{"10.255.255.254", "10.255.255.253", "10.255.255.252"}},
		{"skips every kind of member", Spec{
			Routers: []RouterSpec{{Name: "r1", Address: addr("10.255.255.254")}},
			Nodes:   []NodeSpec{{Name: "n1", Address: addr("10.255.255.252")}},
			Client:  &NodeSpec{Name: "client", Address: addr("10.255.255.251")},
			Hosts:   []NodeSpec{{Name: "h1", Address: addr("10.255.255.249")}},
		}, 2, []string{"10.255.255.253", "10.255.255.250"}},
		{"other lan", Spec{LAN4: netip.MustParsePrefix("10.1.0.0/16")}, 1, []string{"10.1.255.254"}},
		{"too small", Spec{LAN4: netip.MustParsePrefix("10.1.0.0/30")}, 3, nil},
		{"exactly enough", Spec{LAN4: netip.MustParsePrefix("10.1.0.0/29")}, 6, []string{"10.1.0.6", "10.1.0.5", "10.1.0.4", "10.1.0.3", "10.1.0.2", "10.1.0.1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.spec.FreeAddrs(tt.n)
			if tt.want == nil {
				if err == nil {
					t.Fatalf("FreeAddrs(%d) = %v, want an error", tt.n, got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var gotS []string
			for _, a := range got {
				gotS = append(gotS, a.String())
			}
			if !slices.Equal(gotS, tt.want) {
				t.Errorf("FreeAddrs(%d) = %v, want %v", tt.n, gotS, tt.want)
			}
		})
	}
}

package testnet

import (
	"strings"
	"testing"
)

func TestFabricSpec(t *testing.T) {
	f := FabricSpec{
		Core: &CoreSpec{Kind: BIRD, ASN: 64500},
		Racks: []RackSpec{
			{ASN: 64601, Nodes: 2, Reflector: BIRD, ToR: FRR},
			{ASN: 64602, Nodes: 1, Reflector: FRR, ToR: BIRD},
		},
	}
	spec, layout, err := f.Spec()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range spec.Routers {
		names = append(names, r.Name)
	}
	if got := strings.Join(names, " "); got != "core tor1 rr1 tor2 rr2" {
		t.Errorf("routers %s, want the core first (the default gateway), then each rack's ToR and reflector", got)
	}
	if err := spec.withDefaults().validate(); err != nil {
		t.Errorf("spec does not validate: %v", err)
	}
	if spec.Client == nil || len(spec.Nodes) != 3 {
		t.Fatalf("client %v, %d nodes; want a client and 3 nodes", spec.Client, len(spec.Nodes))
	}
	rr1 := spec.Routers[2]
	if len(rr1.Neighbors) != 3 || !rr1.Neighbors[0].RRClient || rr1.Neighbors[0].ASN != 64601 ||
		!rr1.Neighbors[2].AddPaths || !rr1.Neighbors[2].Export || rr1.Neighbors[2].Address != spec.Routers[1].Address {
		t.Errorf("rr1 neighbours %+v: want its two nodes as iBGP clients, then tor1 with add paths", rr1.Neighbors)
	}
	tor2 := spec.Routers[3]
	if len(tor2.Neighbors) != 2 || tor2.Neighbors[1].ASN != 64500 || !tor2.Neighbors[1].NextHopSelf {
		t.Errorf("tor2 neighbours %+v: want rr2, then the core over eBGP with next hop self", tor2.Neighbors)
	}
	if n, ok := layout.Node("n3"); !ok || n.Rack != 2 || n.ASN != 64602 || n.Reflector != spec.Routers[4].Address {
		t.Errorf("layout of n3: %+v, want rack 2, AS 64602, reflector rr2", n)
	}
	if len(layout.Routers) != 5 || layout.Routers[0].Role != RoleCore || layout.Routers[4].Role != RoleReflector || layout.Routers[4].Rack != 2 {
		t.Errorf("layout routers %+v", layout.Routers)
	}

	for _, bad := range []FabricSpec{
		{},
		{Racks: []RackSpec{{ASN: 1, Nodes: 0}}},
		{Core: &CoreSpec{ASN: 7}, Racks: []RackSpec{{ASN: 7, Nodes: 1}}},
	} {
		if _, _, err := bad.Spec(); err == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
}

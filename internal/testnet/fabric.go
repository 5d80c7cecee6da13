package testnet

import (
	"errors"
	"fmt"
	"net/netip"
)

// FabricSpec describes the External IP design for bare-metal racks as a
// world: each rack has nodes that peer over iBGP with the rack's route
// reflector, which reflects every path to the rack's top-of-rack router
// in the same AS; with Core set, a core router peers over eBGP with every
// ToR and a client sits behind it. Every member shares the world's one LAN
// (the racks are logical): ToRs make themselves the next hop towards the
// core, so traffic still goes client → core → ToR → node.
//
// Addresses in the default LAN: the core 10.255.255.1, the client .100;
// rack R's ToR .(20R+1), its reflector .(20R+2) and its nodes from
// .(20R+11). Nodes are named n1, n2, … across racks.
type FabricSpec struct {
	Racks []RackSpec
	Core  *CoreSpec // nil: racks without a core (and without a client)
	// NodeBFD, if set, runs BFD (single-hop) on every node–reflector
	// session, on the reflector's side; vipd's side is its own config.
	NodeBFD *BFDSpec
}

// RackSpec is one rack.
type RackSpec struct {
	ASN       uint32 // the rack's AS: its nodes, reflector and ToR
	Nodes     int    // 1..9
	Reflector RouterKind
	ToR       RouterKind
}

// CoreSpec is the core router.
type CoreSpec struct {
	Kind RouterKind
	ASN  uint32
}

// Fabric roles of routers, as `vipd lab status --json` names them.
const (
	RoleCore      = "core"
	RoleToR       = "tor"
	RoleReflector = "rr"
	RoleProvider  = "provider"
)

// Layout says what each member of a fabric world is.
type Layout struct {
	Routers []LayoutRouter
	Nodes   []LayoutNode
}

// LayoutRouter is a router's role; Rack is 0 for the core.
type LayoutRouter struct {
	Name string
	Role string
	Rack int
}

// LayoutNode is a node's rack, AS and reflector (the peer its vipd
// configures, over iBGP).
type LayoutNode struct {
	Name      string
	Rack      int
	ASN       uint32
	Reflector netip.Addr
}

// Rack returns the rack of node name, or 0.
func (l Layout) Rack(name string) int {
	for _, n := range l.Nodes {
		if n.Name == name {
			return n.Rack
		}
	}
	return 0
}

// Node returns the layout of node name.
func (l Layout) Node(name string) (LayoutNode, bool) {
	for _, n := range l.Nodes {
		if n.Name == name {
			return n, true
		}
	}
	return LayoutNode{}, false
}

// lanHost is the address with host part i in the default LAN.
func lanHost(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 255, 255, byte(i)}) }

// Spec turns the fabric into a world spec (Prefix and Record unset) and
// its layout.
func (f FabricSpec) Spec() (Spec, Layout, error) {
	if err := f.validate(); err != nil {
		return Spec{}, Layout{}, fmt.Errorf("testnet: fabric: %w", err)
	}
	var spec Spec
	var layout Layout
	var core *RouterSpec
	if f.Core != nil {
		core = &RouterSpec{Name: "core", Kind: f.Core.Kind, ASN: f.Core.ASN, Address: lanHost(1)}
		layout.Routers = append(layout.Routers, LayoutRouter{Name: core.Name, Role: RoleCore})
		spec.Client = &NodeSpec{Name: "client", Address: lanHost(100)}
	}
	var racks []RouterSpec
	node := 0
	for i, rack := range f.Racks {
		r := i + 1
		tor := RouterSpec{Name: fmt.Sprintf("tor%d", r), Kind: rack.ToR, ASN: rack.ASN, Address: lanHost(20*r + 1)}
		rr := RouterSpec{Name: fmt.Sprintf("rr%d", r), Kind: rack.Reflector, ASN: rack.ASN, Address: lanHost(20*r + 2)}
		for j := range rack.Nodes {
			node++
			n := NodeSpec{Name: fmt.Sprintf("n%d", node), Address: lanHost(20*r + 11 + j)}
			spec.Nodes = append(spec.Nodes, n)
			layout.Nodes = append(layout.Nodes, LayoutNode{Name: n.Name, Rack: r, ASN: rack.ASN, Reflector: rr.Address})
			rr.Neighbors = append(rr.Neighbors, Neighbor{Address: n.Address, ASN: rack.ASN, RRClient: true, BFD: f.NodeBFD})
		}
		rr.Neighbors = append(rr.Neighbors, Neighbor{Address: tor.Address, ASN: rack.ASN, Export: true, AddPaths: true})
		tor.Neighbors = append(tor.Neighbors, Neighbor{Address: rr.Address, ASN: rack.ASN, AddPaths: true})
		if core != nil {
			tor.Neighbors = append(tor.Neighbors, Neighbor{Address: core.Address, ASN: core.ASN, Export: true, NextHopSelf: true})
			core.Neighbors = append(core.Neighbors, Neighbor{Address: tor.Address, ASN: rack.ASN})
		}
		racks = append(racks, tor, rr)
		layout.Routers = append(layout.Routers,
			LayoutRouter{Name: tor.Name, Role: RoleToR, Rack: r}, LayoutRouter{Name: rr.Name, Role: RoleReflector, Rack: r})
	}
	// The first router is the default gateway of nodes and the client.
	if core != nil {
		spec.Routers = append(spec.Routers, *core)
	}
	spec.Routers = append(spec.Routers, racks...)
	return spec, layout, nil
}

func (f FabricSpec) validate() error {
	var errs []error
	if len(f.Racks) == 0 || len(f.Racks) > 9 {
		errs = append(errs, fmt.Errorf("%d racks: want 1..9", len(f.Racks)))
	}
	for i, r := range f.Racks {
		if r.Nodes < 1 || r.Nodes > 9 {
			errs = append(errs, fmt.Errorf("rack %d: %d nodes: want 1..9", i+1, r.Nodes))
		}
		if r.ASN == 0 {
			errs = append(errs, fmt.Errorf("rack %d: asn: must not be 0", i+1))
		}
		if f.Core != nil && r.ASN == f.Core.ASN {
			errs = append(errs, fmt.Errorf("rack %d: asn %d is the core's: the ToR-core sessions are eBGP", i+1, r.ASN))
		}
	}
	return errors.Join(errs...)
}

package lab

import (
	"fmt"
	"net/netip"

	"github.com/vipd/vipd/internal/testnet"
)

// Topologies of Options.Topology.
const (
	// TopologySingle is one provider router (BIRD) on the nodes' LAN,
	// peering over eBGP with each node.
	TopologySingle = "single"
	// TopologyMultirack is the External IP design for bare-metal racks:
	// rack 1 has nodes n1 and n2, rack 2 has n3; each node peers over iBGP
	// (BFD 300 ms × 3) with its rack's route reflector, which reflects
	// every path to the rack's ToR; both ToRs peer over eBGP with the core
	// router, behind which sits the client. BIRD everywhere.
	TopologyMultirack = "multirack"
)

// Topologies lists the topologies Up builds, the default first.
var Topologies = []string{TopologySingle, TopologyMultirack}

// The multirack world's AS numbers.
const (
	coreASN  = 64500
	rack1ASN = 64601
	rack2ASN = 64602
)

// topology is the world a lab builds and how to read it: which router
// holds a node's nexthops, which one its sessions, which routes to show.
type topology struct {
	name   string
	spec   testnet.Spec // without Prefix and Record
	layout testnet.Layout
}

// newTopology describes the topology called name ("" is the default).
func newTopology(name string) (topology, error) {
	switch name {
	case "", TopologySingle:
		s := spec("", "")
		layout := testnet.Layout{Routers: []testnet.LayoutRouter{{Name: routerName, Role: testnet.RoleProvider}}}
		for _, n := range s.Nodes {
			layout.Nodes = append(layout.Nodes, testnet.LayoutNode{Name: n.Name, ASN: nodeASN, Reflector: routerAddr})
		}
		return topology{name: TopologySingle, spec: s, layout: layout}, nil
	case TopologyMultirack:
		s, layout, err := testnet.FabricSpec{
			Core: &testnet.CoreSpec{Kind: testnet.BIRD, ASN: coreASN},
			Racks: []testnet.RackSpec{
				{ASN: rack1ASN, Nodes: 2, Reflector: testnet.BIRD, ToR: testnet.BIRD},
				{ASN: rack2ASN, Nodes: 1, Reflector: testnet.BIRD, ToR: testnet.BIRD},
			},
			NodeBFD: &testnet.BFDSpec{},
		}.Spec()
		if err != nil {
			return topology{}, err
		}
		return topology{name: TopologyMultirack, spec: s, layout: layout}, nil
	}
	return topology{}, fmt.Errorf("lab: unknown topology %q: want %s or %s", name, TopologySingle, TopologyMultirack)
}

// topologyOf recognises the topology of a loaded world by its routers.
func topologyOf(w *testnet.World) topology {
	name := TopologySingle
	if w.Router("core") != nil {
		name = TopologyMultirack
	}
	t, _ := newTopology(name) // known names never fail
	return t
}

// worldSpec is the topology's world with the lab's prefix and record.
func (t topology) worldSpec(prefix, record string) testnet.Spec {
	s := t.spec
	s.Prefix, s.Record = prefix, record
	return s
}

// node returns node name's place in the topology.
func (t topology) node(name string) testnet.LayoutNode {
	n, _ := t.layout.Node(name)
	return n
}

// peer is the router node name's vipd peers with: the provider router or
// its rack's reflector.
func (t topology) peer(name string) string {
	if n := t.node(name); n.Rack > 0 {
		return fmt.Sprintf("rr%d", n.Rack)
	}
	return routerName
}

// edge is the router whose FIB routes the VIPs to node name: the provider
// router or its rack's ToR.
func (t topology) edge(name string) string {
	if n := t.node(name); n.Rack > 0 {
		return fmt.Sprintf("tor%d", n.Rack)
	}
	return routerName
}

// top is the router nearest the client: the one whose route Up shows first.
func (t topology) top() string {
	if t.name == TopologyMultirack {
		return "core"
	}
	return routerName
}

// shown are the routers whose routes status prints: the top, then each
// edge router.
func (t topology) shown() []string {
	out := []string{t.top()}
	for _, r := range t.layout.Routers {
		if r.Role == testnet.RoleToR {
			out = append(out, r.Name)
		}
	}
	return out
}

// racks is how many racks the topology has; 0 for the single router.
func (t topology) racks() int {
	n := 0
	for _, r := range t.layout.Routers {
		if r.Role == testnet.RoleToR {
			n++
		}
	}
	return n
}

// config is node name's vipd config, without the runtime keys.
func (t topology) config(name string) string {
	n := t.node(name)
	if n.Rack == 0 {
		return nodeConfig()
	}
	return renderNodeConfig(n.ASN, t.peer(name), n.Reflector, n.ASN)
}

// nodeConfig is every node's vipd config in the single topology, without
// the runtime keys.
func nodeConfig() string { return renderNodeConfig(nodeASN, routerName, routerAddr, routerASN) }

// renderNodeConfig is a node's vipd config: one peer, single-hop with BFD,
// and the demo service.
func renderNodeConfig(asn uint32, peerName string, peer netip.Addr, peerASN uint32) string {
	return fmt.Sprintf(`# written by vipd lab up
bgp:
  asn: %d
  allowed_prefixes: [%s, "%s"]
  peers:
    - name: %s
      address: %s
      asn: %d
      bfd: {enabled: true, min_tx: 300ms, min_rx: 300ms, multiplier: 3}
services:
  - name: %s
    vips: [%s, "%s"]
    interval: 500ms
    rise: 2
    fall: 2
    checks:
      - http: {url: "http://127.0.0.1:%d/healthz"}
`, asn, allowed4, allowed6, peerName, peer, peerASN, serviceName, VIP4, VIP6, servicePort)
}

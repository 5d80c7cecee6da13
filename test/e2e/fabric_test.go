package e2e

import (
	"fmt"
	"testing"

	"github.com/vipd/vipd/internal/testnet"
	"github.com/vipd/vipd/internal/testnet/worldtest"
)

// fabricWorld builds the fabric and returns it with its layout.
func fabricWorld(t *testing.T, f testnet.FabricSpec) (*testnet.World, testnet.Layout) {
	t.Helper()
	spec, layout, err := f.Spec()
	if err != nil {
		t.Fatal(err)
	}
	return worldtest.New(t, spec), layout
}

// fabricConfig is a node's config in a fabric: one iBGP peer, its rack's
// reflector, with single-hop BFD; services follow the services: line.
func fabricConfig(n testnet.LayoutNode, services string) string {
	return fmt.Sprintf(`bgp:
  asn: %d
  allowed_prefixes: [192.168.0.16/31, "fda4:5ff2:8477:1755::/127"]
  peers:
    - name: rr%d
      address: %s
      asn: %d
      hold_time: 9s
      bfd: {enabled: true, min_tx: 300ms, min_rx: 300ms, multiplier: 3}
services:
%s`, n.ASN, n.Rack, n.Reflector, n.ASN, services)
}

// startFabricVipd starts vipd on every node of w with services.
func startFabricVipd(t *testing.T, w *testnet.World, layout testnet.Layout, services func(n *testnet.Node) string) {
	t.Helper()
	for _, n := range w.Nodes() {
		ln, ok := layout.Node(n.Name())
		if !ok {
			t.Fatalf("node %s is not in the layout", n.Name())
		}
		startVipd(t, n, fabricConfig(ln, services(n)))
	}
}

// TestSingleRackReflector: three nodes peer over iBGP with the rack's
// route reflector, which reflects every path to the ToR (same AS): the
// ToR's FIB holds a three-nexthop route for the IPv4 and the IPv6 VIP,
// through the nodes' own addresses. BFD runs on the node–reflector
// sessions.
func TestSingleRackReflector(t *testing.T) {
	for _, kind := range []testnet.RouterKind{testnet.BIRD, testnet.FRR} {
		t.Run(string(kind), func(t *testing.T) { testSingleRack(t, kind) })
	}
}

func testSingleRack(t *testing.T, kind testnet.RouterKind) {
	w, layout := fabricWorld(t, testnet.FabricSpec{
		Racks:   []testnet.RackSpec{{ASN: 64601, Nodes: 3, Reflector: kind, ToR: kind}},
		NodeBFD: &testnet.BFDSpec{},
	})
	startFabricVipd(t, w, layout, func(*testnet.Node) string {
		return "  - name: web\n    vips: [192.168.0.16, \"fda4:5ff2:8477:1755::\"]\n    local_pref: 200\n"
	})
	tor, rr := w.Router("tor1"), w.Router("rr1")
	waitFIB(t, tor, vip4, addrs4(w.Nodes())...)
	waitFIB(t, tor, vip6, addrs6(w.Nodes())...)

	// The reflector holds each node's path with the node's own next hop
	// and an empty AS path (no prepends on iBGP).
	routes, err := rr.BGPRoutes(t.Context(), vip4)
	if err != nil {
		t.Fatal(err)
	}
	if len(routes) != 3 {
		t.Errorf("reflector: %d paths for %s, want 3: %+v", len(routes), vip4, routes)
	}
	for _, rt := range routes {
		if rt.NextHop != rt.FromPeer || len(rt.ASPath) != 0 {
			t.Errorf("reflector: path from %s has next hop %s and AS path %v; want the node's own address and an empty path",
				rt.FromPeer, rt.NextHop, rt.ASPath)
		}
	}
	for _, n := range w.Nodes() {
		if _, err := rr.WaitBFD(t.Context(), n.Addr4(), false, testnet.BFDUp, convergeTimeout); err != nil {
			t.Errorf("reflector BFD with %s: %v", n.Name(), err)
		}
	}
}

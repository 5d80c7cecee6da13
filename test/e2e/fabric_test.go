package e2e

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

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
		if rt.LocalPref != 200 {
			t.Errorf("reflector: path from %s has LOCAL_PREF %d, want the service's local_pref 200", rt.FromPeer, rt.LocalPref)
		}
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

// TestMultiRack: the External IP design end to end. Rack 1 has two nodes,
// rack 2 one; each node peers over iBGP with its rack's reflector, which
// reflects to the rack's ToR; both ToRs peer over eBGP with a core router,
// behind which sits the client. Every node announces two external IPs.
func TestMultiRack(t *testing.T) {
	for _, kind := range []testnet.RouterKind{testnet.BIRD, testnet.FRR} {
		t.Run(string(kind), func(t *testing.T) { testMultiRack(t, kind) })
	}
}

// multiRack is the two-rack fabric with every router of kind.
func multiRack(kind testnet.RouterKind) testnet.FabricSpec {
	return testnet.FabricSpec{
		Core: &testnet.CoreSpec{Kind: kind, ASN: 64500},
		Racks: []testnet.RackSpec{
			{ASN: 64601, Nodes: 2, Reflector: kind, ToR: kind},
			{ASN: 64602, Nodes: 1, Reflector: kind, ToR: kind},
		},
		NodeBFD: &testnet.BFDSpec{},
	}
}

func testMultiRack(t *testing.T, kind testnet.RouterKind) {
	w, layout := fabricWorld(t, multiRack(kind))
	flag := func(n *testnet.Node) string { return filepath.Join(n.Dir(), "healthy") }
	setHealthy := func(n *testnet.Node, healthy bool) {
		t.Helper()
		var err error
		if healthy {
			err = os.WriteFile(flag(n), nil, 0o644)
		} else {
			err = os.Remove(flag(n))
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range w.Nodes() {
		setHealthy(n, true)
		serveName(t, n, 8080)
	}
	startFabricVipd(t, w, layout, func(n *testnet.Node) string {
		return fmt.Sprintf(`  - name: web
    vips: [192.168.0.16, "fda4:5ff2:8477:1755::"]
    interval: 200ms
    checks:
      - exec: {command: [test, -f, %q]}
`, flag(n))
	})
	core, tor1, tor2 := w.Router("core"), w.Router("tor1"), w.Router("tor2")
	n1, n2, n3 := w.Node("n1"), w.Node("n2"), w.Node("n3")
	waitBoth := func(r *testnet.Router, routers ...*testnet.Router) {
		t.Helper()
		var v4, v6 []netip.Addr
		for _, x := range routers {
			v4, v6 = append(v4, x.Addr4()), append(v6, x.Addr6())
		}
		waitFIB(t, r, vip4, v4...)
		waitFIB(t, r, vip6, v6...)
	}
	waitNodes := func(r *testnet.Router, nodes ...*testnet.Node) {
		t.Helper()
		waitFIB(t, r, vip4, addrs4(nodes)...)
		waitFIB(t, r, vip6, addrs6(nodes)...)
	}
	waitBoth(core, tor1, tor2)
	waitNodes(tor1, n1, n2)
	waitNodes(tor2, n3)

	// Connections from the client reach all three nodes: the core spreads
	// flows over the ToRs, ToR 1 over its two nodes.
	seen := map[string]int{}
	for i := 0; i < 400 && len(seen) < 3; i++ {
		seen[dialName(t, w.Client(), "192.168.0.16:8080")]++
	}
	if len(seen) != 3 {
		t.Errorf("connections from the client reached %v, want n1, n2 and n3", seen)
	}

	// A node in rack 1 fails: ToR 1 drops it, the core keeps both ToRs.
	setHealthy(n1, false)
	waitNodes(tor1, n2)
	waitBoth(core, tor1, tor2)

	// Rack 2's only node fails: the core drops ToR 2, and gets it back
	// once the node heals.
	setHealthy(n3, false)
	waitBoth(core, tor1)
	setHealthy(n3, true)
	waitBoth(core, tor1, tor2)
	setHealthy(n1, true)
	waitNodes(tor1, n1, n2)
}

// serveName answers every TCP connection to port on node n with the
// node's name, until the test ends.
func serveName(t *testing.T, n *testnet.Node, port int) {
	t.Helper()
	l, err := n.Listen("tcp", fmt.Sprintf(":%d", port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte(n.Name()))
			c.Close()
		}
	}()
}

// dialName connects from the client to address and returns what the
// server said.
func dialName(t *testing.T, c *testnet.Client, address string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	conn, err := c.DialContext(ctx, "tcp", address)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(conn)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

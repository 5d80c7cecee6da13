package e2e

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/vipd/vipd/internal/testnet"
)

// TestBenchFabricNodeLoss measures node loss through a route reflector in
// the multirack fabric, BFD 300 ms × 3 on the node–reflector sessions:
// cutting n3, rack 2's only node, until the core's FIB drops ToR 2 (the
// reflector drops the path, the ToR withdraws it over eBGP); and cutting
// n1 until ToR 1 drops n1 (the reflector withdraws the path). Target: the
// single-router figure (≤ 1 s) plus the fabric's own propagation.
func TestBenchFabricNodeLoss(t *testing.T) {
	skipUnlessBench(t)
	tb := newBenchTable("fabric-node-loss", "node loss through the route reflector (BFD 300ms × 3 node–reflector) → the core's FIB drops the rack, or the ToR's drops the node")
	tb.version(vipdVersion(t))
	for _, kind := range []testnet.RouterKind{testnet.BIRD, testnet.FRR} {
		tb.version(routerVersion(kind))
		t.Run(string(kind), func(t *testing.T) { tb.Rows = append(tb.Rows, benchFabricNodeLoss(t, kind)...) })
	}
	tb.report(t)
}

func benchFabricNodeLoss(t *testing.T, kind testnet.RouterKind) []benchRow {
	f := multiRack(kind)
	f.NodeBFD = &testnet.BFDSpec{MinTx: 300 * time.Millisecond, MinRx: 300 * time.Millisecond, Multiplier: bfdMultiplier}
	w, layout := fabricWorld(t, f)
	for _, n := range w.Nodes() {
		ln, _ := layout.Node(n.Name())
		startBenchVipd(t, n, fabricConfig(ln, "  - name: web\n    vips: [192.168.0.16]\n"))
	}
	core, tor1, tor2 := w.Router("core"), w.Router("tor1"), w.Router("tor2")
	n1, n3 := w.Node("n1"), w.Node("n3")
	cases := []struct {
		node    *testnet.Node
		rr      *testnet.Router
		watch   *testnet.Router
		hop     netip.Addr
		setup   string
		samples []time.Duration
	}{
		{node: n3, rr: w.Router("rr2"), watch: core, hop: tor2.Addr4(), setup: "vipd, rack 2's only node cut → core drops tor2"},
		{node: n1, rr: w.Router("rr1"), watch: tor1, hop: n1.Addr4(), setup: "vipd, n1 cut → tor1 drops n1"},
	}
	for range benchTrials {
		for i := range cases {
			c := &cases[i]
			waitFIB(t, core, vip4, tor1.Addr4(), tor2.Addr4())
			waitFIB(t, tor1, vip4, addrs4(w.Nodes()[:2])...)
			if _, err := c.rr.WaitBFD(t.Context(), c.node.Addr4(), false, testnet.BFDUp, convergeTimeout); err != nil {
				t.Fatal(err)
			}
			cut := dropAll(t, c.node)
			c.samples = append(c.samples, pollFIBGone(t, c.watch, c.hop, cut))
			if out, err := c.node.Exec(t.Context(), "nft", "delete", "table", "inet", "vtcut"); err != nil {
				t.Fatalf("heal %s: %v\n%s", c.node.Name(), err, out)
			}
		}
	}
	var rows []benchRow
	for _, c := range cases {
		rows = append(rows, benchRow{Setup: fmt.Sprintf("%s, BFD 300ms × %d", c.setup, bfdMultiplier), Router: string(kind),
			Metrics: []metric{timeMetric("time", c.samples)}})
	}
	return rows
}

package e2e

import (
	"fmt"
	"testing"

	"github.com/vipd/vipd/internal/api"
	"github.com/vipd/vipd/internal/testnet"
	"github.com/vipd/vipd/internal/testnet/worldtest"
)

// TestNRECStyle: NREC's whole parameter set. Two route servers in their
// own namespaces, MD5, multihop, a 4-byte ASN, IPv4 and IPv6 over IPv4
// sessions, multihop BFD at 300 ms × 3 (BIRD with `bfd graceful`, as NREC
// runs it); every router installs a 3-way ECMP route for each VIP.
func TestNRECStyle(t *testing.T) {
	for _, kind := range []testnet.RouterKind{testnet.BIRD, testnet.FRR} {
		t.Run(string(kind), func(t *testing.T) { testNREC(t, kind) })
	}
}

func testNREC(t *testing.T, kind testnet.RouterKind) {
	const password = "nrec-Secret.1"
	nodes := nodeSpecs(3)
	nbrs := neighbors(nodes, 4200000000, password)
	for i := range nbrs {
		nbrs[i].BFD = &testnet.BFDSpec{Multihop: true, Graceful: kind == testnet.BIRD}
	}
	w := worldtest.New(t, testnet.Spec{
		Routers: []testnet.RouterSpec{
			{Name: "r1", Kind: kind, ASN: 65535, Address: addr("10.255.255.1"), Neighbors: nbrs},
			{Name: "r2", Kind: kind, ASN: 65535, Address: addr("10.255.255.2"), Neighbors: nbrs},
		},
		Nodes: nodes,
	})
	// BIRD 2.0.12 sends multihop BFD with TTL 64 (README: BFD).
	bfdYAML := "      bfd: {enabled: true, min_tx: 300ms, min_rx: 300ms, multiplier: 3}\n"
	if kind == testnet.BIRD {
		bfdYAML = "      bfd: {enabled: true, min_tx: 300ms, min_rx: 300ms, multiplier: 3, min_ttl: 64}\n"
	}
	config := fmt.Sprintf(`bgp:
  asn: 4200000000
  allowed_prefixes: [192.168.0.16/31, "fda4:5ff2:8477:1755::/127"]
  peers:
%s
services:
  - name: web
    vips: [192.168.0.16, "fda4:5ff2:8477:1755::"]
`, peersYAMLWith(bfdYAML,
		peer{"nrec_peer1", addr("10.255.255.1"), 65535, password},
		peer{"nrec_peer2", addr("10.255.255.2"), 65535, password},
	))
	for _, n := range w.Nodes() {
		startVipd(t, n, config)
	}
	for _, r := range w.Routers() {
		waitFIB(t, r, vip4, addrs4(w.Nodes())...)
		waitFIB(t, r, vip6, addrs6(w.Nodes())...)
	}
	// Status reads each peer's Adj-RIB-Out in the background: it may lag.
	waitStatus(t, w.Node("n1"), "both VIPs bound and held by both peers", func(st api.Status) bool {
		for _, v := range st.VIPs {
			if !v.Announced || len(v.Peers) != 2 || !v.Bound {
				return false
			}
		}
		return len(st.VIPs) == 2
	})
	for _, r := range w.Routers() {
		for _, n := range w.Nodes() {
			if _, err := r.WaitBFD(t.Context(), n.Addr4(), true, testnet.BFDUp, convergeTimeout); err != nil {
				t.Errorf("router %s BFD with %s: %v", r.Name(), n.Name(), err)
			}
		}
	}
	waitStatus(t, w.Node("n1"), "both BFD sessions Up", func(st api.Status) bool {
		return len(st.BFD) == 2 && st.BFD[0].State == "Up" && st.BFD[1].State == "Up"
	})
}

// TestSafespringStyle: one router peering from 169.254.169.254 (on its lo,
// reached through the LAN), AS 64700, nodes in AS 64532, multihop.
func TestSafespringStyle(t *testing.T) {
	nodes := nodeSpecs(2)
	w := worldtest.New(t, testnet.Spec{
		Routers: []testnet.RouterSpec{{
			Name: "r1", Kind: testnet.BIRD, ASN: 64700, Address: addr("10.255.255.1"),
			PeerAddress: addr("169.254.169.254"), Neighbors: neighbors(nodes, 64532, ""),
		}},
		Nodes: nodes,
	})
	config := fmt.Sprintf(`bgp:
  asn: 64532
  allowed_prefixes: [203.0.113.0/24]
  communities: ["64532:100"]
  peers:
%s
services:
  - name: api
    vips: [203.0.113.7]
`, peersYAML(peer{"safespring", addr("169.254.169.254"), 64700, ""}))
	for _, n := range w.Nodes() {
		startVipd(t, n, config)
	}
	r := w.Router("r1")
	prefix := mustPrefix("203.0.113.7/32")
	waitFIB(t, r, prefix, addrs4(w.Nodes())...)
	routes, err := r.BGPRoutes(t.Context(), prefix)
	if err != nil {
		t.Fatal(err)
	}
	for _, rt := range routes {
		if len(rt.Communities) != 1 || rt.Communities[0] != "64532:100" {
			t.Errorf("route from %s: communities %v, want [64532:100]", rt.FromPeer, rt.Communities)
		}
	}
}

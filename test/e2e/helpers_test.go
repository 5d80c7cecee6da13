package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/vipd/vipd/internal/api"
	"github.com/vipd/vipd/internal/testnet"
	"github.com/vipd/vipd/internal/testnet/worldtest"
)

// Generous bounds: the machine is shared and noisy.
const (
	convergeTimeout = 60 * time.Second
	stopTimeout     = 20 * time.Second
)

var (
	vip4 = netip.MustParsePrefix("192.168.0.16/32")
	vip6 = netip.MustParsePrefix("fda4:5ff2:8477:1755::/128")
)

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

// peer is one router as a node's vipd config names it.
type peer struct {
	name     string
	address  netip.Addr
	asn      uint32
	password string
}

// peersYAML renders the bgp.peers list, multihop, for a node's config.
func peersYAML(peers ...peer) string { return peersYAMLWith("", peers...) }

// peersYAMLWith is peersYAML with extra lines (indented for a peer's keys)
// added to every peer.
func peersYAMLWith(extra string, peers ...peer) string {
	var b strings.Builder
	for _, p := range peers {
		fmt.Fprintf(&b, "    - name: %s\n      address: %s\n      asn: %d\n      multihop: true\n      hold_time: 9s\n",
			p.name, p.address, p.asn)
		if p.password != "" {
			fmt.Fprintf(&b, "      password: %q\n", p.password)
		}
		b.WriteString(extra)
	}
	return b.String()
}

// webConfig is a node's config that announces service web's VIP
// 192.168.0.16 to peers (bgp.peers items, as peersYAML renders them); rest
// follows web's vips line: more of web's keys, more services, other
// top-level keys.
func webConfig(peers, rest string) string {
	return "bgp:\n  asn: 4200000000\n  allowed_prefixes: [192.168.0.16/31]\n  peers:\n" + peers +
		"services:\n  - name: web\n    vips: [192.168.0.16]\n" + rest
}

// r1Peer is router r as a node's one peer, r1.
func r1Peer(r *testnet.Router) string { return peersYAML(peer{"r1", r.Addr4(), 65535, ""}) }

// startVipd starts vipd on node with config (the node's runtime keys are
// appended) and stops it at the end of the test.
func startVipd(t *testing.T, node *testnet.Node, config string) *testnet.Process {
	t.Helper()
	return startVipdConfig(t, node, config+node.RuntimeYAML())
}

// startVipdConfig is startVipd for a complete config.
func startVipdConfig(t *testing.T, node *testnet.Node, config string) *testnet.Process {
	t.Helper()
	return startBinary(t, node, vipdBin, config)
}

// startBinary starts the vipd binary with a complete config and stops it
// at the end of the test.
func startBinary(t *testing.T, node *testnet.Node, binary, config string) *testnet.Process {
	t.Helper()
	p, err := node.StartVipd(context.Background(), binary, config)
	if err != nil {
		t.Fatal(err)
	}
	stopAtEnd(t, p)
	return p
}

// stopAtEnd stops p when t ends, and shows its log if t failed.
func stopAtEnd(t *testing.T, p *testnet.Process) {
	t.Cleanup(func() {
		if err := p.Stop(stopTimeout); err != nil {
			t.Errorf("stop %s: %v", p.Name(), err)
		}
		if t.Failed() {
			t.Logf("%s log:\n%s", p.Name(), p.Log())
		}
	})
}

// waitFIB waits until router r's kernel FIB routes prefix via exactly want.
func waitFIB(t *testing.T, r *testnet.Router, prefix netip.Prefix, want ...netip.Addr) {
	t.Helper()
	if err := r.WaitFIB(context.Background(), prefix, want, convergeTimeout); err != nil {
		t.Fatalf("router %s FIB %s: want nexthops %v: %v", r.Name(), prefix, want, err)
	}
}

// waitRoutes waits until every router of w routes each address via
// exactly the nodes named, by their address of its family (none: no
// route).
func waitRoutes(t *testing.T, w *testnet.World, addrs []netip.Addr, nodes ...string) {
	t.Helper()
	for _, a := range addrs {
		var want []netip.Addr
		for _, n := range nodes {
			if a.Is4() {
				want = append(want, w.Node(n).Addr4())
			} else {
				want = append(want, w.Node(n).Addr6())
			}
		}
		for _, r := range w.Routers() {
			waitFIB(t, r, netip.PrefixFrom(a, a.BitLen()), want...)
		}
	}
}

// holdRoutes checks for d, twice a second, that every router of w keeps
// routing each address via n nexthops.
func holdRoutes(t *testing.T, w *testnet.World, addrs []netip.Addr, n int, d time.Duration) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(500 * time.Millisecond) {
		for _, a := range addrs {
			for _, r := range w.Routers() {
				got, err := r.FIB(t.Context(), netip.PrefixFrom(a, a.BitLen()))
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != n {
					t.Fatalf("router %s routes %s via %v; want %d nexthops throughout", r.Name(), a, got, n)
				}
			}
		}
	}
}

// status asks a node's daemon for its status through the real CLI.
func status(t *testing.T, node *testnet.Node) api.Status {
	t.Helper()
	st, err := queryStatus(node)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func queryStatus(node *testnet.Node) (api.Status, error) {
	var st api.Status
	out, err := exec.Command(vipdBin, "status", "--json", "--socket", node.Socket()).Output()
	if err != nil {
		return st, fmt.Errorf("vipd status on %s: %w", node.Name(), err)
	}
	if err := json.Unmarshal(out, &st); err != nil {
		return st, fmt.Errorf("vipd status --json on %s: %w\n%s", node.Name(), err, out)
	}
	return st, nil
}

// waitStatus polls a node's status until ok accepts it; the daemon may not
// be answering yet at first.
func waitStatus(t *testing.T, node *testnet.Node, what string, ok func(api.Status) bool) api.Status {
	t.Helper()
	return waitStatusWithin(t, node, convergeTimeout, what, ok)
}

// waitStatusWithin is waitStatus with its own bound.
func waitStatusWithin(t *testing.T, node *testnet.Node, bound time.Duration, what string, ok func(api.Status) bool) api.Status {
	t.Helper()
	var last api.Status
	err := testnet.WaitFor(context.Background(), bound, func(context.Context) error {
		st, err := queryStatus(node)
		if err != nil {
			return err
		}
		if last = st; !ok(st) {
			return fmt.Errorf("not yet: %s", what)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%s: %v\nlast status: %+v", node.Name(), err, last)
	}
	return last
}

func addrs4(nodes []*testnet.Node) []netip.Addr {
	var out []netip.Addr
	for _, n := range nodes {
		out = append(out, n.Addr4())
	}
	return out
}

func addrs6(nodes []*testnet.Node) []netip.Addr {
	var out []netip.Addr
	for _, n := range nodes {
		out = append(out, n.Addr6())
	}
	return out
}

// neighbors makes each node a neighbour of a router.
func neighbors(nodes []testnet.NodeSpec, asn uint32, password string) []testnet.Neighbor {
	var out []testnet.Neighbor
	for _, n := range nodes {
		out = append(out, testnet.Neighbor{Address: n.Address, ASN: asn, Password: password, Multihop: true})
	}
	return out
}

// birdWorld builds the common world: BIRD router r1 (AS 65535, at
// 10.255.255.1) peering, multihop, with nodes n1…nN in AS 4200000000.
func birdWorld(t *testing.T, nodes int, password string) *testnet.World {
	t.Helper()
	specs := nodeSpecs(nodes)
	return worldtest.New(t, testnet.Spec{
		Routers: []testnet.RouterSpec{{Name: "r1", Kind: testnet.BIRD, ASN: 65535, Address: addr("10.255.255.1"),
			Neighbors: neighbors(specs, 4200000000, password)}},
		Nodes: specs,
	})
}

func nodeSpecs(n int) []testnet.NodeSpec {
	var out []testnet.NodeSpec
	for i := range n {
		out = append(out, testnet.NodeSpec{Name: fmt.Sprintf("n%d", i+1), Address: netip.AddrFrom4([4]byte{10, 255, 255, byte(11 + i)})})
	}
	return out
}

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

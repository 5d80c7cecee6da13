package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vipd/vipd/internal/api"
	"github.com/vipd/vipd/internal/testnet"
	"github.com/vipd/vipd/internal/testnet/etcd"
	"github.com/vipd/vipd/internal/testnet/worldtest"
)

// clusterPool has room for the racing creates and a few more.
var clusterPool = mustPrefix("198.51.100.0/25")

// clusterWorld is three vipd nodes in cluster mode on a three-member etcd
// cluster, a BIRD and an FRR router, three backends and a client.
type clusterWorld struct {
	*testnet.World
	etcd *etcd.Cluster
	conf map[string]string // each node's config, to start it again
	vipd map[string]*testnet.Process
}

func newClusterWorld(t *testing.T) *clusterWorld {
	t.Helper()
	nodes := nodeSpecs(3)
	nbrs := neighbors(nodes, 4200000000, "")
	spec, err := etcd.AddMembers(testnet.Spec{
		Routers: []testnet.RouterSpec{
			{Name: "r1", Kind: testnet.BIRD, ASN: 65535, Address: addr("10.255.255.1"), Neighbors: nbrs},
			{Name: "r2", Kind: testnet.FRR, ASN: 65535, Address: addr("10.255.255.2"), Neighbors: nbrs},
		},
		Nodes:  nodes,
		Client: &testnet.NodeSpec{Name: "c1", Address: addr("10.255.255.50")},
		Hosts: []testnet.NodeSpec{
			{Name: "b1", Address: addr("10.255.255.21")},
			{Name: "b2", Address: addr("10.255.255.22")},
			{Name: "b3", Address: addr("10.255.255.23")},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	w := worldtest.New(t, spec)
	cw := &clusterWorld{World: w, etcd: worldtest.Etcd(t, w), conf: map[string]string{}, vipd: map[string]*testnet.Process{}}
	for i, n := range w.Nodes() {
		cw.conf[n.Name()] = clusterConfig(n, fmt.Sprintf("r%d", i%2), cw.etcd.Endpoints(),
			peer{"r1", addr("10.255.255.1"), 65535, ""}, peer{"r2", addr("10.255.255.2"), 65535, ""}) + n.RuntimeYAML()
		cw.start(t, n.Name())
	}
	for _, n := range w.Nodes() {
		waitStatus(t, n, "in contact with etcd", func(st api.Status) bool {
			return st.Cluster != nil && st.Cluster.Connected && st.Cluster.Synced
		})
	}
	return cw
}

// clusterConfig is node's config in cluster mode on the etcd endpoints,
// with label rack=rack, peering with peers; without its runtime keys.
func clusterConfig(n *testnet.Node, rack string, endpoints []string, peers ...peer) string {
	return fmt.Sprintf(`bgp:
  asn: 4200000000
  allowed_prefixes: [198.51.100.0/24]
  peers:
%spools:
  - {name: default, prefixes: [%s]}
cluster:
  node_name: %s
  labels: {rack: %s}
  member_ttl: 3s
  etcd:
    endpoints: [%s]
`, peersYAML(peers...), clusterPool, n.Name(), rack, strings.Join(endpoints, ", "))
}

// birdClusterWorld is BIRD router r1 and nodes n1…nN beside a
// three-member etcd cluster on the LAN.
func birdClusterWorld(t *testing.T, nodes int) (*testnet.World, *etcd.Cluster) {
	t.Helper()
	specs := nodeSpecs(nodes)
	spec, err := etcd.AddMembers(testnet.Spec{
		Routers: []testnet.RouterSpec{{Name: "r1", Kind: testnet.BIRD, ASN: 65535, Address: addr("10.255.255.1"),
			Neighbors: neighbors(specs, 4200000000, "")}},
		Nodes: specs,
	})
	if err != nil {
		t.Fatal(err)
	}
	w := worldtest.New(t, spec)
	return w, worldtest.Etcd(t, w)
}

func (cw *clusterWorld) start(t *testing.T, node string) {
	t.Helper()
	cw.vipd[node] = startVipdConfig(t, cw.Node(node), cw.conf[node])
}

// waitRoutes waits until both routers route a via exactly the nodes named
// (none: no route).
func (cw *clusterWorld) waitRoutes(t *testing.T, a netip.Addr, nodes ...string) {
	t.Helper()
	waitRoutes(t, cw.World, []netip.Addr{a}, nodes...)
}

// holdRoutes checks for d that both routers keep routing a via every node.
func (cw *clusterWorld) holdRoutes(t *testing.T, a netip.Addr, d time.Duration) {
	t.Helper()
	holdRoutes(t, cw.World, []netip.Addr{a}, len(cw.Nodes()), d)
}

// echoBackends serve HTTP on :8080 of each backend host, answering with
// the backend's name and the address the request came from: in nat mode,
// the node that forwarded it.
func echoBackends(t *testing.T, hosts ...*testnet.Host) {
	t.Helper()
	for _, h := range hosts {
		ln, err := h.Listen("tcp", ":8080")
		if err != nil {
			t.Fatal(err)
		}
		name := h.Name()
		srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			from, _, _ := net.SplitHostPort(r.RemoteAddr)
			fmt.Fprintf(w, "%s from %s\n", name, from)
		})}
		go func() { _ = srv.Serve(ln) }()
		t.Cleanup(func() { srv.Close() })
	}
}

// TestCluster is issue 14 end to end: load balancers created through any
// node's API live in a real three-member etcd cluster, and every node
// serves them, asserted at a real BIRD and a real FRR router and with
// traffic from a client.
func TestCluster(t *testing.T) {
	cw := newClusterWorld(t)
	n1, n2, n3 := cw.Node("n1"), cw.Node("n2"), cw.Node("n3")
	all := []string{"n1", "n2", "n3"}
	echoBackends(t, cw.Host("b1"), cw.Host("b2"), cw.Host("b3"))
	ctx := t.Context()
	var web api.LoadBalancer

	t.Run("CreateOnOneNodeServedByAll", func(t *testing.T) {
		l, created, err := lbClient(n1).CreateLoadBalancer(ctx, api.LoadBalancerRequest{Name: "web", Port: 80})
		if err != nil || !created {
			t.Fatalf("create on n1: created %v, %v", created, err)
		}
		for _, b := range []string{"b1", "b2", "b3"} {
			if l, err = lbClient(n2).AddBackend(ctx, l.UUID, api.BackendRequest{IP: cw.Host(b).Addr4().String(), Port: 8080}); err != nil {
				t.Fatalf("add backend %s on n2: %v", b, err)
			}
		}
		web = l
		eip := netip.MustParseAddr(l.EIP)
		cw.waitRoutes(t, eip, all...)
		// Every node forwards some of the flows, to every backend.
		target := netip.AddrPortFrom(eip, 80)
		seen := map[string]bool{}
		for i := range 90 {
			answer, err := get(ctx, cw.Client(), target, 0)
			if err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
			seen[answer] = true
			for _, part := range strings.Fields(answer) {
				seen[part] = true
			}
		}
		for _, want := range []string{"b1", "b2", "b3", n1.Addr4().String(), n2.Addr4().String(), n3.Addr4().String()} {
			if !seen[want] {
				t.Errorf("90 requests never reached %s: %v", want, seen)
			}
		}
		// Every node shows it, with each node's view of the backends.
		got, err := lbClient(n3).LoadBalancer(ctx, l.UUID)
		if err != nil {
			t.Fatal(err)
		}
		cw.waitPerNode(t, n3, l.UUID, all)
		if got.EIP != l.EIP || len(got.Backends) != 3 {
			t.Errorf("n3 shows %s with %d backends, want %s with 3", got.EIP, len(got.Backends), l.EIP)
		}
		cs, err := lbClient(n2).Cluster(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(cs.Nodes) != 3 {
			t.Errorf("GET /cluster on n2: %d nodes, want 3: %+v", len(cs.Nodes), cs.Nodes)
		}
	})

	t.Run("RacingCreates", func(t *testing.T) {
		const total = 100
		var wg sync.WaitGroup
		var mu sync.Mutex
		byAddr := map[string]string{}
		conflicts := 0
		for i := range total {
			node := cw.Nodes()[i%3]
			wg.Go(func() {
				name := fmt.Sprintf("race-%03d", i)
				l, created, err := lbClient(node).CreateLoadBalancer(ctx, api.LoadBalancerRequest{Name: name, Port: 80})
				mu.Lock()
				defer mu.Unlock()
				var he *api.HTTPError
				switch {
				case errors.As(err, &he) && he.Status == http.StatusConflict:
					conflicts++
				case err != nil:
					t.Errorf("create %s on %s: %v", name, node.Name(), err)
				case !created:
					t.Errorf("create %s on %s: not created", name, node.Name())
				case byAddr[l.EIP] != "":
					t.Errorf("%s handed to %s and %s", l.EIP, byAddr[l.EIP], name)
				default:
					byAddr[l.EIP] = name
				}
			})
		}
		wg.Wait()
		t.Logf("%d created with distinct addresses, %d refused with 409", len(byAddr), conflicts)
		if len(byAddr)+conflicts != total {
			t.Fatalf("%d created + %d conflicts, want %d", len(byAddr), conflicts, total)
		}
		for _, n := range cw.Nodes() {
			list, err := lbClient(n).LoadBalancers(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(list) != len(byAddr)+1 {
				t.Errorf("%s lists %d load balancers, want %d", n.Name(), len(list), len(byAddr)+1)
			}
		}
	})

	t.Run("DeleteOnAnotherNode", func(t *testing.T) {
		l, _, err := lbClient(n1).CreateLoadBalancer(ctx, api.LoadBalancerRequest{Name: "doomed", Port: 80, OnEmpty: "announce"})
		if err != nil {
			t.Fatal(err)
		}
		eip := netip.MustParseAddr(l.EIP)
		cw.waitRoutes(t, eip, all...)
		if err := lbClient(n3).DeleteLoadBalancer(ctx, l.UUID); err != nil {
			t.Fatal(err)
		}
		cw.waitRoutes(t, eip)
		for _, n := range cw.Nodes() {
			if err := testnet.WaitFor(ctx, convergeTimeout, func(context.Context) error {
				if bound(t, n, eip) {
					return fmt.Errorf("%s still holds %s", n.Name(), eip)
				}
				out, err := n.Exec(ctx, "nft", "list", "table", "inet", "vipd")
				if err == nil && strings.Contains(out, l.EIP+" ") {
					return fmt.Errorf("%s's rules still name %s", n.Name(), eip)
				}
				return nil
			}); err != nil {
				t.Error(err)
			}
		}
	})

	t.Run("AddressReusedAtOnce", func(t *testing.T) {
		// Deleted on one node and created again on another with the same
		// address before the first node's removal delay is over.
		l, _, err := lbClient(n1).CreateLoadBalancer(ctx, api.LoadBalancerRequest{Name: "reuse-a", Port: 80, OnEmpty: "announce"})
		if err != nil {
			t.Fatal(err)
		}
		eip := netip.MustParseAddr(l.EIP)
		cw.waitRoutes(t, eip, all...)
		deleted := make(chan error, 1)
		go func() { deleted <- lbClient(n2).DeleteLoadBalancer(ctx, l.UUID) }()
		var again api.LoadBalancer
		if err := poll(ctx, convergeTimeout, 5*time.Millisecond, func(ctx context.Context) error {
			again, _, err = lbClient(n3).CreateLoadBalancer(ctx, api.LoadBalancerRequest{Name: "reuse-b", Port: 80, Address: l.EIP, OnEmpty: "announce"})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if err := <-deleted; err != nil {
			t.Fatal(err)
		}
		cw.waitRoutes(t, eip, all...)
		for _, n := range cw.Nodes() {
			waitStatus(t, n, "reuse-b announced", func(st api.Status) bool {
				return slices.ContainsFunc(st.VIPs, func(v api.VIPStatus) bool { return v.Service == "lb/reuse-b" && v.Announced })
			})
		}
		if err := lbClient(n1).DeleteLoadBalancer(ctx, again.UUID); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("NodesSelector", func(t *testing.T) {
		l, _, err := lbClient(n2).CreateLoadBalancer(ctx, api.LoadBalancerRequest{Name: "rack0", Port: 80, OnEmpty: "announce", Nodes: []string{"rack=r0"}})
		if err != nil {
			t.Fatal(err)
		}
		// n1 and n3 have label rack=r0.
		cw.waitRoutes(t, netip.MustParseAddr(l.EIP), "n1", "n3")
		got, err := lbClient(n2).LoadBalancer(ctx, l.UUID)
		if err != nil || got.Announced || got.Reason != "node_not_selected" {
			t.Errorf("on n2: announced %v, reason %q, %v; want node_not_selected", got.Announced, got.Reason, err)
		}
	})

	webIP := netip.MustParseAddr(web.EIP)

	t.Run("EtcdMemberKilled", func(t *testing.T) {
		if err := cw.etcd.Kill(0); err != nil {
			t.Fatal(err)
		}
		if _, _, err := lbClient(n2).CreateLoadBalancer(ctx, api.LoadBalancerRequest{Name: "after-kill", Port: 80}); err != nil {
			t.Errorf("create with one etcd member of three down: %v", err)
		}
		cw.holdRoutes(t, webIP, 3*time.Second)
		for _, n := range cw.Nodes() {
			if st := status(t, n); !st.Cluster.Connected {
				t.Errorf("%s lost contact with one member of three down: %+v", n.Name(), st.Cluster)
			}
		}
		if err := cw.etcd.Restart(ctx, 0); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("PartitionedNode", func(t *testing.T) {
		r1 := cw.Router("r1")
		before := birdImports(t, r1, n2)
		heal, err := cw.etcd.Partition(ctx, &n2.Host)
		if err != nil {
			t.Fatal(err)
		}
		waitStatus(t, n2, "out of contact", func(st api.Status) bool { return !st.Cluster.Connected })
		_, _, err = lbClient(n2).CreateLoadBalancer(ctx, api.LoadBalancerRequest{Name: "cut-off", Port: 80})
		var he *api.HTTPError
		if !errors.As(err, &he) || he.Status != http.StatusServiceUnavailable || !strings.Contains(he.Message, "etcd") {
			t.Errorf("create on the cut-off node: %v, want 503 naming etcd", err)
		}
		// Longer than member_ttl: the node's membership lapses, its
		// routes stay.
		cw.holdRoutes(t, webIP, 5*time.Second)
		l, _, err := lbClient(n1).CreateLoadBalancer(ctx, api.LoadBalancerRequest{Name: "meanwhile", Port: 80, OnEmpty: "announce"})
		if err != nil {
			t.Fatal(err)
		}
		cw.waitRoutes(t, netip.MustParseAddr(l.EIP), "n1", "n3")
		if err := heal(ctx); err != nil {
			t.Fatal(err)
		}
		cw.waitRoutes(t, netip.MustParseAddr(l.EIP), all...)
		waitStatus(t, n2, "back in contact", func(st api.Status) bool { return st.Cluster.Connected })
		cw.waitPerNode(t, n1, web.UUID, all)
		if after := birdImports(t, r1, n2); after.withdraws != before.withdraws {
			t.Errorf("r1 got withdrawals from n2 across the partition: %s before, %s after", before, after)
		}
	})

	t.Run("KilledDuringBurst", func(t *testing.T) {
		// Four clients create on n3 one after another until n3 dies
		// under them, killed once a few creates were acknowledged.
		var mu sync.Mutex
		var acked []string
		ackedSome := make(chan struct{})
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Go(func() {
				for i := range 50 {
					name := fmt.Sprintf("burst-%d-%02d", w, i)
					l, created, err := lbClient(n3).CreateLoadBalancer(ctx, api.LoadBalancerRequest{Name: name, Port: 80})
					if err != nil {
						return // n3 is gone
					}
					mu.Lock()
					if created {
						acked = append(acked, l.UUID)
					}
					if len(acked) == 8 {
						close(ackedSome)
					}
					mu.Unlock()
				}
			})
		}
		select {
		case <-ackedSome:
		case <-time.After(convergeTimeout):
			t.Fatal("no 8 creates acknowledged")
		}
		if err := cw.vipd["n3"].Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cw.vipd["n3"].Wait(stopTimeout)
		wg.Wait()
		t.Logf("%d creates acknowledged before the kill", len(acked))
		cw.start(t, "n3")
		waitStatus(t, n3, "back in contact", func(st api.Status) bool { return st.Cluster != nil && st.Cluster.Connected && st.Cluster.Synced })
		uuids := func(n *testnet.Node) []string {
			list, err := lbClient(n).LoadBalancers(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, l := range list {
				out = append(out, l.UUID)
			}
			slices.Sort(out)
			return out
		}
		want := uuids(n1)
		if got := uuids(n3); !slices.Equal(want, got) {
			t.Errorf("after its restart n3 lists %d load balancers, n1 %d", len(got), len(want))
		}
		for _, id := range acked {
			if !slices.Contains(want, id) {
				t.Errorf("acknowledged create %s is lost", id)
				continue
			}
			l, err := lbClient(n3).LoadBalancer(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if !bound(t, n3, netip.MustParseAddr(l.EIP)) {
				t.Errorf("after its restart n3 does not hold %s (%s)", l.EIP, l.Name)
			}
		}
		cw.waitRoutes(t, webIP, all...)
	})
}

// waitPerNode waits until node's view of load balancer id has a report
// from each of nodes, with every backend's state.
func (cw *clusterWorld) waitPerNode(t *testing.T, node *testnet.Node, id string, nodes []string) {
	t.Helper()
	var last api.LoadBalancer
	err := testnet.WaitFor(t.Context(), convergeTimeout, func(ctx context.Context) error {
		l, err := lbClient(node).LoadBalancer(ctx, id)
		if err != nil {
			return err
		}
		last = l
		var have []string
		for _, n := range l.PerNode {
			if len(n.Backends) == len(l.Backends) && n.Announced {
				have = append(have, n.Node)
			}
		}
		if !slices.Equal(have, nodes) {
			return fmt.Errorf("per-node views from %v, want %v", have, nodes)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%s: %v\nlast: %+v", node.Name(), err, last.PerNode)
	}
}

// TestClusterImport moves a single node's load balancers into a new
// cluster with `vipd cluster import`: they keep their UUIDs, addresses and
// backends, and the node serves them from etcd once restarted with the
// cluster section.
func TestClusterImport(t *testing.T) {
	w, ec := birdClusterWorld(t, 1)
	n1, r1 := w.Node("n1"), w.Router("r1")
	ctx := t.Context()
	withCluster := clusterConfig(n1, "r0", ec.Endpoints(), peer{"r1", addr("10.255.255.1"), 65535, ""}) + n1.RuntimeYAML()
	single := withCluster[:strings.Index(withCluster, "cluster:")] + n1.RuntimeYAML()

	p := startVipdConfig(t, n1, single)
	waitStatus(t, n1, "daemon up", func(api.Status) bool { return true })
	l, _, err := lbClient(n1).CreateLoadBalancer(ctx, api.LoadBalancerRequest{Name: "moved", Port: 443, OnEmpty: "announce"})
	if err != nil {
		t.Fatal(err)
	}
	if l, err = lbClient(n1).AddBackend(ctx, l.UUID, api.BackendRequest{IP: "10.255.255.99", Port: 8443}); err != nil {
		t.Fatal(err)
	}
	if err := lbClient(n1).Drain(ctx, "lb/moved", true); err != nil {
		t.Fatal(err)
	}
	if err := p.Stop(stopTimeout); err != nil {
		t.Fatal(err)
	}

	conf := filepath.Join(n1.Dir(), "cluster.yaml")
	if err := os.WriteFile(conf, []byte(withCluster), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := n1.Exec(ctx, vipdBin, "cluster", "import", "-c", conf)
	if err != nil || !strings.Contains(out, "imported 1 load balancers") {
		t.Fatalf("vipd cluster import: %v\n%s", err, out)
	}
	if out, err := n1.Exec(ctx, vipdBin, "cluster", "import", "-c", conf); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("a second import: %v, want refused as not empty\n%s", err, out)
	}

	startVipdConfig(t, n1, withCluster)
	waitStatus(t, n1, "in contact with etcd", func(st api.Status) bool { return st.Cluster != nil && st.Cluster.Synced })
	got, err := lbClient(n1).LoadBalancer(ctx, l.UUID)
	if err != nil {
		t.Fatalf("the imported load balancer under its UUID: %v", err)
	}
	if got.EIP != l.EIP || got.Port != 443 || len(got.Backends) != 1 || got.Backends[0].UUID != l.Backends[0].UUID {
		t.Errorf("imported %+v, want %+v", got, l)
	}
	eip := netip.PrefixFrom(netip.MustParseAddr(l.EIP), 32)
	// Drained in the state file, drained in the cluster: not announced
	// until undrained.
	if got.Announced || got.Reason != "drained" {
		t.Errorf("imported drained load balancer: announced %v (%s), want drained", got.Announced, got.Reason)
	}
	if err := lbClient(n1).Drain(ctx, "lb/moved", false); err != nil {
		t.Fatal(err)
	}
	waitFIB(t, r1, eip, n1.Addr4())
}

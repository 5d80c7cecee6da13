// An external test: it runs real etcd members in a testnet world, which
// imports what this package's users import.
package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vipd/vipd/internal/cluster"
	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/internal/lb"
	"github.com/vipd/vipd/internal/store"
	"github.com/vipd/vipd/internal/testnet"
	"github.com/vipd/vipd/internal/testnet/etcd"
	"github.com/vipd/vipd/internal/testnet/worldtest"
)

// settle bounds waiting for a change to reach another node's cache, or
// for contact to be lost or regained, on a busy machine.
const settle = 30 * time.Second

var pool = config.Pool{Name: "default", Prefixes: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}}

// node is one Store running as if on a node of the world.
type node struct {
	*cluster.Store
	host    *testnet.Host
	changes chan struct{}
	stop    func()
}

// start runs a store for node name, dialling etcd from host's namespace.
func start(t *testing.T, c *etcd.Cluster, host *testnet.Host, name string, labels map[string]string) *node {
	t.Helper()
	return startWith(t, c, host, name, "/vipd-test", labels, nil, true)
}

// startPrefix is start with a key prefix of its own.
func startPrefix(t *testing.T, c *etcd.Cluster, host *testnet.Host, name, prefix string) *node {
	t.Helper()
	return startWith(t, c, host, name, prefix, nil, nil, true)
}

// startWith runs a store; with contact it waits until it is in contact
// and synced.
func startWith(t *testing.T, c *etcd.Cluster, host *testnet.Host, name, prefix string, labels map[string]string, cache cluster.Cache, contact bool) *node {
	t.Helper()
	n := &node{host: host, changes: make(chan struct{}, 1)}
	s, err := cluster.New(cluster.Options{
		Config: config.Cluster{NodeName: name, Labels: labels, MemberTTL: 3 * time.Second,
			Etcd: config.Etcd{Endpoints: c.Endpoints(), Prefix: prefix}},
		Node: name, Version: "test", Pools: []config.Pool{pool},
		Log: slog.New(slog.DiscardHandler),
		OnChange: func() {
			select {
			case n.changes <- struct{}{}:
			default:
			}
		},
		Dial:  func(ctx context.Context, addr string) (net.Conn, error) { return host.DialContext(ctx, "tcp", addr) },
		Cache: cache,
	})
	if err != nil {
		t.Fatal(err)
	}
	n.Store = s
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(ctx) }()
	n.stop = sync.OnceFunc(func() { cancel(); <-done })
	t.Cleanup(n.stop)
	if contact {
		waitFor(t, name+" in contact", func() bool { st := s.Status(); return st.Connected && st.Synced })
	}
	return n
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	err := testnet.WaitFor(context.Background(), settle, func(context.Context) error {
		if !cond() {
			return errors.New("not yet")
		}
		return nil
	})
	if err != nil {
		t.Fatalf("waited %s for %s", settle, what)
	}
}

// TestStore runs three stores against a real three-member etcd cluster
// and checks what issue 14 asks of the store: a change on one node
// reaches the others, racing creates never share an address, a node cut
// off keeps what it knew and refuses writes, and membership follows the
// nodes.
func TestStore(t *testing.T) {
	spec, err := etcd.AddMembers(testnet.Spec{Hosts: []testnet.NodeSpec{
		{Name: "h1", Address: netip.MustParseAddr("10.255.255.21")},
		{Name: "h2", Address: netip.MustParseAddr("10.255.255.22")},
		{Name: "h3", Address: netip.MustParseAddr("10.255.255.23")},
	}})
	if err != nil {
		t.Fatal(err)
	}
	w := worldtest.New(t, spec)
	c := worldtest.Etcd(t, w)
	n1 := start(t, c, w.Host("h1"), "node1", map[string]string{"rack": "a"})
	n2 := start(t, c, w.Host("h2"), "node2", map[string]string{"rack": "b"})
	n3 := start(t, c, w.Host("h3"), "node3", nil)
	nodes := []*node{n1, n2, n3}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	t.Run("CreateReachesEveryNode", func(t *testing.T) {
		l, created, rev, err := n1.Create(ctx, lb.Spec{Name: "web", Port: 80})
		if err != nil || !created {
			t.Fatalf("create: created %v, %v", created, err)
		}
		if l.Address() != netip.MustParseAddr("198.51.100.0") {
			t.Errorf("address %s, want the pool's first, 198.51.100.0", l.Address())
		}
		for _, n := range nodes {
			if err := n.WaitRevision(ctx, rev); err != nil {
				t.Fatal(err)
			}
			got, err := n.Get(l.UUID)
			if err != nil || got.Address() != l.Address() {
				t.Errorf("%s: %v, %v", n.Node(), got.Address(), err)
			}
		}
		select {
		case <-n3.changes:
		default:
			t.Error("node3 was not told of the change")
		}
		again, created, _, err := n2.Create(ctx, lb.Spec{Name: "web", Port: 80})
		if err != nil || created || again.UUID != l.UUID {
			t.Errorf("repeated create on another node: %s created %v, %v; want %s unchanged", again.UUID, created, err, l.UUID)
		}
		if _, _, _, err := n3.Create(ctx, lb.Spec{Name: "web", Port: 81}); !errors.Is(err, lb.ErrConflict) {
			t.Errorf("create of a taken name with another spec: %v, want a conflict", err)
		}
	})

	t.Run("RacingCreates", func(t *testing.T) {
		const total = 60
		type result struct {
			l   lb.LoadBalancer
			err error
		}
		results := make(chan result, total)
		var wg sync.WaitGroup
		for i := range total {
			n := nodes[i%len(nodes)]
			wg.Go(func() {
				l, _, _, err := n.Create(ctx, lb.Spec{Name: fmt.Sprintf("race-%d", i), Port: 80})
				results <- result{l, err}
			})
		}
		// The same new name from every node at once: one wins.
		same := make(chan error, len(nodes))
		for i, n := range nodes {
			wg.Go(func() {
				_, _, _, err := n.Create(ctx, lb.Spec{Name: "contested", Port: uint16(1000 + i)})
				same <- err
			})
		}
		wg.Wait()
		close(results)
		close(same)
		byAddr := map[netip.Addr]string{}
		for r := range results {
			if r.err != nil {
				t.Errorf("create: %v", r.err)
				continue
			}
			if other, ok := byAddr[r.l.Address()]; ok {
				t.Errorf("%s handed to %s and %s", r.l.Address(), other, r.l.Spec.Name)
			}
			byAddr[r.l.Address()] = r.l.Spec.Name
		}
		won := 0
		for err := range same {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, lb.ErrConflict):
				t.Errorf("contested create: %v, want success or a conflict", err)
			}
		}
		if won != 1 {
			t.Errorf("%d creates of one name with different specs succeeded, want 1", won)
		}
		waitFor(t, "every node to hold every load balancer", func() bool {
			for _, n := range nodes {
				if len(n.LoadBalancers()) != total+2 {
					return false
				}
			}
			return true
		})
	})

	t.Run("SelectorAndDrain", func(t *testing.T) {
		l, _, rev, err := n1.Create(ctx, lb.Spec{Name: "rack-a", Port: 80, Nodes: []string{"rack=a", "node3"}})
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range nodes {
			if err := n.WaitRevision(ctx, rev); err != nil {
				t.Fatal(err)
			}
		}
		if !n1.Selects(l) || n2.Selects(l) || !n3.Selects(l) {
			t.Errorf("selector %v picks node1 %v, node2 %v, node3 %v; want true, false, true", l.Spec.Nodes, n1.Selects(l), n2.Selects(l), n3.Selects(l))
		}
		rev, err = n2.SetDrained(ctx, "rack-a", true)
		if err != nil {
			t.Fatal(err)
		}
		if err := n3.WaitRevision(ctx, rev); err != nil {
			t.Fatal(err)
		}
		if !n3.Drained()["rack-a"] {
			t.Error("a drain on node2 did not reach node3")
		}
		if _, err := n2.SetDrained(ctx, "no-such-lb", true); !errors.Is(err, lb.ErrNotFound) {
			t.Errorf("drain of an unknown load balancer: %v, want not found", err)
		}
		if _, rev, err = n3.Delete(ctx, l.UUID); err != nil {
			t.Fatal(err)
		}
		if err := n1.WaitRevision(ctx, rev); err != nil {
			t.Fatal(err)
		}
		if _, err := n1.Get(l.UUID); !errors.Is(err, lb.ErrNotFound) || n1.Drained()["rack-a"] {
			t.Errorf("after delete on node3, node1 has it: %v, drained %v", err, n1.Drained()["rack-a"])
		}
		// Its name and address are free again.
		again, created, _, err := n2.Create(ctx, lb.Spec{Name: "rack-a", Port: 80, Address: l.Address()})
		if err != nil || !created {
			t.Errorf("create with the deleted one's name and address: %v, %v", created, err)
		} else if _, _, err := n2.Delete(ctx, again.UUID); err != nil {
			t.Error(err)
		}
	})

	t.Run("Backends", func(t *testing.T) {
		web := findByName(t, n1, "web")
		var wg sync.WaitGroup
		errs := make(chan error, 9)
		for i := range 9 { // racing changes of one record from every node
			n := nodes[i%3]
			wg.Go(func() {
				_, _, err := n.AddBackend(ctx, web.UUID, lb.BackendSpec{IP: netip.MustParseAddr(fmt.Sprintf("10.0.0.%d", i+1)), Port: 8080})
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
		l, _, err := n2.AddBackend(ctx, web.UUID, lb.BackendSpec{IP: netip.MustParseAddr("10.0.0.99"), Port: 8080})
		if err != nil {
			t.Fatal(err)
		}
		if len(l.Backends) != 10 {
			t.Errorf("%d backends after 10 adds from three nodes, want 10 (none lost)", len(l.Backends))
		}
		l, rev, err := n3.RemoveBackend(ctx, web.UUID, l.Backends[0].UUID)
		if err != nil {
			t.Fatal(err)
		}
		if err := n1.WaitRevision(ctx, rev); err != nil {
			t.Fatal(err)
		}
		if got, _ := n1.Get(web.UUID); len(got.Backends) != 9 {
			t.Errorf("node1 sees %d backends, want 9", len(got.Backends))
		}
	})

	t.Run("Membership", func(t *testing.T) {
		n1.Report(cluster.Report{Health: "ok", LoadBalancers: map[string]cluster.LBReport{"u1": {Announced: true}}})
		waitFor(t, "node1's report at node2", func() bool {
			for _, m := range n2.Status().Members {
				if m.Name == "node1" && m.Health == "ok" && m.LoadBalancers["u1"].Announced && m.Labels["rack"] == "a" {
					return true
				}
			}
			return false
		})
		if got := len(n2.Status().Members); got != 3 {
			t.Errorf("%d members, want 3", got)
		}
	})

	t.Run("Partition", func(t *testing.T) {
		before := len(n2.LoadBalancers())
		heal, err := c.Partition(ctx, n2.host)
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, "node2 to notice", func() bool { return !n2.Status().Connected })
		start := time.Now()
		_, _, _, err = n2.Create(ctx, lb.Spec{Name: "cut-off", Port: 80})
		if !errors.Is(err, cluster.ErrUnavailable) {
			t.Errorf("create while cut off: %v, want ErrUnavailable", err)
		}
		if took := time.Since(start); took > time.Second {
			t.Errorf("the refusal took %s; a known loss of contact should refuse at once", took)
		}
		if got := len(n2.LoadBalancers()); got != before {
			t.Errorf("cut off, node2 holds %d load balancers, want the %d it knew", got, before)
		}
		// Meanwhile the others go on; node2 learns of it when healed.
		l, _, rev, err := n1.Create(ctx, lb.Spec{Name: "while-cut", Port: 80})
		if err != nil {
			t.Fatal(err)
		}
		if err := heal(ctx); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "node2 back in contact", func() bool { return n2.Status().Connected })
		wctx, wcancel := context.WithTimeout(ctx, settle)
		defer wcancel()
		if err := n2.WaitRevision(wctx, rev); err != nil {
			t.Fatal(err)
		}
		if _, err := n2.Get(l.UUID); err != nil {
			t.Errorf("after healing, node2 lacks what node1 created meanwhile: %v", err)
		}
	})

	t.Run("MemberKilled", func(t *testing.T) {
		if err := c.Kill(0); err != nil {
			t.Fatal(err)
		}
		for _, n := range nodes {
			if _, _, _, err := n.Create(ctx, lb.Spec{Name: "after-kill-" + n.Node(), Port: 80}); err != nil {
				t.Errorf("%s: create with one member of three down: %v", n.Node(), err)
			}
		}
	})

	t.Run("Import", func(t *testing.T) {
		other := startPrefix(t, c, w.Host("h1"), "importer", "/vipd-import")
		created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		lbs := []lb.LoadBalancer{
			{UUID: "11111111-1111-4111-8111-111111111111", Created: created,
				Spec: lb.Spec{Name: "kept", Port: 443, Address: netip.MustParseAddr("198.51.100.77"), Pool: "default"}.WithDefaults()},
			{UUID: "22222222-2222-4222-8222-222222222222", Created: created,
				Spec: lb.Spec{Name: "drained one", Port: 80, Address: netip.MustParseAddr("198.51.100.78"), Pool: "default"}.WithDefaults()},
		}
		n, err := other.Import(ctx, lbs, map[string]bool{"drained one": true})
		if err != nil || n != 2 {
			t.Fatalf("import: %d, %v", n, err)
		}
		waitFor(t, "the imported load balancers", func() bool { return len(other.LoadBalancers()) == 2 })
		got, err := other.Get(lbs[0].UUID)
		if err != nil || got.Address() != lbs[0].Address() || got.Spec.Port != 443 {
			t.Errorf("imported %s: %+v, %v; want its UUID, address and port kept", lbs[0].UUID, got, err)
		}
		if !other.Drained()["drained one"] {
			t.Error("the drain was not imported")
		}
		// The allocator sees the imported addresses as taken.
		l, _, _, err := other.Create(ctx, lb.Spec{Name: "new", Port: 80, Address: netip.MustParseAddr("198.51.100.77")})
		if !errors.Is(err, lb.ErrConflict) {
			t.Errorf("create on an imported address: %v, %v; want a conflict", l.Address(), err)
		}
		if _, err := other.Import(ctx, lbs[:1], nil); err == nil || !strings.Contains(err.Error(), "not empty") {
			t.Errorf("a second import into the same prefix: %v, want refused as not empty", err)
		}
	})

	t.Run("RestartWhileCutOff", func(t *testing.T) {
		db, err := store.Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		st := db.Cache("cluster")
		const prefix = "/vipd-cache"
		writer := startPrefix(t, c, w.Host("h1"), "writer", prefix)
		l, _, _, err := writer.Create(ctx, lb.Spec{Name: "remembered", Port: 80})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := writer.SetDrained(ctx, "remembered", true); err != nil {
			t.Fatal(err)
		}
		first := startWith(t, c, w.Host("h3"), "cached", prefix, nil, st, true)
		waitFor(t, "the local copy saved", func() bool {
			data, err := st.Load()
			return err == nil && strings.Contains(string(data), l.UUID) && strings.Contains(string(data), "remembered")
		})
		first.stop()
		heal, err := c.Partition(ctx, w.Host("h3"))
		if err != nil {
			t.Fatal(err)
		}
		defer heal(ctx)
		again := startWith(t, c, w.Host("h3"), "cached", prefix, nil, st, false)
		if got, err := again.Get(l.UUID); err != nil || got.Address() != l.Address() {
			t.Errorf("restarted cut off: %v, %v; want the load balancer from the local copy", got.Address(), err)
		}
		if !again.Drained()["remembered"] {
			t.Error("restarted cut off: the drain from the local copy is lost")
		}
		if st := again.Status(); st.Synced || st.Connected {
			t.Errorf("restarted cut off: synced %v, connected %v; want neither", st.Synced, st.Connected)
		}
		// Once etcd answers, what it says replaces the copy.
		if _, _, err := writer.Delete(ctx, l.UUID); err != nil {
			t.Fatal(err)
		}
		if err := heal(ctx); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the copy replaced by etcd's state", func() bool {
			_, err := again.Get(l.UUID)
			return again.Status().Synced && errors.Is(err, lb.ErrNotFound)
		})
	})

	t.Run("NameConflict", func(t *testing.T) {
		// A second store that calls itself node2: both say so, and once
		// it leaves, node2 is a member again and the warning ends.
		dup := start(t, c, w.Host("h1"), "node2", nil)
		for _, n := range []*node{n2, dup} {
			waitFor(t, "the name conflict in status", func() bool { return n.Status().NameConflict != "" })
		}
		dup.stop()
		waitFor(t, "node2 a member again, without a conflict", func() bool {
			return n2.Status().NameConflict == "" && slices.ContainsFunc(n1.Status().Members, func(m cluster.Member) bool { return m.Name == "node2" })
		})
		if st := n1.Status(); st.NameConflict != "" {
			t.Errorf("node1 reports a conflict of its own: %s", st.NameConflict)
		}
	})

	t.Run("LeaveRemovesMember", func(t *testing.T) {
		n3.stop()
		waitFor(t, "node3's membership to go", func() bool { return len(n1.Status().Members) == 2 })
	})
}

func findByName(t *testing.T, n *node, name string) lb.LoadBalancer {
	t.Helper()
	for _, l := range n.LoadBalancers() {
		if l.Spec.Name == name {
			return l
		}
	}
	t.Fatalf("%s: no load balancer %q", n.Node(), name)
	return lb.LoadBalancer{}
}

package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/vipd/vipd/internal/api"
	"github.com/vipd/vipd/internal/cluster"
	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/internal/lb"
	"github.com/vipd/vipd/internal/testnet"
	"github.com/vipd/vipd/internal/testnet/etcd"
)

// TestBenchCluster measures cluster mode on a three-member etcd: the time
// from POST /loadbalancer on one node to its reply (written to etcd and
// applied on that node) and to all N nexthops in the router's FIB, for N =
// 3 and 10 nodes; the time from DELETE to the route gone; and the store
// write itself (the read and the transaction a create makes, from a node's
// namespace).
func TestBenchCluster(t *testing.T) {
	skipUnlessBench(t)
	tb := newBenchTable("cluster", "cluster mode: POST /loadbalancer on one node → all N nexthops at the router; store write latency")
	tb.version(vipdVersion(t))
	tb.version(routerVersion(testnet.BIRD))
	tb.version(programVersion(etcd.Binary, "--version"))
	for _, n := range []int{3, 10} {
		t.Run(fmt.Sprint(n), func(t *testing.T) { tb.Rows = append(tb.Rows, benchCluster(t, n)...) })
	}
	tb.report(t)
}

func benchCluster(t *testing.T, nodes int) []benchRow {
	w, ec := birdClusterWorld(t, nodes)
	for i, n := range w.Nodes() {
		startBenchVipd(t, n, clusterConfig(n, fmt.Sprintf("r%d", i%2), ec.Endpoints(), peer{"r1", addr("10.255.255.1"), 65535, ""}))
	}
	for _, n := range w.Nodes() {
		waitStatus(t, n, "in contact with etcd", func(st api.Status) bool { return st.Cluster != nil && st.Cluster.Connected })
	}
	r1, n1 := w.Router("r1"), w.Node("n1")
	hops := addrs4(w.Nodes())
	ctx := t.Context()
	var reply, fib, gone []time.Duration
	for i := range benchTrials {
		start := time.Now()
		l, _, err := lbClient(n1).CreateLoadBalancer(ctx, api.LoadBalancerRequest{Name: fmt.Sprintf("bench-%d", i), Port: 80, OnEmpty: "announce"})
		if err != nil {
			t.Fatal(err)
		}
		reply = append(reply, time.Since(start))
		prefix := netip.PrefixFrom(netip.MustParseAddr(l.EIP), 32)
		if err := poll(ctx, convergeTimeout, 5*time.Millisecond, func(ctx context.Context) error {
			got, err := r1.FIB(ctx, prefix)
			if err != nil || len(got) != len(hops) {
				return fmt.Errorf("%s via %v: %v", prefix, got, err)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		fib = append(fib, time.Since(start))
		// The reply waits for the address to go, after the withdrawal:
		// time the route from the request, not from the reply.
		start = time.Now()
		deleted := make(chan error, 1)
		go func() { deleted <- lbClient(n1).DeleteLoadBalancer(ctx, l.UUID) }()
		if err := poll(ctx, convergeTimeout, 5*time.Millisecond, func(ctx context.Context) error {
			got, err := r1.FIB(ctx, prefix)
			if err != nil || len(got) != 0 {
				return fmt.Errorf("%s via %v: %v", prefix, got, err)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		gone = append(gone, time.Since(start))
		if err := <-deleted; err != nil {
			t.Fatal(err)
		}
	}
	setup := fmt.Sprintf("vipd, %d nodes, etcd ×3", nodes)
	rows := []benchRow{
		{Setup: setup + ", POST → reply", Router: "bird", Metrics: []metric{timeMetric("time", reply)}},
		{Setup: setup + fmt.Sprintf(", POST → %d nexthops in the FIB", nodes), Router: "bird", Metrics: []metric{timeMetric("time", fib)}},
		{Setup: setup + ", DELETE → route gone", Router: "bird", Metrics: []metric{timeMetric("time", gone)}},
	}
	if nodes == 3 {
		rows = append(rows, benchRow{Setup: "cluster store write (create: read + transaction) from a node", Router: "-",
			Metrics: []metric{timeMetric("time", storeWrites(t, ec, n1))}})
	}
	return rows
}

// storeWrites times creates through a cluster store of the test's own,
// dialling etcd from node's namespace, under a prefix of its own.
func storeWrites(t *testing.T, ec *etcd.Cluster, node *testnet.Node) []time.Duration {
	s, err := cluster.New(cluster.Options{
		Config: config.Cluster{Etcd: config.Etcd{Endpoints: ec.Endpoints(), Prefix: "/bench-store"}, MemberTTL: 10 * time.Second},
		Node:   "bench", Pools: []config.Pool{{Name: "default", Prefixes: []netip.Prefix{clusterPool}}},
		Log:  slog.New(slog.DiscardHandler),
		Dial: func(ctx context.Context, addr string) (net.Conn, error) { return node.DialContext(ctx, "tcp", addr) },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	if err := poll(ctx, convergeTimeout, 50*time.Millisecond, func(context.Context) error {
		if !s.Status().Connected {
			return fmt.Errorf("not in contact")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var out []time.Duration
	for i := range 3 * benchTrials {
		start := time.Now()
		if _, _, _, err := s.Create(ctx, lb.Spec{Name: fmt.Sprintf("w%d", i), Port: 80}); err != nil {
			t.Fatal(err)
		}
		out = append(out, time.Since(start))
	}
	return out
}

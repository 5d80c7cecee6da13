package e2e

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vipd/vipd/internal/testnet"
)

// Benchmarks run only under `make bench` (VIPD_BENCH=1): they print a
// table and write JSON to bench/results/. Tests never assert speed.
const benchTrials = 7

func skipUnlessBench(t *testing.T) {
	if os.Getenv("VIPD_BENCH") == "" {
		t.Skip("benchmark: run with make bench")
	}
}

// TestBenchBFDNodeLoss measures, on BIRD and on FRR, the time from cutting
// a node to its nexthop leaving the router's kernel FIB, with BFD at
// 300 ms × 3. Target: median under 1 s.
func TestBenchBFDNodeLoss(t *testing.T) {
	skipUnlessBench(t)
	var rows []benchRow
	for _, tc := range []struct {
		kind     testnet.RouterKind
		multihop bool
	}{{testnet.BIRD, false}, {testnet.FRR, false}, {testnet.FRR, true}} {
		rows = append(rows, benchNodeLoss(t, tc.kind, tc.multihop))
	}
	report(t, "bfd-node-loss", "node loss → nexthop gone from the router's FIB (BFD 300ms × 3, target median < 1s)", rows)
}

type benchRow struct {
	Setup   string          `json:"setup"`
	Router  string          `json:"router"`
	Trials  []time.Duration `json:"trials_ns"`
	Median  time.Duration   `json:"median_ns"`
	Min     time.Duration   `json:"min_ns"`
	Max     time.Duration   `json:"max_ns"`
	Version string          `json:"router_version"`
}

func benchNodeLoss(t *testing.T, kind testnet.RouterKind, multihop bool) benchRow {
	nodes := nodeSpecs(2)
	var nbrs []testnet.Neighbor
	for _, n := range neighbors(nodes, 4200000000, "") {
		n.Multihop = multihop
		n.BFD = &testnet.BFDSpec{Multihop: multihop}
		nbrs = append(nbrs, n)
	}
	w := testnet.NewT(t, testnet.Spec{
		Routers: []testnet.RouterSpec{{Name: "r1", Kind: kind, ASN: 65535, Address: addr("10.255.255.1"), Neighbors: nbrs}},
		Nodes:   nodes,
	})
	r, n1, n2 := w.Router("r1"), w.Node("n1"), w.Node("n2")
	config := fmt.Sprintf(`bgp:
  asn: 4200000000
  allowed_prefixes: [192.168.0.16/31]
  peers:
    - {name: r1, address: %s, asn: 65535, multihop: %v, bfd: {enabled: true, min_tx: 300ms, min_rx: 300ms, multiplier: 3}}
services:
  - name: web
    vips: [192.168.0.16]
`, r.Addr4(), multihop)
	startVipd(t, n1, config)
	startVipd(t, n2, config)
	both := []netip.Addr{n1.Addr4(), n2.Addr4()}
	row := benchRow{Setup: fmt.Sprintf("vipd, BFD %s", hopName(multihop)), Router: string(kind), Version: routerVersion(t, r)}
	for range benchTrials {
		waitFIB(t, r, vip4, both...)
		if _, err := r.WaitBFD(t.Context(), n1.Addr4(), multihop, testnet.BFDUp, convergeTimeout); err != nil {
			t.Fatal(err)
		}
		cut := time.Now()
		dropAll(t, n1)
		row.Trials = append(row.Trials, pollFIBGone(t, r, n1.Addr4(), cut))
		if out, err := n1.Exec(t.Context(), "nft", "delete", "table", "inet", "vtcut"); err != nil {
			t.Fatalf("heal n1: %v\n%s", err, out)
		}
	}
	sorted := slices.Sorted(slices.Values(row.Trials))
	row.Median, row.Min, row.Max = sorted[len(sorted)/2], sorted[0], sorted[len(sorted)-1]
	return row
}

// pollFIBGone polls the router's FIB every 10 ms (bounded) until hop has
// left the VIP's route, and returns the time since cut.
func pollFIBGone(t *testing.T, r *testnet.Router, hop netip.Addr, cut time.Time) time.Duration {
	t.Helper()
	for time.Since(cut) < convergeTimeout {
		hops, err := r.FIB(t.Context(), vip4)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(hops, hop) {
			return time.Since(cut)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s never left the FIB", hop)
	return 0
}

func hopName(multihop bool) string {
	if multihop {
		return "multihop"
	}
	return "single-hop"
}

func routerVersion(t *testing.T, r *testnet.Router) string {
	cmd := "bird --version 2>&1" // BIRD prints its version on stderr
	if r.Kind() == testnet.FRR {
		cmd = "/usr/lib/frr/bgpd --version"
	}
	out, err := r.Exec(t.Context(), "sh", "-c", cmd)
	if err != nil {
		return "unknown"
	}
	return strings.SplitN(strings.TrimSpace(out), "\n", 2)[0]
}

// report prints a table and writes bench/results/NAME.json.
func report(t *testing.T, name, title string, rows []benchRow) {
	var b strings.Builder
	fmt.Fprintf(&b, "\n%s\n%-26s %-6s %9s %9s %9s  %s\n", title, "SETUP", "ROUTER", "MEDIAN", "MIN", "MAX", "VERSION")
	for _, r := range rows {
		fmt.Fprintf(&b, "%-26s %-6s %9v %9v %9v  %s\n", r.Setup, r.Router,
			r.Median.Round(time.Millisecond), r.Min.Round(time.Millisecond), r.Max.Round(time.Millisecond), r.Version)
	}
	fmt.Print(b.String())
	data, err := json.MarshalIndent(map[string]any{"benchmark": name, "title": title, "trials": benchTrials, "rows": rows}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join("..", "..", "bench", "results")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// restartTrials is fewer than benchTrials: one trial can take minutes.
const restartTrials = 3

// TestBenchPlannedRestart measures how long a restarted vipd's node stays
// out of the router's ECMP set, with the routers at their default timers:
// a plain restart, and one with bgp.graceful_restart.
func TestBenchPlannedRestart(t *testing.T) {
	skipUnlessBench(t)
	var rows []benchRow
	for _, kind := range []testnet.RouterKind{testnet.BIRD, testnet.FRR} {
		for _, gr := range []bool{false, true} {
			rows = append(rows, benchRestart(t, kind, gr))
		}
	}
	report(t, "planned-restart", "planned restart (SIGTERM, start again) → node out of the router's ECMP set, routers at default timers", rows)
}

func benchRestart(t *testing.T, kind testnet.RouterKind, gracefulRestart bool) benchRow {
	nodes := nodeSpecs(2)
	w := testnet.NewT(t, testnet.Spec{
		Routers: []testnet.RouterSpec{{Name: "r1", Kind: kind, ASN: 65535, Address: addr("10.255.255.1"),
			Neighbors: neighbors(nodes, 4200000000, ""), DefaultTimers: true}},
		Nodes: nodes,
	})
	r, n1, n2 := w.Router("r1"), w.Node("n1"), w.Node("n2")
	config := fmt.Sprintf(`bgp:
  asn: 4200000000
  allowed_prefixes: [192.168.0.16/31]
  graceful_restart: %v
  peers:
%s
services:
  - name: web
    vips: [192.168.0.16]
`, gracefulRestart, peersYAML(peer{"r1", r.Addr4(), 65535, ""}))
	p := startVipd(t, n1, config)
	startVipd(t, n2, config)
	setup := "vipd restart"
	if gracefulRestart {
		setup = "vipd restart, graceful"
	}
	row := benchRow{Setup: setup, Router: string(kind), Version: routerVersion(t, r)}
	const bound = 6 * time.Minute // BIRD's error wait reaches 300 s
	for range restartTrials {
		if err := r.WaitFIB(t.Context(), vip4, []netip.Addr{n1.Addr4(), n2.Addr4()}, bound); err != nil {
			t.Fatal(err)
		}
		stop := time.Now()
		if err := p.Stop(stopTimeout); err != nil {
			t.Fatal(err)
		}
		p = startVipd(t, n1, config)
		row.Trials = append(row.Trials, timeOutOfECMP(t, r, n1.Addr4(), stop, bound))
	}
	sorted := slices.Sorted(slices.Values(row.Trials))
	row.Median, row.Min, row.Max = sorted[len(sorted)/2], sorted[0], sorted[len(sorted)-1]
	return row
}

// timeOutOfECMP polls the FIB every 20 ms (bounded) from start and returns
// how long hop was missing from the VIP's route: 0 if it never left.
func timeOutOfECMP(t *testing.T, r *testnet.Router, hop netip.Addr, start time.Time, bound time.Duration) time.Duration {
	t.Helper()
	var left time.Time
	settle := start.Add(15 * time.Second) // a route that never leaves: watch this long
	for time.Since(start) < bound {
		hops, err := r.FIB(t.Context(), vip4)
		if err != nil {
			t.Fatal(err)
		}
		in := slices.Contains(hops, hop)
		switch {
		case !in && left.IsZero():
			left = time.Now()
		case in && !left.IsZero():
			return time.Since(left)
		case in && left.IsZero() && time.Now().After(settle):
			return 0
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s did not return to the FIB within %v", hop, bound)
	return 0
}

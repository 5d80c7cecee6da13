package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vipd/vipd/internal/api"
	"github.com/vipd/vipd/internal/testnet"
	"github.com/vipd/vipd/internal/testnet/worldtest"
)

// receivedTrials is fewer than benchTrials: each fills a router with the
// routes it leaks.
const receivedTrials = 3

// TestBenchReceivedRoutes measures what routes a router leaks to vipd
// cost in vipd's memory (vipd accepts none of them, and its relay
// discards them before GoBGP stores them): its RSS with 0 routes
// received, and the growth once the router sends K, up to a million.
func TestBenchReceivedRoutes(t *testing.T) {
	skipUnlessBench(t)
	tb := newBenchTable("received-routes", "K routes leaked to vipd (accepts none) → vipd's RSS (target: flat within a few MiB)")
	tb.version(vipdVersion(t))
	tb.version(routerVersion(testnet.BIRD))
	for _, k := range []int{100_000, 1_000_000} {
		t.Run(fmt.Sprint(k), func(t *testing.T) { tb.Rows = append(tb.Rows, benchReceived(t, k, false)) })
	}
	t.Run("router connects", func(t *testing.T) { tb.Rows = append(tb.Rows, benchReceived(t, 1_000_000, true)) })
	tb.report(t)
}

// benchReceived measures k routes leaked; with routerConnects vipd
// listens on 179 and dials a port nothing listens on, so the session is
// the one the router opens.
func benchReceived(t *testing.T, k int, routerConnects bool) benchRow {
	var base, grown, perRoute []float64
	for i := range receivedTrials {
		t.Run(fmt.Sprint("trial", i), func(t *testing.T) {
			nodes := nodeSpecs(1)
			w := worldtest.New(t, testnet.Spec{
				Routers: []testnet.RouterSpec{{Name: "r1", Kind: testnet.BIRD, ASN: 65535, Address: addr("10.255.255.1"),
					Neighbors: neighbors(nodes, 4200000000, ""), ExportHosts: k}},
				Nodes: nodes,
			})
			r, n1 := w.Router("r1"), w.Node("n1")
			if out, err := r.Birdc(t.Context(), "disable", "leaked"); err != nil {
				t.Fatalf("birdc disable leaked: %v\n%s", err, out)
			}
			config := webConfig(r1Peer(r), "")
			if routerConnects {
				config = webConfig(peersYAMLWith("      port: 1790\n", peer{"r1", r.Addr4(), 65535, ""}), "")
				config = strings.Replace(config, "bgp:\n", "bgp:\n  listen_port: 179\n", 1)
			}
			p := startBenchVipd(t, n1, config)
			waitFIB(t, r, vip4, n1.Addr4())
			time.Sleep(3 * time.Second)
			before := procStatus(t, p.PID(), "VmRSS")
			if out, err := r.Birdc(t.Context(), "enable", "leaked"); err != nil {
				t.Fatalf("birdc enable leaked: %v\n%s", err, out)
			}
			waitStatusWithin(t, n1, 5*convergeTimeout, fmt.Sprintf("%d received", k), func(st api.Status) bool {
				return len(st.Peers) == 1 && st.Peers[0].ReceivedPrefixes == uint64(k)
			})
			time.Sleep(3 * time.Second)
			after := procStatus(t, p.PID(), "VmRSS")
			base, grown = append(base, before), append(grown, after-before)
			perRoute = append(perRoute, (after-before)/float64(k))
		})
	}
	if len(base) == 0 {
		t.Fatal("no trial finished")
	}
	setup := fmt.Sprintf("vipd, %s routes received", countLabel(k))
	if routerConnects {
		setup += ", router connects (listen_port 179)"
	}
	return benchRow{Setup: setup, Router: "bird", Metrics: []metric{
		newMetric("rss with 0", unitBytes, base),
		newMetric("growth", unitBytes, grown),
		newMetric("bytes per route", unitCount, perRoute),
	}}
}

// countLabel writes 100000 as 100k and 1000000 as 1M.
func countLabel(k int) string {
	if k >= 1_000_000 && k%1_000_000 == 0 {
		return fmt.Sprintf("%dM", k/1_000_000)
	}
	return fmt.Sprintf("%dk", k/1000)
}

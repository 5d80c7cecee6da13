package e2e

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/vipd/vipd/internal/api"
	"github.com/vipd/vipd/internal/testnet"
	"github.com/vipd/vipd/internal/testnet/worldtest"
)

// leakedRoutes is how many routes the router leaks to vipd.
const leakedRoutes = 100_000

// maxReceivedGrowth bounds what 100k leaked routes may add to vipd's RSS.
// The relay keeps none of them (GoBGP used to keep about 0.6 KB each,
// 60 MiB here); what remains is the relay's buffers, the UPDATEs in flight
// in the socket, and the race detector's and the Go heap's noise: measured
// 0.7-3.2 MiB here with the race detector, 0.1-0.2 MiB without (README).
const maxReceivedGrowth = 8 << 20

// TestReceivedRoutes: a router that leaks 100k routes to vipd (which
// accepts none) leaves vipd's announcement and session alone, vipd's RSS
// stays flat (the relay discards the UPDATEs before GoBGP stores them),
// and vipd says how many it received and discarded. It holds whether vipd
// opened the session or, with listen_port set, the router did.
func TestReceivedRoutes(t *testing.T) {
	if testing.Short() {
		t.Skip("100k routes")
	}
	t.Run("vipd connects", func(t *testing.T) {
		testReceivedRoutes(t, "", "")
	})
	// vipd's own attempts go to a port nothing listens on, so the session
	// is the one BIRD opens to vipd's listener, signed with TCP-MD5.
	t.Run("router connects", func(t *testing.T) {
		testReceivedRoutes(t, "leak-secret", "  listen_port: 179\n")
	})
}

func testReceivedRoutes(t *testing.T, password, bgpExtra string) {
	nodes := nodeSpecs(1)
	w := worldtest.New(t, testnet.Spec{
		Routers: []testnet.RouterSpec{{Name: "r1", Kind: testnet.BIRD, ASN: 65535, Address: addr("10.255.255.1"),
			Neighbors: neighbors(nodes, 4200000000, password), ExportHosts: leakedRoutes}},
		Nodes: nodes,
	})
	r, n1 := w.Router("r1"), w.Node("n1")
	// Hold the leak back until vipd's baseline is measured.
	if out, err := r.Birdc(t.Context(), "disable", "leaked"); err != nil {
		t.Fatalf("birdc disable leaked: %v\n%s", err, out)
	}
	peer := fmt.Sprintf("{name: r1, address: %s, asn: 65535, multihop: true}", r.Addr4())
	if password != "" {
		peer = fmt.Sprintf("{name: r1, address: %s, asn: 65535, multihop: true, port: 1790, password: %s}", r.Addr4(), password)
	}
	p := startVipd(t, n1, fmt.Sprintf(`bgp:
  asn: 4200000000
  allowed_prefixes: [192.168.0.16/31]
%s  peers:
    - %s
services:
  - name: web
    vips: [192.168.0.16]
`, bgpExtra, peer))
	waitFIB(t, r, vip4, n1.Addr4())
	since := establishedSince(t, r, n1)
	time.Sleep(3 * time.Second) // let start-up allocations settle
	runtime.GC()
	before := procStatus(t, p.PID(), "VmRSS")

	if out, err := r.Birdc(t.Context(), "enable", "leaked"); err != nil {
		t.Fatalf("birdc enable leaked: %v\n%s", err, out)
	}
	st := waitStatusWithin(t, n1, 3*convergeTimeout, fmt.Sprintf("%d received prefixes", leakedRoutes), func(st api.Status) bool {
		return len(st.Peers) == 1 && st.Peers[0].ReceivedPrefixes == leakedRoutes
	})
	time.Sleep(2 * time.Second)
	after := procStatus(t, p.PID(), "VmRSS")
	t.Logf("vipd RSS %.1f MiB with 0 routes received, %.1f MiB with %d (%+.1f MiB, %.2f KB a route)",
		mib(before), mib(after), leakedRoutes, mib(after)-mib(before), (after-before)/leakedRoutes/1000)

	if growth := after - before; growth > maxReceivedGrowth {
		t.Errorf("vipd's RSS grew by %.1f MiB with %d routes received, want at most %.0f MiB", mib(growth), leakedRoutes, mib(maxReceivedGrowth))
	}
	if st.Peers[0].DiscardedUpdates == 0 {
		t.Errorf("no discarded UPDATE counted with %d routes received", st.Peers[0].ReceivedPrefixes)
	}
	if st.Peers[0].State != "Established" {
		t.Errorf("peer %s with %d routes received", st.Peers[0].State, st.Peers[0].ReceivedPrefixes)
	}
	waitFIB(t, r, vip4, n1.Addr4())
	if again := establishedSince(t, r, n1); !sameSession(again, since) {
		t.Errorf("session reset by the leak: established %v, then %v", since, again)
	}
	// vipd installs none of them.
	if routes, err := n1.FIB(t.Context(), mustPrefix("100.64.0.1/32")); err != nil || len(routes) != 0 {
		t.Errorf("n1's FIB holds a leaked route: %v %v", routes, err)
	}
	if out, err := r.Birdc(t.Context(), "disable", "leaked"); err != nil {
		t.Fatalf("birdc disable leaked: %v\n%s", err, out)
	}
	waitStatusWithin(t, n1, 3*convergeTimeout, "0 received prefixes after the withdrawal", func(st api.Status) bool {
		return len(st.Peers) == 1 && st.Peers[0].ReceivedPrefixes == 0
	})
}

func mib(b float64) float64 { return b / (1 << 20) }

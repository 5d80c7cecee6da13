package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/vipd/vipd/internal/testnet"
)

// TestBenchBFDNodeLoss measures the time from cutting a node to its
// nexthop leaving the router's kernel FIB, with BFD at 300 ms × 3 and
// 50 ms × 3, single-hop and multihop, on BIRD and FRR routers. In each
// world two nodes announce the same VIP: n1 with vipd, n2 with BIRD as the
// node's speaker at the same BFD timers, and the trials alternate between
// them. Targets: median ≤ 1 s at 300 ms × 3, ≤ 250 ms at 50 ms × 3.
func TestBenchBFDNodeLoss(t *testing.T) {
	skipUnlessBench(t)
	tb := newBenchTable("bfd-node-loss", "node loss → nexthop gone from the router's FIB (BFD 300ms × 3: target ≤ 1s; 50ms × 3: target ≤ 250ms)")
	tb.version(vipdVersion(t))
	tb.version(programVersion("bird", "--version"))
	for _, kind := range []testnet.RouterKind{testnet.BIRD, testnet.FRR} {
		tb.version(routerVersion(kind))
		for _, interval := range []time.Duration{300 * time.Millisecond, 50 * time.Millisecond} {
			for _, multihop := range []bool{false, true} {
				name := fmt.Sprintf("%s/%v/%s", kind, interval, hopName(multihop))
				t.Run(name, func(t *testing.T) { tb.Rows = append(tb.Rows, benchNodeLoss(t, kind, interval, multihop)...) })
			}
		}
	}
	tb.report(t)
}

// bfdMultiplier is the detection multiplier of every node-loss setup.
const bfdMultiplier = 3

// benchNodeLoss runs one world: a router with BFD at interval ×
// bfdMultiplier towards n1 (vipd) and n2 (BIRD), and returns their rows.
// FRR gets no BIRD speaker for multihop: its bfdd drops multihop packets
// under TTL 254 (minimum-ttl), and BIRD 2 sends them with TTL 64.
func benchNodeLoss(t *testing.T, kind testnet.RouterKind, interval time.Duration, multihop bool) []benchRow {
	speakers := 2
	if multihop && kind == testnet.FRR {
		speakers = 1
	}
	w := bfdWorld(t, kind, speakers, testnet.BFDSpec{Multihop: multihop, MinTx: interval, MinRx: interval, Multiplier: bfdMultiplier})
	r := w.Router("r1")
	minTTL := ""
	if multihop && kind == testnet.BIRD {
		minTTL = ", min_ttl: 64" // BIRD 2 sends multihop BFD with TTL 64
	}
	startBenchVipd(t, w.Node("n1"), bfdNodeConfig(r, multihop,
		fmt.Sprintf("{enabled: true, min_tx: %v, min_rx: %v, multiplier: %d%s}", interval, interval, bfdMultiplier, minTTL)))
	if speakers > 1 {
		startBirdSpeaker(t, w.Node("n2"), r, interval, multihop)
	}

	hops := addrs4(w.Nodes())
	trials := make([][]time.Duration, len(w.Nodes()))
	for range benchTrials {
		for i, n := range w.Nodes() {
			waitFIB(t, r, vip4, hops...)
			for _, hop := range hops {
				if _, err := r.WaitBFD(t.Context(), hop, multihop, testnet.BFDUp, convergeTimeout); err != nil {
					t.Fatal(err)
				}
			}
			cut := time.Now()
			dropAll(t, n)
			trials[i] = append(trials[i], pollFIBGone(t, r, n.Addr4(), cut))
			if out, err := n.Exec(t.Context(), "nft", "delete", "table", "inet", "vtcut"); err != nil {
				t.Fatalf("heal %s: %v\n%s", n.Name(), err, out)
			}
		}
	}
	timers := fmt.Sprintf("BFD %v × %d %s", interval, bfdMultiplier, hopName(multihop))
	rows := []benchRow{{Setup: "vipd, " + timers, Router: string(kind), Metrics: []metric{timeMetric("time", trials[0])}}}
	if speakers > 1 {
		rows = append(rows, benchRow{Setup: "bird, " + timers, Router: string(kind), Metrics: []metric{timeMetric("time", trials[1])}})
	}
	return rows
}

func hopName(multihop bool) string {
	if multihop {
		return "multihop"
	}
	return "single-hop"
}

// startBirdSpeaker runs BIRD on node as the node's BGP speaker in vipd's
// place: it announces vip4 to router r with BFD at interval × bfdMultiplier
// and the reconnect timers vipd has, so a healed node comes back as fast.
// (testnet's announcer has no BFD timers of its own.)
func startBirdSpeaker(t *testing.T, node *testnet.Node, r *testnet.Router, interval time.Duration, multihop bool) {
	t.Helper()
	timers := fmt.Sprintf("{ min rx interval %d ms; min tx interval %d ms; multiplier %d; }",
		interval.Milliseconds(), interval.Milliseconds(), bfdMultiplier)
	bfd, hop := `interface "*" `+timers+";", ""
	if multihop {
		bfd, hop = "multihop "+timers+";", "multihop;"
	}
	conf := filepath.Join(node.Dir(), "speaker.conf")
	config := fmt.Sprintf(`router id %[1]s;
log stderr all;
protocol device { scan time 10; }
protocol static { ipv4; route %[2]s blackhole; }
protocol bfd {
	%[3]s
}
protocol bgp r1 {
	local %[1]s as 4200000000;
	neighbor %[4]s as %[5]d;
	%[6]s
	bfd on;
	hold time 9;
	connect delay time 1;
	connect retry time 1;
	error wait time 1, 5;
	ipv4 { import none; export all; next hop self; };
}
`, node.Addr4(), vip4, bfd, r.Addr4(), r.ASN(), hop)
	if err := os.WriteFile(conf, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(node.Dir(), "speaker.sock")
	p, err := node.StartProcess("speaker", "bird", "-f", "-c", conf, "-s", sock)
	if err != nil {
		t.Fatal(err)
	}
	err = testnet.WaitFor(t.Context(), convergeTimeout, func(ctx context.Context) error {
		if p.Exited() {
			return fmt.Errorf("bird exited:\n%s", p.Log())
		}
		_, err := exec.CommandContext(ctx, "birdc", "-s", sock, "show", "status").Output()
		return err
	})
	if err != nil {
		t.Fatalf("%s: speaker: %v", node.Name(), err)
	}
}

package bfd

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/vipd/vipd/internal/testnet"
	"github.com/vipd/vipd/internal/testnet/worldtest"
)

// Bounds of the interop test. The machine is shared: waits are generous,
// but failure detection must stay within the bound.
const (
	interopWait   = 15 * time.Second
	detectionWait = 3 * time.Second // at 300 ms × 3 (issue 3: assert ≤ 3 s)
	birdTTL       = 64              // BIRD 2.0.12 sends multihop BFD with the default TTL
	// ttlDropsWatched is how many of BIRD's packets the TTL check must
	// judge before it is trusted (the test waited 2 s, about 2 packets,
	// beyond the first 2 before).
	ttlDropsWatched = 4
)

// interopLab is a BIRD and an FRR router and two nodes that run a Manager
// each: n1 with single-hop sessions to both routers, n2 with multihop
// ones, each over IPv4 and IPv6.
type interopLab struct {
	t      *testing.T // the whole test: managers live as long as it
	w      *testnet.World
	ctx    context.Context
	nodes  [2]*testManager // n1 (single-hop), n2 (multihop)
	peers  [2][]Peer       // what each node's Manager runs
	remote map[netip.Addr]*testnet.Router
}

func newInteropLab(t *testing.T) *interopLab {
	n1, n2 := netip.MustParseAddr("10.255.255.11"), netip.MustParseAddr("10.255.255.12")
	spec := testnet.Spec{Nodes: []testnet.NodeSpec{{Name: "n1", Address: n1}, {Name: "n2", Address: n2}}}
	neighbors := []testnet.Neighbor{
		{Address: n1, ASN: 65001, BFD: &testnet.BFDSpec{}},
		{Address: spec.Addr6(n1), ASN: 65001, BFD: &testnet.BFDSpec{}},
		{Address: n2, ASN: 65002, Multihop: true, BFD: &testnet.BFDSpec{Multihop: true}},
		{Address: spec.Addr6(n2), ASN: 65002, Multihop: true, BFD: &testnet.BFDSpec{Multihop: true}},
	}
	spec.Routers = []testnet.RouterSpec{
		{Name: "r1", Kind: testnet.BIRD, ASN: 65000, Address: netip.MustParseAddr("10.255.255.1"), Neighbors: neighbors},
		{Name: "r2", Kind: testnet.FRR, ASN: 65000, Address: netip.MustParseAddr("10.255.255.2"), Neighbors: neighbors},
	}
	worldtest.SkipUnlessAvailable(t, spec)
	if _, err := exec.LookPath("nft"); err != nil {
		worldtest.SkipOrFail(t, "needs nft")
	}
	w := worldtest.New(t, spec)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	lab := &interopLab{t: t, w: w, ctx: ctx, remote: map[netip.Addr]*testnet.Router{}}
	for i, n := range w.Nodes() {
		for _, r := range w.Routers() {
			lab.remote[r.Addr4()], lab.remote[r.Addr6()] = r, r
			for _, addr := range []netip.Addr{r.Addr4(), r.Addr6()} {
				lab.peers[i] = append(lab.peers[i], Peer{Remote: addr, Multihop: i == 1}.withDefaults())
			}
		}
		lab.nodes[i] = startManager(t, n.Name(), func(m *Manager) { m.env.inNS = n.InNamespace })
	}
	return lab
}

// set hands node i its peers, changed by change.
func (lab *interopLab) set(t *testing.T, i int, change func(p *Peer)) {
	t.Helper()
	for j := range lab.peers[i] {
		change(&lab.peers[i][j])
	}
	lab.nodes[i].set(lab.peers[i]...)
}

// nodeAddr is the node address a router sees for session p of node i.
func (lab *interopLab) nodeAddr(i int, p Peer) netip.Addr {
	n := lab.w.Nodes()[i]
	if p.Remote.Is4() {
		return n.Addr4()
	}
	return n.Addr6()
}

// waitRouter waits until the router's session with node i for p is in
// state and satisfies ok.
func (lab *interopLab) waitRouter(t *testing.T, i int, p Peer, state string, ok func(testnet.BFDSession) error) testnet.BFDSession {
	t.Helper()
	r := lab.remote[p.Remote]
	var got testnet.BFDSession
	err := testnet.WaitFor(lab.ctx, interopWait, func(ctx context.Context) error {
		s, found, err := r.BFDSession(ctx, lab.nodeAddr(i, p), p.Multihop)
		switch {
		case err != nil:
			return err
		case !found:
			return fmt.Errorf("no session with %s", lab.nodeAddr(i, p))
		case s.State != state:
			return fmt.Errorf("session with %s is %s, want %s", lab.nodeAddr(i, p), s.State, state)
		}
		got = s
		return ok(s)
	})
	if err != nil {
		t.Fatalf("%s (%s): %v", r.Name(), r.Kind(), err)
	}
	return got
}

func agreed300(s testnet.BFDSession) error {
	if s.TxInterval != 300*time.Millisecond || s.DetectionTime != 900*time.Millisecond {
		return fmt.Errorf("router tx %v detection %v, want 300ms 900ms", s.TxInterval, s.DetectionTime)
	}
	return nil
}

// TestInterop runs vipd's BFD against BIRD 2 and FRR bfdd: single-hop and
// multihop, IPv4 and IPv6, through the TTL check, a timer change, a cut
// link, a remote AdminDown and our own removal.
func TestInterop(t *testing.T) {
	lab := newInteropLab(t)
	steps := []struct {
		name string
		run  func(t *testing.T, lab *interopLab)
	}{
		{"multihop TTL check", testInteropTTL},
		{"up at 300ms x 3", testInteropUp},
		{"timer change without flap", testInteropTimerChange},
		{"cut and restore", testInteropCut},
		{"remote AdminDown", testInteropRemoteAdminDown},
		{"crash and restart", testInteropRestart},
		{"removal sends AdminDown", testInteropRemoval},
	}
	for _, step := range steps {
		if !t.Run(step.name, func(t *testing.T) { step.run(t, lab) }) {
			return // later steps build on this one
		}
	}
}

// testInteropTTL starts node 1 with a strict min_ttl of 254 toward BIRD:
// BIRD's multihop packets (TTL 64) fail it, and the session says so.
// Then both nodes run with the defaults, which accept BIRD's TTL, and the
// next step sees every session come up.
func testInteropTTL(t *testing.T, lab *interopLab) {
	const strict = 254
	lab.set(t, 0, func(*Peer) {})
	lab.set(t, 1, func(p *Peer) {
		if p.Multihop {
			p.MinTTL = strict
		}
	})
	n2 := lab.nodes[1]
	for _, p := range lab.peers[1] {
		if lab.remote[p.Remote].Kind() != testnet.BIRD || !p.Multihop {
			n2.waitStatus(p.Key(), "Up (FRR sends TTL 255; single-hop is 255)", isUp)
			continue
		}
		// Watch BIRD's packets until several were judged;
		// PacketsIn counts every packet let past the TTL check since the
		// session began, so one that slipped through shows at the end,
		// and stops the wait at once.
		want := fmt.Sprintf("TTL %d < min_ttl %d", birdTTL, strict)
		st := n2.waitStatus(p.Key(), "dropping BIRD's packets", func(st SessionStatus) bool {
			return st.Counters.Dropped >= ttlDropsWatched || st.Counters.PacketsIn != 0 || st.State == Up
		})
		if st.State == Up || st.Counters.PacketsIn != 0 || st.Counters.LastDrop != want {
			t.Errorf("%s: %s with %d packets in, last drop %q; want every packet dropped with %q",
				p.Key(), st.State, st.Counters.PacketsIn, st.Counters.LastDrop, want)
		}
	}
	lab.set(t, 1, func(p *Peer) { p.MinTTL = 0 }) // the default: any TTL
}

// testInteropUp waits until every session is Up at 300 ms × 3 on both
// sides.
func testInteropUp(t *testing.T, lab *interopLab) {
	for i, node := range lab.nodes {
		for _, p := range lab.peers[i] {
			st := node.waitStatus(p.Key(), "Up", isUp)
			if st.TxInterval != 300*time.Millisecond || st.RxInterval != 300*time.Millisecond || st.DetectionTime != 900*time.Millisecond {
				t.Errorf("%s: tx %v rx %v detection %v, want 300ms 300ms 900ms", p.Key(), st.TxInterval, st.RxInterval, st.DetectionTime)
			}
			lab.waitRouter(t, i, p, testnet.BFDUp, agreed300)
		}
	}
}

// testInteropTimerChange moves every session to 500 ms and back while Up:
// the routers follow through Poll/Final and nobody goes Down.
func testInteropTimerChange(t *testing.T, lab *interopLab) {
	since := map[string]time.Time{}
	key := func(i int, p Peer) string { return fmt.Sprintf("%d %s", i, p.Key()) }
	for i := range lab.nodes {
		for _, p := range lab.peers[i] {
			since[key(i, p)] = lab.waitRouter(t, i, p, testnet.BFDUp, agreed300).Since
		}
	}
	eventsBefore := [2]int{len(lab.nodes[0].eventsSnapshot()), len(lab.nodes[1].eventsSnapshot())}
	for _, interval := range []time.Duration{500 * time.Millisecond, 300 * time.Millisecond} {
		for i := range lab.nodes {
			lab.set(t, i, func(p *Peer) { p.MinTx, p.MinRx = interval, interval })
		}
		for i := range lab.nodes {
			for _, p := range lab.peers[i] {
				s := lab.waitRouter(t, i, p, testnet.BFDUp, func(s testnet.BFDSession) error {
					if s.TxInterval != interval || s.DetectionTime != 3*interval {
						return fmt.Errorf("router tx %v detection %v, want %v and 3×", s.TxInterval, s.DetectionTime, interval)
					}
					return nil
				})
				// FRR's Since comes from its uptime in whole seconds.
				if d := s.Since.Sub(since[key(i, p)]); d < -time.Second || d > time.Second {
					t.Errorf("%s saw session %s restart: up since %v, before %v", lab.remote[p.Remote].Name(), p.Key(), s.Since, since[key(i, p)])
				}
			}
		}
	}
	for i, node := range lab.nodes {
		for _, ev := range node.eventsSnapshot()[eventsBefore[i]:] {
			t.Errorf("node %d: event %+v during a timer change", i+1, ev)
		}
	}
}

// testInteropCut drops everything on both nodes' LAN interfaces: every
// session goes Down by detection time, within the bound; then it heals.
func testInteropCut(t *testing.T, lab *interopLab) {
	eventsBefore := [2]int{len(lab.nodes[0].eventsSnapshot()), len(lab.nodes[1].eventsSnapshot())}
	start := time.Now()
	for _, n := range lab.w.Nodes() {
		nft(t, lab, n, "add table inet vtcut\n"+
			"add chain inet vtcut in { type filter hook input priority 0; }\n"+
			"add chain inet vtcut out { type filter hook output priority 0; }\n"+
			"add rule inet vtcut in iifname lan0 drop\n"+
			"add rule inet vtcut out oifname lan0 drop\n")
	}
	for i, node := range lab.nodes {
		for _, p := range lab.peers[i] {
			st := node.waitStatus(p.Key(), "Down", func(st SessionStatus) bool { return st.State == Down })
			if st.LastDownDiag != DiagControlDetectionTimeExpired {
				t.Errorf("%s: down with %s, want ControlDetectionTimeExpired", p.Key(), st.LastDownDiag)
			}
		}
		for _, ev := range node.eventsSnapshot()[eventsBefore[i]:] {
			if !ev.Failure() || ev.Diag != DiagControlDetectionTimeExpired {
				t.Errorf("%s: event %+v, want a detected failure", ev.Key, ev)
			}
			if took := ev.At.Sub(start); took > detectionWait {
				t.Errorf("%s: detected after %v, want at most %v", ev.Key, took, detectionWait)
			} else {
				t.Logf("%s: detected after %v", ev.Key, took)
			}
		}
	}
	for _, n := range lab.w.Nodes() {
		nft(t, lab, n, "delete table inet vtcut\n")
	}
	for i, node := range lab.nodes {
		for _, p := range lab.peers[i] {
			node.waitStatus(p.Key(), "Up again", isUp)
			lab.waitRouter(t, i, p, testnet.BFDUp, agreed300)
		}
	}
}

// nft applies a ruleset change inside node n.
func nft(t *testing.T, lab *interopLab, n *testnet.Node, rules string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "rules.nft")
	if err := os.WriteFile(path, []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Exec(lab.ctx, "nft", "-f", path); err != nil {
		t.Fatal(err)
	}
}

// testInteropRemoteAdminDown shuts one FRR peer down: vipd reports a
// remote AdminDown, not a failure, and comes back Up after `no shutdown`.
// BIRD 2.0.12 sends no AdminDown (disabling its protocol just goes
// silent), so only FRR is tried.
func testInteropRemoteAdminDown(t *testing.T, lab *interopLab) {
	r2 := lab.w.Router("r2")
	n1 := lab.w.Node("n1")
	p := Peer{Remote: r2.Addr4()}.withDefaults()
	before := len(lab.nodes[0].eventsSnapshot())
	peerCmd := fmt.Sprintf("peer %s local-address %s", n1.Addr4(), r2.Addr4())
	vtysh(t, lab, r2, "configure terminal", "bfd", peerCmd, "shutdown")
	st := lab.nodes[0].waitStatus(p.Key(), "Down", func(st SessionStatus) bool { return st.State == Down })
	if st.RemoteState != AdminDown {
		t.Errorf("remote state %s, want AdminDown", st.RemoteState)
	}
	evs := lab.nodes[0].eventsSnapshot()[before:]
	if len(evs) != 1 || evs[0].To != Down || evs[0].RemoteState != AdminDown || evs[0].Failure() {
		t.Errorf("events %+v, want one Down after a remote AdminDown, not a failure", evs)
	}
	vtysh(t, lab, r2, "configure terminal", "bfd", peerCmd, "no shutdown")
	lab.nodes[0].waitStatus(p.Key(), "Up again", isUp)
}

// vtysh runs one vtysh command sequence against router r.
func vtysh(t *testing.T, lab *interopLab, r *testnet.Router, commands ...string) {
	t.Helper()
	args := []string{"-N", r.Namespace()}
	for _, c := range commands {
		args = append(args, "-c", c)
	}
	ctx, cancel := context.WithTimeout(lab.ctx, 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "vtysh", args...).CombinedOutput(); err != nil {
		t.Fatalf("vtysh %v: %v\n%s", commands, err, out)
	}
}

// testInteropRestart replaces n1's Manager as a crash would: its
// AdminDown packets never leave the node. The routers still hold the old
// discriminators; the new Manager drops their packets until they time out
// and then comes up with fresh ones.
func testInteropRestart(t *testing.T, lab *interopLab) {
	n1 := lab.w.Node("n1")
	nft(t, lab, n1, "add table inet vtcrash\n"+
		"add chain inet vtcrash out { type filter hook output priority 0; }\n"+
		"add rule inet vtcrash out oifname lan0 udp dport { 3784, 4784 } drop\n")
	old := lab.nodes[0]
	before := map[Key]uint32{}
	for _, st := range old.m.Status() {
		before[st.Peer.Key()] = st.LocalDiscriminator
	}
	old.stop()
	nft(t, lab, n1, "delete table inet vtcrash\n")
	lab.nodes[0] = startManager(lab.t, "n1-restarted", func(m *Manager) { m.env.inNS = n1.InNamespace })
	lab.nodes[0].set(lab.peers[0]...)
	for _, p := range lab.peers[0] {
		st := lab.nodes[0].waitStatus(p.Key(), "Up after the restart", isUp)
		if st.LocalDiscriminator == before[p.Key()] {
			t.Errorf("%s: discriminator %d reused after a restart", p.Key(), st.LocalDiscriminator)
		}
		lab.waitRouter(t, 0, p, testnet.BFDUp, agreed300)
	}
}

// testInteropRemoval removes n1's sessions: the routers see them go Down,
// FRR with the remote diagnostic AdministrativelyDown.
func testInteropRemoval(t *testing.T, lab *interopLab) {
	removed := lab.peers[0]
	lab.nodes[0].set()
	for _, p := range removed {
		s := lab.waitRouter(t, 0, p, "Down", func(testnet.BFDSession) error { return nil })
		if lab.remote[p.Remote].Kind() == testnet.FRR && s.RemoteDiag != "administratively down" {
			t.Errorf("FRR's session %s: remote diagnostic %q, want administratively down", p.Key(), s.RemoteDiag)
		}
	}
}

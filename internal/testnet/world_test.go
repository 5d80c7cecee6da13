// This file is an external test so it can use worldtest, which imports
// testnet; the dot import keeps it reading like the package's own code.
package testnet_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	. "github.com/vipd/vipd/internal/testnet"
	"github.com/vipd/vipd/internal/testnet/worldtest"
)

const (
	nodeASN   = 4200000000
	routerASN = 65535
	password  = "s3cret"
	converge  = 30 * time.Second // generous: the machine is shared
)

var (
	n1v4 = addr("10.255.255.11")
	vip4 = netip.MustParsePrefix("192.168.0.16/32")
	vip6 = netip.MustParsePrefix("fda4:5ff2:8477:1755::/128")
)

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

// ecmpSpec is one BIRD and one FRR router, each peering (multihop, MD5)
// with two nodes, and a client.
func ecmpSpec() Spec {
	nodes := []NodeSpec{{Name: "n1", Address: n1v4}, {Name: "n2", Address: addr("10.255.255.12")}}
	var neighbors []Neighbor
	for _, n := range nodes {
		neighbors = append(neighbors, Neighbor{Address: n.Address, ASN: nodeASN, Password: password, Multihop: true})
	}
	return Spec{
		Routers: []RouterSpec{
			{Name: "r1", Kind: BIRD, ASN: routerASN, Address: addr("10.255.255.1"), Neighbors: neighbors},
			{Name: "r2", Kind: FRR, ASN: routerASN, Address: addr("10.255.255.2"), Neighbors: neighbors},
		},
		Nodes:  nodes,
		Client: &NodeSpec{Name: "client", Address: addr("10.255.255.100")},
	}
}

// TestWorldECMP announces one VIP pair from two BIRD stand-ins and checks
// that both router kinds install a 2-way ECMP route, report the BGP
// attributes, and drop a withdrawn nexthop.
func TestWorldECMP(t *testing.T) {
	w := worldtest.New(t, ecmpSpec())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	announcers := map[string]*Process{}
	for _, n := range w.Nodes() {
		var peers []Neighbor
		for _, r := range w.Routers() {
			peers = append(peers, Neighbor{Address: r.PeerAddress(), ASN: routerASN, Password: password, Multihop: true})
		}
		p, err := n.StartAnnouncer(ctx, AnnouncerSpec{
			ASN: nodeASN, Peers: peers, Prefixes: []netip.Prefix{vip4, vip6},
			MED: 100, Communities: []string{"64532:100", "65535:65281"}, LargeCommunities: []string{"4200000000:1:2"},
		})
		if err != nil {
			t.Fatal(err)
		}
		announcers[n.Name()] = p
	}
	n1, n2 := w.Node("n1"), w.Node("n2")
	for _, r := range w.Routers() {
		t.Run(string(r.Kind()), func(t *testing.T) {
			if err := r.WaitEstablished(ctx, converge); err != nil {
				t.Fatal(err)
			}
			checkSessions(ctx, t, r)
			if err := r.WaitFIB(ctx, vip4, []netip.Addr{n1.Addr4(), n2.Addr4()}, converge); err != nil {
				t.Fatal(err)
			}
			if err := r.WaitFIB(ctx, vip6, []netip.Addr{n1.Addr6(), n2.Addr6()}, converge); err != nil {
				t.Fatal(err)
			}
			checkRoutes(ctx, t, r, vip4, []*Node{n1, n2}, (*Node).Addr4)
			checkRoutes(ctx, t, r, vip6, []*Node{n1, n2}, (*Node).Addr6)
			out, err := r.Birdc(ctx, "show", "route", "count")
			switch {
			case r.Kind() == BIRD && (err != nil || !strings.Contains(out, "routes")):
				t.Errorf("Birdc show route count: %q, %v", out, err)
			case r.Kind() != BIRD && err == nil:
				t.Errorf("Birdc on %s answered %q, want an error", r.Kind(), out)
			}
		})
	}
	t.Run("client reaches VIP via router", func(t *testing.T) {
		testClientPath(ctx, t, w)
	})
	if err := announcers["n1"].Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	for _, r := range w.Routers() {
		if err := r.WaitFIB(ctx, vip4, []netip.Addr{n2.Addr4()}, converge); err != nil {
			t.Error(err)
		}
		if err := r.WaitFIB(ctx, vip6, []netip.Addr{n2.Addr6()}, converge); err != nil {
			t.Error(err)
		}
	}
}

func checkSessions(ctx context.Context, t *testing.T, r *Router) {
	t.Helper()
	sessions, err := r.Sessions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(sessions) != len(r.Spec().Neighbors) {
		t.Errorf("%d sessions, want %d: %+v", len(sessions), len(r.Spec().Neighbors), sessions)
	}
	for _, s := range sessions {
		if s.State != Established || time.Since(s.Since) > 5*time.Minute || time.Until(s.Since) > time.Minute {
			t.Errorf("session %+v: want Established with a recent Since", s)
		}
	}
}

// checkRoutes wants one path per node for prefix, with the announcer's
// attributes and the node's address of prefix's family as next hop.
func checkRoutes(ctx context.Context, t *testing.T, r *Router, prefix netip.Prefix, nodes []*Node, nextHop func(*Node) netip.Addr) {
	t.Helper()
	got, err := r.BGPRoutes(ctx, prefix)
	if err != nil {
		t.Fatal(err)
	}
	var want []RouteInfo
	for _, n := range nodes {
		rt := RouteInfo{
			NextHop: nextHop(n), FromPeer: n.Addr4(), MED: 100, ASPath: []uint32{nodeASN},
			Communities: []string{"64532:100", "65535:65281"}, LargeCommunities: []string{"4200000000:1:2"},
		}
		if r.Kind() == BIRD {
			rt.LocalPref = 100 // BIRD's default for a route from an eBGP peer
		}
		want = append(want, rt)
	}
	slices.SortFunc(got, func(a, b RouteInfo) int { return a.FromPeer.Compare(b.FromPeer) })
	bests := 0
	for i := range got {
		if got[i].Best {
			bests++
		}
		got[i].Best = false
	}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("%s BGPRoutes(%s) (-want +got):\n%s", r.Name(), prefix, diff)
	}
	if bests != 1 {
		t.Errorf("%s BGPRoutes(%s): %d best paths, want 1", r.Name(), prefix, bests)
	}
}

// testClientPath binds the VIPs on every node, where a listener answers
// with the node's name, and connects from the client to each VIP through
// the first router's ECMP route.
func testClientPath(ctx context.Context, t *testing.T, w *World) {
	var wg sync.WaitGroup
	defer wg.Wait()
	names := map[string]bool{}
	for _, n := range w.Nodes() {
		names[n.Name()] = true
		for _, p := range []netip.Prefix{vip4, vip6} {
			if _, err := n.Exec(ctx, "ip", "addr", "add", p.String(), "dev", "lo"); err != nil {
				t.Fatal(err)
			}
		}
		l, err := n.Listen("tcp", ":8080")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		wg.Go(func() { serveName(l, n.Name()) })
	}
	for _, p := range []netip.Prefix{vip4, vip6} {
		got, err := fetch(ctx, w.Client(), netip.AddrPortFrom(p.Addr(), 8080).String())
		if err != nil {
			t.Errorf("client to %s: %v", p.Addr(), err)
		} else if !names[got] {
			t.Errorf("client to %s: answer %q, want a node name", p.Addr(), got)
		}
	}
}

// serveName answers every connection with name until l is closed.
func serveName(l net.Listener, name string) {
	for {
		conn, err := l.Accept()
		if err != nil {
			return
		}
		_, _ = conn.Write([]byte(name))
		conn.Close()
	}
}

// fetch connects from h to address and returns all it reads.
func fetch(ctx context.Context, h *Client, address string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := h.DialContext(ctx, "tcp", address)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return "", err
	}
	b, err := io.ReadAll(conn)
	return string(b), err
}

// TestPeerAddress checks Safespring-style peering with an address on the
// router's lo that nodes reach through the router, for both kinds.
func TestPeerAddress(t *testing.T) {
	node := NodeSpec{Name: "n1", Address: addr("10.255.255.11")}
	neighbors := []Neighbor{{Address: node.Address, ASN: 64532, Multihop: true}}
	w := worldtest.New(t, Spec{
		Routers: []RouterSpec{
			{Name: "r1", Kind: BIRD, ASN: 64700, Address: addr("10.255.255.1"), PeerAddress: addr("169.254.169.254"), Neighbors: neighbors},
			{Name: "r2", Kind: FRR, ASN: 64700, Address: addr("10.255.255.2"), PeerAddress: addr("169.254.169.253"), Neighbors: neighbors},
		},
		Nodes: []NodeSpec{node},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	n := w.Node("n1")
	var peers []Neighbor
	for _, r := range w.Routers() {
		peers = append(peers, Neighbor{Address: r.PeerAddress(), ASN: 64700, Multihop: true})
	}
	if _, err := n.StartAnnouncer(ctx, AnnouncerSpec{ASN: 64532, Peers: peers, Prefixes: []netip.Prefix{vip4}}); err != nil {
		t.Fatal(err)
	}
	for _, r := range w.Routers() {
		if err := r.WaitFIB(ctx, vip4, []netip.Addr{n.Addr4()}, converge); err != nil {
			t.Error(err)
		}
	}
	// A restarted router comes back and relearns the route.
	r2 := w.Router("r2")
	if err := r2.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r2.WaitFIB(ctx, vip4, []netip.Addr{n.Addr4()}, converge); err != nil {
		t.Error(err)
	}
}

// TestCloseRemovesEverything checks that Close leaves no namespace, FRR
// run directory, temp dir or process behind, and that a second Close is
// harmless.
func TestCloseRemovesEverything(t *testing.T) {
	spec := ecmpSpec()
	worldtest.SkipUnlessAvailable(t, spec)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	w, err := New(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	procs := w.Processes()
	var namespaces []string
	for _, name := range []string{"lan", "r1", "r2", "n1", "n2", "client"} {
		namespaces = append(namespaces, w.Host(name).Namespace())
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	for _, ns := range namespaces {
		if _, err := os.Stat("/run/netns/" + ns); err == nil {
			t.Errorf("namespace %s still exists", ns)
		}
	}
	for _, path := range []string{w.Dir(), FRRRunDir + "/" + w.Host("r2").Namespace()} {
		if _, err := os.Stat(path); err == nil {
			t.Errorf("%s still exists", path)
		}
	}
	if want := 1 + len(FRRDaemons); len(procs) != want { // bird, and FRR's daemons
		t.Errorf("%d processes, want %d", len(procs), want)
	}
	for _, p := range procs {
		if !p.Exited() {
			t.Errorf("%s (pid %d) still runs", p.Name(), p.PID())
		}
	}
}

// TestFailedNewCleansUp makes New fail halfway, on a namespace that
// already exists, and checks that it removes what it made and leaves the
// namespace it did not make alone.
func TestFailedNewCleansUp(t *testing.T) {
	worldtest.SkipUnlessAvailable(t, Spec{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	prefix := fmt.Sprintf("vt%d-failed", os.Getpid())
	foreign := prefix + "-n2"
	if _, err := Run(ctx, "ip", "netns", "add", foreign); err != nil {
		t.Fatal(err)
	}
	defer Run(context.Background(), "ip", "netns", "delete", foreign)

	_, err := New(ctx, Spec{Prefix: prefix, Nodes: []NodeSpec{
		{Name: "n1", Address: n1v4}, {Name: "n2", Address: addr("10.255.255.12")},
	}})
	if !errors.Is(err, ErrNamespaceExists) || !strings.Contains(err.Error(), foreign) {
		t.Fatalf("New over an existing namespace: %v, want ErrNamespaceExists naming %s", err, foreign)
	}
	for _, ns := range []string{prefix + "-lan", prefix + "-n1"} {
		if _, err := os.Stat("/run/netns/" + ns); err == nil {
			t.Errorf("namespace %s left behind", ns)
		}
	}
	if _, err := os.Stat("/run/netns/" + foreign); err != nil {
		t.Errorf("foreign namespace %s was removed: %v", foreign, err)
	}
	if dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "testnet-"+prefix+"-*")); len(dirs) > 0 {
		t.Errorf("temp dirs left behind: %v", dirs)
	}
}

// TestStartVipd runs a stand-in vipd binary: a script that logs its
// arguments and config, then exits 3 on SIGTERM.
func TestStartVipd(t *testing.T) {
	w := worldtest.New(t, Spec{Nodes: []NodeSpec{{Name: "n1", Address: n1v4}}})
	n := w.Node("n1")
	binary := filepath.Join(n.Dir(), "fake-vipd")
	script := "#!/bin/bash\necho \"args: $*\"\ncat \"$3\"\ntrap 'echo bye; exit 3' TERM\nwhile true; do sleep 0.1; done\n"
	if err := os.WriteFile(binary, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	config := "bgp:\n  asn: 4200000000\n" + n.RuntimeYAML()
	p, err := n.StartVipd(context.Background(), binary, config)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(500 * time.Millisecond); !errors.Is(err, ErrStillRunning) {
		t.Fatalf("Wait on a running process: %v, want ErrStillRunning", err)
	}
	err = WaitFor(context.Background(), 10*time.Second, func(context.Context) error {
		if !strings.Contains(p.Log(), "listen: \"\"") {
			return fmt.Errorf("log so far: %q", p.Log())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"args: run -c " + n.Dir() + "/vipd-", "state_dir: " + n.StateDir(), "socket: " + n.Socket()} {
		if !strings.Contains(p.Log(), want) {
			t.Errorf("log lacks %q:\n%s", want, p.Log())
		}
	}
	if err := p.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if code := p.ExitCode(); code != 3 {
		t.Errorf("exit code %d, want 3; log:\n%s", code, p.Log())
	}
	if err := p.Signal(syscall.SIGTERM); !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("Signal after exit: %v, want os.ErrProcessDone", err)
	}
}

// TestRecordLoad builds a world that keeps a record, loads the record as a
// later program would, and checks that the loaded world queries the same
// router, adopts every process, and that its Close removes it all; the
// builder's own Close after that is harmless.
func TestRecordLoad(t *testing.T) {
	spec := Spec{
		Record: filepath.Join(t.TempDir(), "world.json"),
		Routers: []RouterSpec{{Name: "r1", Kind: BIRD, ASN: routerASN, Address: addr("10.255.255.1"),
			Neighbors: []Neighbor{{Address: n1v4, ASN: nodeASN}}}},
		Nodes: []NodeSpec{{Name: "n1", Address: n1v4}},
	}
	worldtest.SkipUnlessAvailable(t, spec)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	w, err := New(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	sleeper, err := w.Node("n1").StartProcess("sleeper", "sleep", "300")
	if err != nil {
		t.Fatal(err)
	}
	if sleeper.LogPath() != filepath.Join(w.Node("n1").Dir(), "sleeper.log") {
		t.Errorf("log path %s", sleeper.LogPath())
	}

	loaded, err := Load(spec.Record)
	if err != nil {
		t.Fatal(err)
	}
	var pids, loadedPIDs []int
	for _, p := range w.Processes() {
		pids = append(pids, p.PID())
	}
	for _, p := range loaded.Processes() {
		loadedPIDs = append(loadedPIDs, p.PID())
		if p.Exited() {
			t.Errorf("adopted %s (pid %d) counts as exited", p.Name(), p.PID())
		}
	}
	if len(pids) != 2 || !slices.Equal(pids, loadedPIDs) {
		t.Errorf("loaded world's PIDs %v, want the builder's %v (bird and the sleeper)", loadedPIDs, pids)
	}
	sessions, err := loaded.Router("r1").Sessions(ctx)
	if err != nil || len(sessions) != 1 || sessions[0].Neighbor != n1v4 {
		t.Errorf("loaded router's sessions %+v, %v; want one with n1", sessions, err)
	}
	if out, err := loaded.Exec(ctx, "n1", "ip", "-brief", "addr", "show", LANInterface); err != nil || !strings.Contains(out, n1v4.String()) {
		t.Errorf("loaded n1's %s: %q, %v", LANInterface, out, err)
	}

	if err := loaded.Close(); err != nil {
		t.Fatal(err)
	}
	for _, p := range w.Processes() {
		if err := p.Wait(10 * time.Second); errors.Is(err, ErrStillRunning) {
			t.Errorf("%s (pid %d) outlived the loaded world's Close", p.Name(), p.PID())
		}
	}
	for _, name := range []string{"lan", "r1", "n1"} {
		if _, err := os.Stat("/run/netns/" + w.Host(name).Namespace()); err == nil {
			t.Errorf("namespace %s still exists", w.Host(name).Namespace())
		}
	}
	for _, path := range []string{w.Dir(), spec.Record} {
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind: %v", path, err)
		}
	}
	if err := w.Close(); err != nil {
		t.Errorf("the builder's Close after the loaded world's: %v", err)
	}
}

// TestDropTraffic cuts host a off from host b in both address families
// and both directions, and checks that the cut is silent (dials time out
// rather than fail at once), that host c still gets through, and that a
// call without peers heals it; repeats change nothing.
func TestDropTraffic(t *testing.T) {
	w := worldtest.New(t, Spec{Hosts: []NodeSpec{
		{Name: "a", Address: addr("10.255.255.21")},
		{Name: "b", Address: addr("10.255.255.22")},
		{Name: "c", Address: addr("10.255.255.23")},
	}})
	a, b, c := w.Host("a"), w.Host("b"), w.Host("c")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const port = 7000
	for _, h := range []*Host{a, b, c} {
		l, err := h.Listen("tcp", fmt.Sprintf(":%d", port))
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		go func() {
			for {
				conn, err := l.Accept()
				if err != nil {
					return // the test closed it
				}
				conn.Close()
			}
		}()
	}
	// dial connects from one host to another and hangs up; a dropped
	// SYN makes it time out.
	dial := func(from *Host, to netip.Addr) error {
		dialCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		conn, err := from.DialContext(dialCtx, "tcp", netip.AddrPortFrom(to, port).String())
		if err == nil {
			conn.Close()
		}
		return err
	}
	type path struct {
		from *Host
		to   netip.Addr
	}
	cut := []path{{a, b.Addr4()}, {a, b.Addr6()}, {b, a.Addr4()}, {b, a.Addr6()}}
	open := []path{{a, c.Addr4()}, {a, c.Addr6()}, {c, a.Addr4()}, {b, c.Addr4()}}

	for range 2 {
		if err := a.DropTraffic(ctx, b.Addr4(), b.Addr6()); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range cut {
		var netErr net.Error
		if err := dial(p.from, p.to); !errors.As(err, &netErr) || !netErr.Timeout() {
			t.Errorf("%s -> %s while cut: %v, want a timeout", p.from.Name(), p.to, err)
		}
	}
	for _, p := range open {
		if err := dial(p.from, p.to); err != nil {
			t.Errorf("%s -> %s while a and b are cut: %v", p.from.Name(), p.to, err)
		}
	}
	for range 2 {
		if err := a.DropTraffic(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range append(cut, open...) {
		if err := dial(p.from, p.to); err != nil {
			t.Errorf("%s -> %s after healing: %v", p.from.Name(), p.to, err)
		}
	}
}

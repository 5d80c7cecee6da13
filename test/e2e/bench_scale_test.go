package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/packet/mrt"

	"github.com/vipd/vipd/internal/testnet"
)

// scaleRange holds every benchmark's VIPs: 198.18.0.0/15 is set aside for
// benchmarks (RFC 2544) and holds 131072 host routes.
var scaleRange = netip.MustParsePrefix("198.18.0.0/15")

// scaleBound bounds one announcer's trial, and the router's draining after.
const scaleBound = 5 * time.Minute

// TestBenchScale measures how long a router takes to hold all K host
// routes (K = 1k, 10k, 100k) from the moment the announcer starts, and
// the announcer's peak RSS: vipd (one service, K VIPs, no checks,
// bind: false) beside BIRD (static routes) and gobgpd (routes injected
// from an MRT file through its CLI, as operators bulk-load it), one
// after the other on three nodes of the same BIRD router. "table" is all
// K in the router's BGP table (BIRD's master4), polled every 20 ms; BIRD
// writes its kernel FIB in the same pass, and in trials that timed both
// the FIB held all K in the same poll. "up" is the BGP session reaching
// Established, which "table" includes: vipd does not listen (its
// default) and dials after GoBGP's first-connect delay of 1.5-2 s, while
// the BIRD announcer and gobgpd (connect-retry 1 s) also listen on 179,
// where the router dials them every second. Target: vipd no slower than
// BIRD.
func TestBenchScale(t *testing.T) {
	skipUnlessBench(t)
	needPrograms(t, map[string]string{"gobgpd": "gobgpd", "gobgp": "gobgpd"})
	tb := newBenchTable("scale", "K VIPs → all in the router's table, from announcer start (target: vipd no slower than BIRD)")
	tb.version(vipdVersion(t))
	tb.version(routerVersion(testnet.BIRD))
	tb.version(programVersion("gobgpd", "--version"))
	w := birdWorld(t, 3, "")
	r := w.Router("r1")
	announcers := []scaleAnnouncer{
		{name: "vipd", node: w.Node("n1"), start: startScaleVipd},
		{name: "bird", node: w.Node("n2"), start: startScaleBird},
		{name: "gobgpd", node: w.Node("n3"), start: startScaleGoBGP},
	}
	for _, k := range []struct{ count, trials int }{{1000, 5}, {10000, 5}, {100000, 3}} {
		t.Run(fmt.Sprintf("%dk", k.count/1000), func(t *testing.T) {
			prefixes := scalePrefixes(k.count)
			results := make([]scaleResults, len(announcers))
			for range k.trials {
				for i, a := range announcers {
					results[i].add(scaleTrial(t, r, a, prefixes))
				}
			}
			for i, a := range announcers {
				tb.Rows = append(tb.Rows, results[i].row(fmt.Sprintf("%s, %dk VIPs", a.name, k.count/1000), r))
			}
		})
	}
	tb.report(t)
}

// scaleAnnouncer is one program that announces the VIPs from its node.
type scaleAnnouncer struct {
	name string
	node *testnet.Node
	// start runs the announcer, announcing prefixes to r, and returns its
	// PID (for its peak RSS) and a function that stops it, which may be
	// called more than once.
	start func(t *testing.T, node *testnet.Node, r *testnet.Router, prefixes []netip.Prefix) (pid int, stop func() error)
}

// stopProcess is the stop function of an announcer that is one process.
func stopProcess(p *testnet.Process) func() error {
	return func() error { return p.Stop(stopTimeout) }
}

// scaleTimes is one trial's outcome.
type scaleTimes struct {
	up, table time.Duration
	peakRSS   float64
}

type scaleResults struct {
	up, table []time.Duration
	rss       []float64
}

func (s *scaleResults) add(t scaleTimes) {
	s.up, s.table = append(s.up, t.up), append(s.table, t.table)
	s.rss = append(s.rss, t.peakRSS)
}

func (s *scaleResults) row(setup string, r *testnet.Router) benchRow {
	return benchRow{Setup: setup, Router: string(r.Kind()), Metrics: []metric{
		timeMetric("up", s.up), timeMetric("table", s.table), newMetric("peak rss", unitBytes, s.rss),
	}}
}

// scaleTrial waits until the router holds none of the VIPs, starts a,
// and times the router's progress by polling it every 20 ms.
func scaleTrial(t *testing.T, r *testnet.Router, a scaleAnnouncer, prefixes []netip.Prefix) scaleTimes {
	t.Helper()
	waitRouterDrained(t, r)
	var got scaleTimes
	start := time.Now()
	pid, stop := a.start(t, a.node, r, prefixes)
	t.Cleanup(func() { // if the trial fails; else stopped below
		if err := stop(); err != nil {
			t.Log(err)
		}
	})
	want := len(prefixes)
	err := poll(t.Context(), scaleBound, 20*time.Millisecond, func(ctx context.Context) error {
		st, err := birdProtocols(ctx, r)
		if err != nil {
			return err
		}
		peer, ok := st.peers[a.node.Addr4()]
		if !ok {
			return fmt.Errorf("router has no session with %s", a.node.Addr4())
		}
		since := time.Since(start)
		if got.up == 0 && peer.state == testnet.Established {
			got.up = since
		}
		if got.table == 0 && peer.imported >= want {
			got.table = since
		}
		if got.table == 0 {
			return fmt.Errorf("%s: %d of %d routes in the table", a.name, peer.imported, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got.peakRSS = procStatus(t, pid, "VmHWM")
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	return got
}

// waitRouterDrained waits until no BGP neighbour has routes in the
// router's table and its kernel FIB holds none of them.
func waitRouterDrained(t *testing.T, r *testnet.Router) {
	t.Helper()
	err := poll(t.Context(), scaleBound, 200*time.Millisecond, func(ctx context.Context) error {
		st, err := birdProtocols(ctx, r)
		if err != nil {
			return err
		}
		for a, p := range st.peers {
			if p.imported > 0 {
				return fmt.Errorf("%d routes from %s", p.imported, a)
			}
		}
		if st.kernelExported > 0 {
			return fmt.Errorf("%d routes in the FIB", st.kernelExported)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// scalePrefixes returns the first n host routes of scaleRange.
func scalePrefixes(n int) []netip.Prefix {
	out := make([]netip.Prefix, 0, n)
	a := scaleRange.Addr()
	for range n {
		out = append(out, netip.PrefixFrom(a, 32))
		a = a.Next()
	}
	return out
}

func startScaleVipd(t *testing.T, node *testnet.Node, r *testnet.Router, prefixes []netip.Prefix) (int, func() error) {
	var vips strings.Builder
	for i, p := range prefixes {
		if i > 0 {
			vips.WriteString(", ")
		}
		vips.WriteString(p.Addr().String())
	}
	p := startBenchVipd(t, node, fmt.Sprintf(`bgp:
  asn: 4200000000
  allowed_prefixes: [%s]
  peers:
%s
services:
  - name: scale
    bind: false
    vips: [%s]
`, scaleRange, peersYAML(peer{"r1", r.Addr4(), 65535, ""}), vips.String()))
	return p.PID(), stopProcess(p)
}

func startScaleBird(t *testing.T, node *testnet.Node, r *testnet.Router, prefixes []netip.Prefix) (int, func() error) {
	p, err := node.StartAnnouncer(t.Context(), testnet.AnnouncerSpec{
		ASN:      4200000000,
		Peers:    []testnet.Neighbor{{Address: r.Addr4(), ASN: r.ASN(), Multihop: true}},
		Prefixes: prefixes,
	})
	if err != nil {
		t.Fatal(err)
	}
	return p.PID(), stopProcess(p)
}

// startScaleGoBGP runs gobgpd with the router as its neighbour, waits for
// its API and loads prefixes into its global RIB from an MRT file with
// `gobgp mrt inject global`, the CLI's bulk load. gobgp 3.10's inject
// exits as soon as it has sent the last path, and gobgpd then loses the
// tail of the stream (half of 1000 paths here), so the file goes in on
// the CLI's stdin, which stays open until the announcer is stopped.
func startScaleGoBGP(t *testing.T, node *testnet.Node, r *testnet.Router, prefixes []netip.Prefix) (int, func() error) {
	t.Helper()
	routes := filepath.Join(node.Dir(), fmt.Sprintf("routes-%d.mrt", len(prefixes)))
	if _, err := os.Stat(routes); errors.Is(err, os.ErrNotExist) {
		// Written before the clock starts counting, so once per K.
		if err := writeMRT(routes, node.Addr4(), prefixes); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(routes)
	if err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(node.Dir(), "gobgpd.toml")
	err = os.WriteFile(conf, fmt.Appendf(nil, `[global.config]
  as = 4200000000
  router-id = "%[1]s"
[[neighbors]]
  [neighbors.config]
    neighbor-address = "%[2]s"
    peer-as = %[3]d
  [neighbors.timers.config]
    connect-retry = 1
    hold-time = 9
    keepalive-interval = 3
  [neighbors.ebgp-multihop.config]
    enabled = true
    multihop-ttl = 255
  [neighbors.transport.config]
    local-address = "%[1]s"
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
`, node.Addr4(), r.Addr4(), r.ASN()), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	// The API listens on the node's loopback, in the node's namespace.
	p, err := node.StartProcess("gobgpd", "gobgpd", "-f", conf, "-t", "toml", "-p", "--pprof-disable", "--api-hosts", "127.0.0.1:50051")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s log:\n%s", p.Name(), p.Log())
		}
	})
	// Polled finely: the clock is running.
	err = poll(t.Context(), convergeTimeout, 20*time.Millisecond, func(ctx context.Context) error {
		if p.Exited() {
			return fmt.Errorf("gobgpd exited:\n%s", p.Log())
		}
		_, err := node.Exec(ctx, "gobgp", "-u", "127.0.0.1", "global")
		return err
	})
	if err != nil {
		p.Stop(stopTimeout)
		t.Fatal(err)
	}
	endInject := injectMRT(t, node, data)
	return p.PID(), sync.OnceValue(func() error {
		if t.Failed() {
			ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
			defer cancel()
			rib, err1 := node.Exec(ctx, "gobgp", "-u", "127.0.0.1", "global", "rib", "summary")
			nbr, err2 := node.Exec(ctx, "gobgp", "-u", "127.0.0.1", "neighbor")
			t.Logf("gobgpd's RIB and neighbours: %v\n%s%s", errors.Join(err1, err2), rib, nbr)
		}
		return errors.Join(endInject(), p.Stop(stopTimeout))
	})
}

// injectMRT starts `gobgp mrt inject global` in node's namespace with data
// on its stdin, and returns a function that closes its stdin and waits
// for it to exit (killing it after stopTimeout).
func injectMRT(t *testing.T, node *testnet.Node, data []byte) func() error {
	t.Helper()
	var out bytes.Buffer
	cli := exec.Command("ip", "netns", "exec", node.Namespace(), "gobgp", "-u", "127.0.0.1", "mrt", "inject", "global", "/dev/stdin")
	cli.Stdout, cli.Stderr = &out, &out
	stdin, err := cli.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cli.Start(); err != nil {
		t.Fatal(err)
	}
	go stdin.Write(data) // fails only once stdin is closed, when it no longer matters
	return func() error {
		stdin.Close()
		done := make(chan error, 1)
		go func() { done <- cli.Wait() }()
		select {
		case err = <-done:
		case <-time.After(stopTimeout):
			cli.Process.Kill()
			err = fmt.Errorf("still running after %v: %w", stopTimeout, <-done)
		}
		if err != nil {
			return fmt.Errorf("gobgp mrt inject: %w\n%s", err, out.Bytes())
		}
		return nil
	}
}

// writeMRT writes prefixes as an MRT TABLE_DUMPv2 RIB with next hop
// nexthop and an empty AS path, which `gobgp mrt inject` loads.
func writeMRT(path string, nexthop netip.Addr, prefixes []netip.Prefix) error {
	now := time.Now()
	index, err := mrt.NewMRTMessage(now, mrt.TABLE_DUMPv2, mrt.PEER_INDEX_TABLE,
		mrt.NewPeerIndexTable(nexthop, "", []*mrt.Peer{mrt.NewPeer(nexthop, nexthop, 4200000000, true)}))
	if err != nil {
		return err
	}
	data, err := index.Serialize()
	if err != nil {
		return err
	}
	nh, err := bgp.NewPathAttributeNextHop(nexthop)
	if err != nil {
		return err
	}
	attrs := []bgp.PathAttributeInterface{bgp.NewPathAttributeOrigin(bgp.BGP_ORIGIN_ATTR_TYPE_IGP), bgp.NewPathAttributeAsPath(nil), nh}
	for i, p := range prefixes {
		nlri, err := bgp.NewIPAddrPrefix(p)
		if err != nil {
			return err
		}
		entry := mrt.NewRibEntry(0, uint32(now.Unix()), 0, attrs, false)
		m, err := mrt.NewMRTMessage(now, mrt.TABLE_DUMPv2, mrt.RIB_IPV4_UNICAST, mrt.NewRib(uint32(i), bgp.RF_IPv4_UC, nlri, []*mrt.RibEntry{entry}))
		if err != nil {
			return err
		}
		b, err := m.Serialize()
		if err != nil {
			return fmt.Errorf("mrt %s: %w", p, err)
		}
		data = append(data, b...)
	}
	return os.WriteFile(path, data, 0o644)
}

// birdStatus is what the scale benchmark reads of a BIRD router's
// `show protocols all`: each BGP neighbour's state and IPv4 routes in the
// table, and how many IPv4 routes it exported to the kernel.
type birdStatus struct {
	peers          map[netip.Addr]birdPeer
	kernelExported int
}

type birdPeer struct {
	state    string
	imported int
}

// birdProtocols asks router r's BIRD for its protocols, with route counts.
func birdProtocols(ctx context.Context, r *testnet.Router) (birdStatus, error) {
	out, err := r.Birdc(ctx, "show", "protocols", "all")
	if err != nil {
		return birdStatus{}, err
	}
	return parseBirdProtocolsAll(out)
}

// parseBirdProtocolsAll reads BIRD 2's `show protocols all`: a block per
// protocol whose first line starts with its name, channel sections
// ("  Channel ipv4") and their "Routes: N imported, M exported, …" lines.
func parseBirdProtocolsAll(out string) (birdStatus, error) {
	st := birdStatus{peers: map[netip.Addr]birdPeer{}}
	var proto, kind, bgpState, channel string
	var neighbor netip.Addr
	imported := 0
	flush := func() {
		if kind == "BGP" && neighbor.IsValid() {
			st.peers[neighbor] = birdPeer{state: bgpState, imported: imported}
		}
		proto, kind, bgpState, channel, neighbor, imported = "", "", "", "", netip.Addr{}, 0
	}
	for line := range strings.Lines(out) {
		fields := strings.Fields(line)
		switch {
		case len(fields) == 0:
			flush()
		case line[0] != ' ' && len(fields) >= 2 && fields[0] != "BIRD" && fields[0] != "Name":
			flush()
			proto, kind = fields[0], fields[1]
		case proto == "":
		case fields[0] == "BGP" && len(fields) == 3 && fields[1] == "state:":
			bgpState = fields[2]
		case fields[0] == "Neighbor" && len(fields) == 3 && fields[1] == "address:":
			a, err := netip.ParseAddr(fields[2])
			if err != nil {
				return st, fmt.Errorf("protocol %s: %w", proto, err)
			}
			neighbor = a
		case fields[0] == "Channel" && len(fields) == 2:
			channel = fields[1]
		case fields[0] == "Routes:" && channel == "ipv4":
			var imp, exp int
			if _, err := fmt.Sscanf(strings.Join(fields[1:], " "), "%d imported, %d exported", &imp, &exp); err != nil {
				return st, fmt.Errorf("protocol %s: %q: %w", proto, line, err)
			}
			imported = imp
			if kind == "Kernel" {
				st.kernelExported = exp
			}
		}
	}
	flush()
	return st, nil
}

// TestParseBirdProtocolsAll reads a sample of BIRD 2.0.12's output, cut
// short: an established peer with IPv4 and IPv6 routes, a peer that is
// down (its channels show no routes) and the kernel protocol.
func TestParseBirdProtocolsAll(t *testing.T) {
	const sample = `BIRD 2.0.12 ready.
Name       Proto      Table      State  Since         Info
device1    Device     ---        up     2026-11-22 22:17:03  

kernel4    Kernel     master4    up     2026-11-22 22:17:03  
  Channel ipv4
    State:          UP
    Table:          master4
    Routes:         0 imported, 99999 exported, 0 preferred
    Route change stats:     received   rejected   filtered    ignored   accepted
      Import updates:              0          0          0          0          0

peer1      BGP        ---        up     2026-11-22 22:22:25  Established   
  BGP state:          Established
    Neighbor address: 10.255.255.11
    Neighbor AS:      4200000000
    Neighbor capabilities
      Hostname: vm
  Channel ipv4
    State:          UP
    Routes:         100000 imported, 0 exported, 100000 preferred
  Channel ipv6
    State:          UP
    Routes:         7 imported, 0 exported, 7 preferred

peer2      BGP        ---        start  2026-11-22 22:22:25  Active        Socket: Connection refused
  BGP state:          Active
    Neighbor address: 10.255.255.12
    Last error:       Socket: Connection refused
  Channel ipv4
    State:          DOWN
`
	got, err := parseBirdProtocolsAll(sample)
	if err != nil {
		t.Fatal(err)
	}
	want := birdStatus{
		peers: map[netip.Addr]birdPeer{
			addr("10.255.255.11"): {state: testnet.Established, imported: 100000},
			addr("10.255.255.12"): {state: "Active"},
		},
		kernelExported: 99999,
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(birdStatus{}, birdPeer{})); diff != "" {
		t.Errorf("parse (-want +got):\n%s", diff)
	}
	if _, err := parseBirdProtocolsAll("peer1 BGP --- up\n  Channel ipv4\n    Routes: many imported\n"); err == nil {
		t.Error("a Routes line without counts parsed")
	}
}

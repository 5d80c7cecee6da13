// Package lab is `vipd lab`: vipd doing its job on one machine, without a
// provider account. It builds the world the end-to-end tests build
// (internal/testnet): a BIRD 2 router that installs ECMP routes and hashes
// flows on L4 ports, three nodes that run the real vipd binary and a demo
// HTTP service on one IPv4 and one IPv6 VIP, and a client. Health checks
// and BFD (300 ms × 3) are on, so Fail, Kill and Heal show how fast the
// router's FIB follows.
//
// Up leaves the lab running: its processes run in their own sessions and
// the world keeps its record in Options.StateDir, from which Open loads it
// for the later commands and Down removes everything it made.
package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/vipd/vipd/internal/testnet"
)

// Defaults of Options.
const (
	DefaultPrefix   = "vlab"
	DefaultStateDir = "/run/vipd-lab"
)

// The lab's world.
const (
	routerName  = "r1"
	clientName  = "client"
	routerASN   = 65535
	nodeASN     = 4200000000
	serviceName = "demo"
	servicePort = 80
)

var (
	routerAddr = netip.MustParseAddr("10.255.255.1")
	clientAddr = netip.MustParseAddr("10.255.255.100")
	nodeNames  = []string{"n1", "n2", "n3"}

	// VIP4 and VIP6 are the demo service's addresses, inside the
	// documentation ranges and the nodes' allowed_prefixes.
	VIP4     = netip.MustParseAddr("203.0.113.10")
	VIP6     = netip.MustParseAddr("2001:db8:10::10")
	allowed4 = netip.MustParsePrefix("203.0.113.0/24")
	allowed6 = netip.MustParsePrefix("2001:db8:10::/64")
)

// Timeouts: generous, for a busy machine.
const (
	convergeTimeout = 90 * time.Second
	changeTimeout   = 60 * time.Second
)

var (
	// ErrNotRoot is returned by every command run without root.
	ErrNotRoot = errors.New("vipd lab needs root: it creates network namespaces")
	// ErrExists is returned by Up when the lab's record exists.
	ErrExists = errors.New("the lab is up already")
	// ErrNoLab is returned by Open when there is no lab's record.
	ErrNoLab = errors.New("no lab is up")
)

// euid is os.Geteuid; tests replace it.
var euid = os.Geteuid

// Options says which lab and how to talk about it.
type Options struct {
	Prefix   string // namespace name prefix; default DefaultPrefix
	StateDir string // holds the lab's record, PREFIX.json; default DefaultStateDir
	// Binary is the vipd the nodes run, as `vipd run` and as the demo
	// server `vipd lab serve`; Up only.
	Binary string
	// Progress, if set, shows what Up waits for: one line redrawn on a
	// terminal (TTY), a line per change otherwise.
	Progress io.Writer
	TTY      bool
	// Topology is the world Up builds: TopologySingle (the default) or
	// TopologyMultirack. Open recognises it from the record.
	Topology string
}

func (o Options) withDefaults() Options {
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if o.StateDir == "" {
		o.StateDir = DefaultStateDir
	}
	return o
}

// record is where the lab's world keeps its record.
func (o Options) record() string { return filepath.Join(o.StateDir, o.Prefix+".json") }

// Lab is a running lab.
type Lab struct {
	opts  Options
	world *testnet.World
	topo  topology
}

// spec is the lab's world: single-hop BGP with BFD between the router and
// each node, as a provider's router on the nodes' LAN would run it.
func spec(prefix, record string) testnet.Spec {
	var nodes []testnet.NodeSpec
	var neighbors []testnet.Neighbor
	for i, name := range nodeNames {
		addr := netip.AddrFrom4([4]byte{10, 255, 255, byte(11 + i)})
		nodes = append(nodes, testnet.NodeSpec{Name: name, Address: addr})
		neighbors = append(neighbors, testnet.Neighbor{Address: addr, ASN: nodeASN, BFD: &testnet.BFDSpec{}})
	}
	return testnet.Spec{
		Prefix: prefix,
		Record: record,
		Routers: []testnet.RouterSpec{{
			Name: routerName, Kind: testnet.BIRD, ASN: routerASN, Address: routerAddr, Neighbors: neighbors,
		}},
		Nodes:  nodes,
		Client: &testnet.NodeSpec{Name: clientName, Address: clientAddr},
	}
}

// failFile is the file whose existence makes a node's demo server fail
// its health check.
func failFile(n *testnet.Node) string { return filepath.Join(n.Dir(), "fail") }

// Up builds the lab, starts vipd and the demo server on every node, and
// waits until the router routes both VIPs to all three nodes. On failure
// it removes what it made and the error carries the tails of the logs.
func Up(ctx context.Context, opts Options) (*Lab, error) {
	opts = opts.withDefaults()
	if euid() != 0 {
		return nil, ErrNotRoot
	}
	if opts.Binary == "" {
		return nil, errors.New("lab: no vipd binary to run on the nodes")
	}
	topo, err := newTopology(opts.Topology)
	if err != nil {
		return nil, err
	}
	if err := claim(opts); err != nil {
		return nil, err
	}
	s := topo.worldSpec(opts.Prefix, opts.record())
	if err := missing(s); err != nil {
		return nil, errors.Join(err, removeIfExists(opts.record()))
	}
	if opts.Progress != nil {
		var routers []string
		for _, r := range topo.layout.Routers {
			routers = append(routers, r.Name)
		}
		fmt.Fprintf(opts.Progress, "building lab %s (%s): BIRD routers %s, vipd nodes %s, %s\n",
			opts.Prefix, topo.name, strings.Join(routers, " "), strings.Join(nodeNames, " "), clientName)
	}
	w, err := testnet.New(ctx, s)
	if err != nil {
		if errors.Is(err, testnet.ErrNamespaceExists) {
			err = fmt.Errorf("%w\nanother lab or program uses the prefix %q: choose another with --prefix, or delete its namespaces (ip netns delete NAME) if they are leftovers", err, opts.Prefix)
		}
		// New removes the record with the rest, unless it failed before writing it.
		return nil, errors.Join(err, removeIfExists(opts.record()))
	}
	l := &Lab{opts: opts, world: w, topo: topo}
	if err := l.start(ctx); err != nil {
		err = fmt.Errorf("lab %s: %w\n\nlast lines of its logs:\n%s", opts.Prefix, err, w.LogTails(15))
		return nil, errors.Join(err, w.Close())
	}
	return l, nil
}

// claim creates the lab's record file, empty, so that of two Ups only
// one proceeds; the world then writes its record into it.
func claim(opts Options) error {
	if err := os.MkdirAll(opts.StateDir, 0o755); err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	f, err := os.OpenFile(opts.record(), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%w (lab %q, record %s): `vipd lab status` shows it, `vipd lab down` removes it",
			ErrExists, opts.Prefix, opts.record())
	}
	if err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	return f.Close()
}

// missing says which program the lab needs and lacks.
func missing(s testnet.Spec) error {
	why := testnet.Missing(s)
	if why == "" {
		if _, err := exec.LookPath("nft"); err != nil {
			why = "needs nft: " + err.Error()
		}
	}
	if why != "" {
		return fmt.Errorf("lab: %s (`make demo` installs bird2 and nftables with apt)", why)
	}
	return nil
}

func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// start runs the demo server and vipd on every node and waits for the
// router's routes.
func (l *Lab) start(ctx context.Context) error {
	for _, n := range l.world.Nodes() {
		_, err := n.StartProcess("serve", l.opts.Binary, "lab", "serve",
			"--name", n.Name(), "--listen", fmt.Sprintf("[::]:%d", servicePort), "--fail-file", failFile(n))
		if err != nil {
			return err
		}
		if _, err := n.StartVipd(ctx, l.opts.Binary, l.topo.config(n.Name())+n.RuntimeYAML()); err != nil {
			return err
		}
	}
	return l.waitConverged(ctx)
}

// waitConverged waits until every node's BGP and BFD sessions with its
// peer router are up and its edge router routes both VIPs to it; in the
// multirack world, also until the core routes them to every ToR.
func (l *Lab) waitConverged(ctx context.Context) error {
	p := newProgress(l.opts.Progress, l.opts.TTY)
	err := testnet.WaitFor(ctx, convergeTimeout, func(ctx context.Context) error {
		c, err := l.convergence(ctx)
		if err != nil {
			return err
		}
		p.update("converging: " + c.String())
		if !c.done() {
			return errors.New(c.String())
		}
		return nil
	})
	p.end()
	if err != nil {
		return fmt.Errorf("the lab did not converge: %w", err)
	}
	return nil
}

// convergence counts what is up of what the lab waits for.
type convergence struct {
	nodes, bgpUp, bfdUp, via4, via6 int
	racks, core4, core6             int
}

// String is short enough for one line of a terminal, where it is redrawn.
func (c convergence) String() string {
	s := fmt.Sprintf("BGP %d/%d up, BFD %d/%d up, nexthops IPv4 %d/%d, IPv6 %d/%d",
		c.bgpUp, c.nodes, c.bfdUp, c.nodes, c.via4, c.nodes, c.via6, c.nodes)
	if c.racks > 0 {
		s += fmt.Sprintf(", core %d/%d, %d/%d", c.core4, c.racks, c.core6, c.racks)
	}
	return s
}

func (c convergence) done() bool {
	return c.bgpUp == c.nodes && c.bfdUp == c.nodes && c.via4 == c.nodes && c.via6 == c.nodes &&
		c.core4 == c.racks && c.core6 == c.racks
}

func (l *Lab) convergence(ctx context.Context) (convergence, error) {
	c := convergence{nodes: len(l.world.Nodes()), racks: l.topo.racks()}
	for _, n := range l.world.Nodes() {
		r := l.peerRouter(n)
		sessions, err := r.Sessions(ctx)
		if err != nil {
			return c, err
		}
		bfd, err := r.BFDSessions(ctx)
		if err != nil {
			return c, err
		}
		c.bgpUp += countFunc(sessions, func(s testnet.Session) bool { return s.Neighbor == n.Addr4() && s.State == testnet.Established })
		c.bfdUp += countFunc(bfd, func(s testnet.BFDSession) bool { return s.Neighbor == n.Addr4() && s.State == testnet.BFDUp })
		for _, vip := range vips {
			has, err := l.hasNexthop(ctx, n, vip)
			if err != nil {
				return c, err
			}
			if has && vip.Is4() {
				c.via4++
			} else if has {
				c.via6++
			}
		}
	}
	if c.racks > 0 {
		via4, err := l.nexthops(ctx, VIP4)
		if err != nil {
			return c, err
		}
		via6, err := l.nexthops(ctx, VIP6)
		if err != nil {
			return c, err
		}
		c.core4, c.core6 = len(via4), len(via6)
	}
	return c, nil
}

func countFunc[T any](s []T, f func(T) bool) int {
	n := 0
	for _, v := range s {
		if f(v) {
			n++
		}
	}
	return n
}

// Open loads the running lab from its record.
func Open(opts Options) (*Lab, error) {
	opts = opts.withDefaults()
	if euid() != 0 {
		return nil, ErrNotRoot
	}
	w, err := testnet.Load(opts.record())
	switch {
	case errors.Is(err, os.ErrNotExist):
		err = fmt.Errorf("%w (lab %q: no record %s); `vipd lab up` builds it", ErrNoLab, opts.Prefix, opts.record())
		if left := leftovers(opts.Prefix); len(left) > 0 {
			err = fmt.Errorf("%w\nbut these namespaces carry its prefix: %s (remove leftovers with ip netns delete NAME)", err, strings.Join(left, " "))
		}
		return nil, err
	case errors.Is(err, testnet.ErrBadRecord):
		return nil, fmt.Errorf("%w\nthe lab's record is damaged: remove %s, then any namespaces %s-* (ip netns delete NAME) and processes it left", err, opts.record(), opts.Prefix)
	case err != nil:
		return nil, err
	}
	return &Lab{opts: opts, world: w, topo: topologyOf(w)}, nil
}

// leftovers lists the namespaces named like the lab's.
func leftovers(prefix string) []string {
	entries, _ := os.ReadDir("/run/netns") // none if it is missing
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix+"-") {
			out = append(out, e.Name())
		}
	}
	return out
}

// Down stops every process of the lab and removes its namespaces, files
// and record.
func (l *Lab) Down() error {
	if err := l.world.Close(); err != nil {
		return fmt.Errorf("lab %s: down: %w", l.opts.Prefix, err)
	}
	// Up made the state directory; the last lab's down takes it away.
	// Remove refuses a directory that still holds another lab's record.
	if err := os.Remove(l.opts.StateDir); err != nil && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, syscall.ENOTEMPTY) && !errors.Is(err, syscall.EEXIST) {
		return fmt.Errorf("lab %s: down: %w", l.opts.Prefix, err)
	}
	return nil
}

// Prefix is the lab's namespace name prefix.
func (l *Lab) Prefix() string { return l.opts.Prefix }

// router is the router nearest the client: the single router, or the core.
func (l *Lab) router() *testnet.Router { return l.world.Router(l.topo.top()) }

// edgeRouter is the router that routes the VIPs to node n.
func (l *Lab) edgeRouter(n *testnet.Node) *testnet.Router {
	return l.world.Router(l.topo.edge(n.Name()))
}

// peerRouter is the router node n's vipd peers with.
func (l *Lab) peerRouter(n *testnet.Node) *testnet.Router {
	return l.world.Router(l.topo.peer(n.Name()))
}

// node returns the node called name, or an error that lists the nodes.
func (l *Lab) node(name string) (*testnet.Node, error) {
	if n := l.world.Node(name); n != nil {
		return n, nil
	}
	return nil, fmt.Errorf("lab %s has no node %q: its nodes are %s", l.opts.Prefix, name, strings.Join(nodeNames, ", "))
}

// nexthops returns the kernel nexthops for vip of the router nearest the
// client.
func (l *Lab) nexthops(ctx context.Context, vip netip.Addr) ([]netip.Addr, error) {
	return l.router().FIB(ctx, netip.PrefixFrom(vip, vip.BitLen()))
}

// nodeAddr is node n's address of vip's family: its nexthop for vip.
func nodeAddr(n *testnet.Node, vip netip.Addr) netip.Addr {
	if vip.Is4() {
		return n.Addr4()
	}
	return n.Addr6()
}

// vips are the demo service's addresses in the order the lab shows them.
var vips = []netip.Addr{VIP4, VIP6}

// hasNexthop reports whether n's edge router routes vip via node n.
func (l *Lab) hasNexthop(ctx context.Context, n *testnet.Node, vip netip.Addr) (bool, error) {
	hops, err := l.edgeRouter(n).FIB(ctx, netip.PrefixFrom(vip, vip.BitLen()))
	return slices.Contains(hops, nodeAddr(n, vip)), err
}

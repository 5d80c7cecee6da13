package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/vipd/vipd/internal/api"
	"github.com/vipd/vipd/internal/testnet"
	"github.com/vipd/vipd/internal/testnet/worldtest"
)

const (
	dataplaneTrials = 5
	dataplaneWindow = 3 * time.Second // one trial's traffic
	dataplaneConns  = 8               // parallel keep-alive connections or streams
	disruptionFlows = 4000
	disruptionHosts = 10
	echoPorts       = 10   // UDP echo ports per backend host: up to 100 backends
	bulkPort        = 9000 // backends stream zeros on it
	sinkPort        = 9001 // backends read and discard what arrives on it
	echoPort        = 5300 // backends answer a UDP datagram with their name and port, on echoPorts ports from here
)

// TestBenchDataPlane measures the nftables data plane and the XDP one
// (mode dsr) beside the direct path: requests per second (keep-alive
// HTTP, like wrk), throughput from the backends to the client (download)
// and from the client to the backends (upload), through the load
// balancer's address to three backends, and straight to one backend.
// Targets: at least 0.8 of direct for nftables, 0.95 for XDP.
//
// The direct path is shorter (client → backend on the LAN; through the
// address it is client → router → vipd node → backend), and the traffic's
// both ends run in this test process: the ratio is what counts. In mode
// dsr the backends answer the client directly, so a download crosses the
// node only with its ACKs; the upload sends every byte through the XDP
// program. A row through the router alone (to an address of b1 that the
// router routes to it) shows what the extra hop costs, without vipd.
//
// The nftables load balancers are on n1, the dsr ones on n2: on veth, an
// XDP program on a node's interface makes every packet to it go through
// the XDP path, which costs its other traffic (a nat download through n1
// fell from 20 to 1.4 Gbit/s here), where a physical NIC runs XDP before
// its usual receive path. n2's LAN port passes XDP frames on, and the
// client fills its own checksums (see testnet.FillChecksums) for every
// row alike.
func TestBenchDataPlane(t *testing.T) {
	skipUnlessBench(t)
	tb := newBenchTable("dataplane", "data plane: through a vipd load balancer vs straight to one backend (target ≥ 0.8 of direct; XDP ≥ 0.95)")
	tb.version(vipdVersion(t))
	tb.version(routerVersion(testnet.BIRD))
	tb.version(programVersion("nft", "--version"))

	w, r1, n1, c1 := benchLBWorld(t, 2, 3)
	n2 := w.Node("n2")
	if err := w.PassXDPOnLAN(n2.Name()); err != nil {
		t.Fatal(err)
	}
	if err := w.FillChecksums(c1.Name()); err != nil {
		t.Fatal(err)
	}
	routed := routeThroughRouter(t, w)

	backends := w.Hosts()[:3]
	nat := []api.LoadBalancer{
		createBenchLB(t, n1, "web", "nat", 80, 8080, backends),
		createBenchLB(t, n1, "bulk", "nat", bulkPort, bulkPort, backends),
		createBenchLB(t, n1, "sink", "nat", sinkPort, sinkPort, backends),
	}
	// In mode dsr a backend serves the load balancer's own port, and
	// holds its address.
	// Addresses from the top of the pool: n1 hands out from the bottom.
	dsr := []api.LoadBalancer{
		createBenchDSR(t, n2, "dsr-web", addr("198.51.100.13"), 8080, backends),
		createBenchDSR(t, n2, "dsr-bulk", addr("198.51.100.14"), bulkPort, backends),
		createBenchDSR(t, n2, "dsr-sink", addr("198.51.100.15"), sinkPort, backends),
	}
	for _, l := range dsr {
		for _, h := range backends {
			holdDSRAddress(t, h, netip.MustParseAddr(l.EIP))
		}
	}
	for _, l := range nat {
		waitFIB(t, r1, netip.PrefixFrom(netip.MustParseAddr(l.EIP), 32), n1.Addr4())
	}
	for _, l := range dsr {
		waitFIB(t, r1, netip.PrefixFrom(netip.MustParseAddr(l.EIP), 32), n2.Addr4())
	}
	via := func(l api.LoadBalancer) netip.AddrPort { return netip.AddrPortFrom(netip.MustParseAddr(l.EIP), l.Port) }
	b1 := w.Hosts()[0].Addr4()
	paths := []struct {
		setup           string
		web, bulk, sink netip.AddrPort
	}{
		{"straight to one backend", netip.AddrPortFrom(b1, 8080), netip.AddrPortFrom(b1, bulkPort), netip.AddrPortFrom(b1, sinkPort)},
		{"through the router to one backend", netip.AddrPortFrom(routed, 8080), netip.AddrPortFrom(routed, bulkPort), netip.AddrPortFrom(routed, sinkPort)},
		{"vipd nftables nat, 3 backends", via(nat[0]), via(nat[1]), via(nat[2])},
		{"vipd xdp dsr, 3 backends", via(dsr[0]), via(dsr[1]), via(dsr[2])},
	}
	rps := make([][]float64, len(paths))
	down := make([][]float64, len(paths))
	up := make([][]float64, len(paths))
	for range dataplaneTrials { // interleaved, so load drift hits all alike
		for i, p := range paths {
			rps[i] = append(rps[i], requestRate(t, c1, p.web))
			down[i] = append(down[i], throughput(t, c1, p.bulk))
			up[i] = append(up[i], upload(t, c1, p.sink))
		}
	}
	for i, p := range paths {
		tb.Rows = append(tb.Rows, benchRow{Setup: p.setup, Router: "bird", Metrics: []metric{
			newMetric("requests", unitRate, rps[i]),
			newMetric("throughput", unitBitRate, down[i]),
			newMetric("upload", unitBitRate, up[i]),
		}})
	}
	tb.report(t)
	for i, p := range paths[1:] {
		t.Logf("%s vs direct (medians): requests %.2f, throughput %.2f, upload %.2f", p.setup,
			median(rps[i+1])/median(rps[0]), median(down[i+1])/median(down[0]), median(up[i+1])/median(up[0]))
	}
}

// routeThroughRouter gives b1 a second address, which the router routes
// to it and the client reaches through the router: the path of a
// load balancer's traffic without the load balancer. b1 answers from it
// straight to the client, as a dsr backend does.
func routeThroughRouter(t *testing.T, w *testnet.World) netip.Addr {
	t.Helper()
	routed := netip.MustParseAddr("192.0.2.21")
	b1 := w.Hosts()[0]
	holdDSRAddress(t, b1, routed)
	if out, err := w.Router("r1").Exec(t.Context(), "ip", "route", "replace", routed.String()+"/32", "via", b1.Addr4().String()); err != nil {
		t.Fatalf("r1: %v: %s", err, out)
	}
	return routed
}

// createBenchDSR creates a load balancer in mode dsr at addr, without
// checks, whose backends serve port.
func createBenchDSR(t *testing.T, node *testnet.Node, name string, addr netip.Addr, port uint16, backends []*testnet.Host) api.LoadBalancer {
	t.Helper()
	l, _, err := lbClient(node).CreateLoadBalancer(t.Context(), api.LoadBalancerRequest{Name: name, Port: port, Protocol: "tcp", Mode: "dsr", Address: addr.String()})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range backends {
		if l, err = lbClient(node).AddBackend(t.Context(), l.UUID, api.BackendRequest{IP: b.Addr4().String()}); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

// holdDSRAddress makes backend h a DSR backend of addr: the address on lo,
// and no ARP answers for it (arp_ignore=1: only for addresses of the
// interface asked on; arp_announce=2: never lo's address as ARP source).
func holdDSRAddress(t *testing.T, h *testnet.Host, addr netip.Addr) {
	t.Helper()
	for _, cmd := range [][]string{
		{"sysctl", "-qw", "net.ipv4.conf.all.arp_ignore=1", "net.ipv4.conf.all.arp_announce=2"},
		{"ip", "addr", "replace", addr.String() + "/32", "dev", "lo"},
	} {
		if out, err := h.Exec(t.Context(), cmd[0], cmd[1:]...); err != nil {
			t.Fatalf("%s: %v: %s", h.Name(), err, out)
		}
	}
}

// upload writes zeros to target on dataplaneConns streams for
// dataplaneWindow and returns the bits per second written.
func upload(t *testing.T, c *testnet.Client, target netip.AddrPort) float64 {
	t.Helper()
	zeros := make([]byte, 64<<10)
	return streams(t, c, "streams to", target, func(conn net.Conn) (int64, error) {
		var total int64
		for {
			n, err := conn.Write(zeros)
			total += int64(n)
			if err != nil {
				return total, err
			}
		}
	})
}

// throughput reads dataplaneConns streams from target for dataplaneWindow
// and returns the bits per second received.
func throughput(t *testing.T, c *testnet.Client, target netip.AddrPort) float64 {
	t.Helper()
	return streams(t, c, "streams from", target, func(conn net.Conn) (int64, error) { return io.Copy(io.Discard, conn) })
}

// streams opens dataplaneConns connections to target, moves bytes on each
// with move until the dataplaneWindow deadline (set for reads and writes),
// and returns the bits per second moved in all. An error other than the
// deadline fails the test, named by what.
func streams(t *testing.T, c *testnet.Client, what string, target netip.AddrPort, move func(net.Conn) (int64, error)) float64 {
	t.Helper()
	var total atomic.Int64
	var failed atomic.Value
	deadline := time.Now().Add(dataplaneWindow)
	var wg sync.WaitGroup
	for range dataplaneConns {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			conn, err := c.DialContext(ctx, "tcp", target.String())
			if err != nil {
				failed.Store(err)
				return
			}
			defer conn.Close()
			_ = conn.SetDeadline(deadline)
			n, err := move(conn)
			total.Add(n)
			if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
				failed.Store(err)
			}
		})
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		t.Fatalf("%s %s: %v", what, target, err)
	}
	return float64(total.Load()) * 8 / dataplaneWindow.Seconds()
}

// TestBenchDataPlaneDisruption measures, through the nftables data plane,
// the share of UDP flows that change backend when one of N backends
// leaves (target: at most 1.1 × 1/N), at N = 10 and N = 100, and how long
// the API takes to remove and re-add one backend (it answers once the
// kernel has the change).
func TestBenchDataPlaneDisruption(t *testing.T) {
	skipUnlessBench(t)
	dt := newBenchTable("dataplane-disruption", "UDP flows that change backend when 1 of N backends leaves (target ≤ 1.1/N), and the time of that backend change")
	dt.version(vipdVersion(t))
	dt.version(programVersion("nft", "--version"))
	w, r1, n1, c1 := benchLBWorld(t, 1, disruptionHosts)
	for _, n := range []int{10, 100} {
		l := createEchoLB(t, n1, fmt.Sprintf("echo%d", n), uint16(echoPort+echoPorts+n), w.Hosts(), n)
		waitFIB(t, r1, netip.PrefixFrom(netip.MustParseAddr(l.EIP), 32), n1.Addr4())
		moved, remove, add := flowsMoved(t, n1, c1, l)
		for i := range moved {
			moved[i] *= float64(n) // in units of 1/N
		}
		dt.Rows = append(dt.Rows, benchRow{Setup: fmt.Sprintf("vipd, N = %d, %d flows", n, disruptionFlows), Router: "bird", Metrics: []metric{
			newMetric("moved×N", unitRatio, moved),
			timeMetric("remove", remove),
			timeMetric("add", add),
		}})
		if err := lbClient(n1).DeleteLoadBalancer(t.Context(), l.UUID); err != nil {
			t.Fatal(err)
		}
	}
	dt.report(t)
}

// benchLBWorld builds a world of a BIRD router, vipd nodes, a client and
// hosts backend hosts serving as serveBenchBackend says, and starts vipd
// on every node. It returns the first node.
func benchLBWorld(t *testing.T, nodes, hosts int) (*testnet.World, *testnet.Router, *testnet.Node, *testnet.Client) {
	t.Helper()
	hs := make([]testnet.NodeSpec, hosts)
	for i := range hs {
		hs[i] = testnet.NodeSpec{Name: fmt.Sprintf("b%d", i+1), Address: netip.AddrFrom4([4]byte{10, 255, 255, byte(21 + i)})}
	}
	specs := nodeSpecs(nodes)
	w := worldtest.New(t, testnet.Spec{
		Routers: []testnet.RouterSpec{{Name: "r1", Kind: testnet.BIRD, ASN: 65535, Address: addr("10.255.255.1"),
			Neighbors: neighbors(specs, 4200000000, "")}},
		Nodes:  specs,
		Client: &testnet.NodeSpec{Name: "c1", Address: addr("10.255.255.50")},
		Hosts:  hs,
	})
	for _, h := range w.Hosts() {
		serveBenchBackend(t, h)
	}
	for _, n := range w.Nodes() {
		startBenchVipd(t, n, lbConfig(""))
		waitStatus(t, n, "daemon answering", func(api.Status) bool { return true })
	}
	return w, w.Router("r1"), w.Node("n1"), w.Client()
}

// serveBenchBackend runs, in h's namespace, an HTTP server on 8080 that
// answers with h's name, a TCP server on bulkPort that streams zeros, and
// a UDP server on echoPort that answers each datagram with h's name.
func serveBenchBackend(t *testing.T, h *testnet.Host) {
	t.Helper()
	web, err := h.Listen("tcp", ":8080")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, h.Name())
	})}
	go func() { _ = srv.Serve(web) }()
	t.Cleanup(func() { srv.Close() })

	bulk, err := h.Listen("tcp", fmt.Sprintf(":%d", bulkPort))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bulk.Close() })
	go func() {
		zeros := make([]byte, 64<<10)
		for {
			conn, err := bulk.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				_ = conn.SetDeadline(time.Now().Add(time.Minute)) // bounds a stream the client forgot
				for {
					if _, err := conn.Write(zeros); err != nil {
						return
					}
				}
			}()
		}
	}()

	sink, err := h.Listen("tcp", fmt.Sprintf(":%d", sinkPort))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close() })
	go func() {
		for {
			conn, err := sink.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				_ = conn.SetDeadline(time.Now().Add(time.Minute))
				_, _ = io.Copy(io.Discard, conn)
			}()
		}
	}()

	for port := echoPort; port < echoPort+echoPorts; port++ {
		serveEcho(t, h, port)
	}
}

// serveEcho answers each UDP datagram to port in h's namespace with h's
// name and the port: one backend of a disruption load balancer.
func serveEcho(t *testing.T, h *testnet.Host, port int) {
	t.Helper()
	serveUDPAnswer(t, h, fmt.Sprintf(":%d", port), fmt.Sprintf("%s:%d", h.Name(), port))
}

// serveUDPAnswer answers each UDP datagram to listen in h's namespace
// with answer, until the test ends.
func serveUDPAnswer(t *testing.T, h *testnet.Host, listen, answer string) {
	t.Helper()
	var echo net.PacketConn
	err := h.InNamespace(func() (err error) {
		echo, err = net.ListenPacket("udp", listen)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { echo.Close() })
	go func() {
		buf := make([]byte, 512)
		for {
			_, from, err := echo.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = echo.WriteTo([]byte(answer), from)
		}
	}()
}

// createEchoLB creates a UDP load balancer on port with n backends: the
// echo ports of the hosts, host by host, port by port.
func createEchoLB(t *testing.T, node *testnet.Node, name string, port uint16, hosts []*testnet.Host, n int) api.LoadBalancer {
	t.Helper()
	l, _, err := lbClient(node).CreateLoadBalancer(t.Context(), api.LoadBalancerRequest{Name: name, Port: port, Protocol: "udp"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		h := hosts[i%len(hosts)]
		if l, err = lbClient(node).AddBackend(t.Context(), l.UUID, api.BackendRequest{IP: h.Addr4().String(), Port: uint16(echoPort + i/len(hosts))}); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

// createBenchLB creates a load balancer without checks, so its backends
// are in the table at once.
func createBenchLB(t *testing.T, node *testnet.Node, name, mode string, port, backendPort uint16, backends []*testnet.Host) api.LoadBalancer {
	t.Helper()
	l, _, err := lbClient(node).CreateLoadBalancer(t.Context(), api.LoadBalancerRequest{Name: name, Port: port, Protocol: "tcp", Mode: mode})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range backends {
		if l, err = lbClient(node).AddBackend(t.Context(), l.UUID, api.BackendRequest{IP: b.Addr4().String(), Port: backendPort}); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

// requestRate runs dataplaneConns keep-alive HTTP clients against target
// for dataplaneWindow and returns the requests answered per second.
func requestRate(t *testing.T, c *testnet.Client, target netip.AddrPort) float64 {
	t.Helper()
	tr := &http.Transport{
		MaxIdleConnsPerHost: dataplaneConns,
		DialContext: func(ctx context.Context, network, address string) (net.Conn, error) {
			return c.DialContext(ctx, network, address)
		},
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	url := "http://" + target.String() + "/"
	var done atomic.Int64
	var failed atomic.Value
	stop := time.Now().Add(dataplaneWindow)
	var wg sync.WaitGroup
	for range dataplaneConns {
		wg.Go(func() {
			for time.Now().Before(stop) {
				resp, err := client.Get(url)
				if err != nil {
					failed.Store(err)
					return
				}
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil {
					failed.Store(err)
					return
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		t.Fatalf("requests to %s: %v", target, err)
	}
	return float64(done.Load()) / dataplaneWindow.Seconds()
}

// flowsMoved removes each of a few backends (spread over the list) in
// turn and returns, per trial, the share of disruptionFlows UDP flows
// (fixed source ports) that answer from another backend afterwards, and
// how long the API took to remove the backend and to add it back.
// Conntrack is flushed before each round, so every round's flows are
// scheduled by the table afresh.
func flowsMoved(t *testing.T, n1 *testnet.Node, c1 *testnet.Client, l api.LoadBalancer) (moved []float64, remove, add []time.Duration) {
	t.Helper()
	target := netip.AddrPortFrom(netip.MustParseAddr(l.EIP), l.Port)
	for trial := range dataplaneTrials {
		flushConntrack(t, n1)
		before := udpFlows(t, c1, target)
		gone := l.Backends[trial*len(l.Backends)/dataplaneTrials]
		start := time.Now()
		if _, err := lbClient(n1).RemoveBackend(t.Context(), l.UUID, gone.UUID); err != nil {
			t.Fatal(err)
		}
		remove = append(remove, time.Since(start))
		flushConntrack(t, n1)
		after := udpFlows(t, c1, target)
		n := 0
		for port, who := range before {
			if after[port] != who {
				n++
			}
		}
		moved = append(moved, float64(n)/float64(len(before)))
		start = time.Now()
		back, err := lbClient(n1).AddBackend(t.Context(), l.UUID, api.BackendRequest{IP: gone.IP, Port: gone.Port})
		if err != nil {
			t.Fatal(err)
		}
		add = append(add, time.Since(start))
		l.Backends = back.Backends
	}
	return moved, remove, add
}

// udpFlows sends one datagram from each of disruptionFlows source ports
// and returns who answered, by port.
func udpFlows(t *testing.T, c *testnet.Client, target netip.AddrPort) map[int]string {
	t.Helper()
	out := make(map[int]string, disruptionFlows)
	buf := make([]byte, 64)
	for port := 42000; port < 42000+disruptionFlows; port++ {
		var conn net.Conn
		err := c.InNamespace(func() (err error) {
			d := net.Dialer{LocalAddr: &net.UDPAddr{Port: port}}
			conn, err = d.Dial("udp", target.String())
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
		_, err = conn.Write([]byte("who"))
		var n int
		if err == nil {
			n, err = conn.Read(buf)
		}
		conn.Close()
		if err != nil {
			t.Fatalf("flow from port %d: %v", port, err)
		}
		out[port] = string(buf[:n])
	}
	return out
}

// flushConntrack empties the node's conntrack table.
func flushConntrack(t *testing.T, n *testnet.Node) {
	t.Helper()
	err := n.InNamespace(func() error {
		h, err := netlink.NewHandle()
		if err != nil {
			return err
		}
		defer h.Close()
		return h.ConntrackTableFlush(netlink.ConntrackTable)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func median(trials []float64) float64 { return newMetric("", unitRatio, trials).Median }

package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vipd/vipd/internal/api"
	"github.com/vipd/vipd/internal/testnet"
)

// dsrBackends makes the world's hosts DSR backends of addr: the address on
// lo, not answered for in ARP (arp_ignore=1: only addresses of the
// interface asked on; arp_announce=2: never the lo address as ARP source),
// and an HTTP server on port 80 of every address that answers with its
// name, and on /healthz with 200 until failed.
func dsrBackends(t *testing.T, w *testnet.World, addr netip.Addr) []*backend {
	t.Helper()
	ctx := context.Background()
	var out []*backend
	for _, h := range w.Hosts() {
		for _, cmd := range [][]string{
			{"sysctl", "-qw", "net.ipv4.conf.all.arp_ignore=1", "net.ipv4.conf.all.arp_announce=2"},
			{"ip", "addr", "add", addr.String() + "/32", "dev", "lo"},
		} {
			if out, err := h.Exec(ctx, cmd[0], cmd[1:]...); err != nil {
				t.Fatalf("%s: %v: %s", h.Name(), err, out)
			}
		}
		out = append(out, serveBackend(t, h, ":80"))
	}
	return out
}

// startLBCluster starts vipd on every node with the same load balancer
// "web" (address eip, port 80, the mode, an HTTP check) over the
// backends, and waits until every node has every backend up and the
// router routes eip over all of them. Metrics are served on each node's
// 127.0.0.1:9477. It returns each node's UUID of the load balancer.
func startLBCluster(t *testing.T, w *testnet.World, eip netip.Addr, mode string, backends []*backend) map[string]string {
	t.Helper()
	ctx := context.Background()
	up := map[string]string{}
	for _, b := range backends {
		up[b.addr.String()] = "up"
	}
	ids := map[string]string{}
	for _, n := range w.Nodes() {
		startVipdConfig(t, n, lbConfig(fmt.Sprintf("state_dir: %s\napi: {socket: %s}\nmetrics: {listen: \"127.0.0.1:9477\"}\n",
			n.StateDir(), n.Socket())))
		waitStatus(t, n, "daemon answering", func(api.Status) bool { return true })
		req := api.LoadBalancerRequest{Name: "web", Port: 80, Mode: mode, Address: eip.String(),
			Check: &api.Check{Type: "http", Path: "/healthz", Interval: "200ms", Rise: 2, Fall: 2}}
		l, _, err := lbClient(n).CreateLoadBalancer(ctx, req)
		if err != nil {
			t.Fatalf("create on %s: %v", n.Name(), err)
		}
		for _, b := range backends {
			if l, err = lbClient(n).AddBackend(ctx, l.UUID, api.BackendRequest{IP: b.addr.String(), Port: 80}); err != nil {
				t.Fatalf("add backend %s on %s: %v", b.name, n.Name(), err)
			}
		}
		waitBackends(t, n, l.UUID, up)
		ids[n.Name()] = l.UUID
	}
	waitFIB(t, w.Router("r1"), netip.PrefixFrom(eip, 32), addrs4(w.Nodes())...)
	return ids
}

// dsrWorld is lbWorld with three nodes, made ready for the nodes' native
// XDP program, which sends frames back out of their veth: their LAN ports
// pass XDP frames on, and the client fills its checksums itself.
func dsrWorld(t *testing.T) *testnet.World {
	t.Helper()
	w := lbWorld(t, 3)
	var names []string
	for _, n := range w.Nodes() {
		names = append(names, n.Name())
	}
	if err := w.PassXDPOnLAN(names...); err != nil {
		t.Fatal(err)
	}
	if err := w.FillChecksums(w.Client().Name()); err != nil {
		t.Fatal(err)
	}
	return w
}

// TestDSR is issue 15's scenario: a BIRD router with ECMP over three
// vipd nodes in mode dsr towards three backends on the LAN. Flows spread
// over the backends, established connections survive a node leaving the
// ECMP set (drained) and joining it again, and a backend that fails its
// check gets no new flows.
func TestDSR(t *testing.T) {
	w := dsrWorld(t)
	c1 := w.Client()
	eip := lbPool.Addr().Next().Next()
	backends := dsrBackends(t, w, eip)
	ids := startLBCluster(t, w, eip, "dsr", backends)
	target := netip.AddrPortFrom(eip, 80)

	for _, n := range w.Nodes() {
		st := status(t, n)
		if st.XDP == nil || len(st.XDP.Interfaces) != 1 || st.XDP.Interfaces[0].Mode != "native" {
			t.Fatalf("%s: XDP status %+v, want the program native on one interface", n.Name(), st.XDP)
		}
	}

	// 300 flows spread over the backends: 100 each expected.
	const flows = 300
	counts := spread(t, c1, target, flows)
	t.Logf("%d flows: %v", flows, counts)
	for _, b := range backends {
		if got := counts[b.name]; got < flows/5 || got > flows/2 {
			t.Errorf("backend %s got %d of %d flows, want %d..%d; all: %v", b.name, got, flows, flows/5, flows/2, counts)
		}
	}

	// n1's XDP counter shows that it carried some of the connections
	// before the drain and none while drained: they moved, and lived.
	var n1Start, n1Before float64
	resets := connectionsThroughRehash(t, w, target, func(step string) {
		packets := xdpPackets(t, w.Node("n1"))
		switch step {
		case "start":
			n1Start = packets
		case "open":
			n1Before = packets
			if packets == n1Start {
				t.Errorf("n1 forwarded no packet of the %d connections: the drain would move none", rehashConns)
			}
		case "n1 drained":
			if packets != n1Before {
				t.Errorf("n1 forwarded %v packets while drained, want none", packets-n1Before)
			}
		}
		t.Logf("%s: n1 forwarded %v packets so far", step, packets)
	})
	if resets != 0 {
		t.Errorf("DSR: %d of %d established connections broke while n1 left and rejoined the ECMP set, want 0", resets, rehashConns)
	}

	// b2 fails its check: it leaves every node's table and gets no new
	// flows; the others still do.
	backends[1].failed.Store(true)
	for _, n := range w.Nodes() {
		waitBackends(t, n, ids[n.Name()], map[string]string{"10.255.255.21": "up", "10.255.255.22": "down", "10.255.255.23": "up"})
	}
	counts = spread(t, c1, target, 150)
	if counts["b2"] != 0 || counts["b1"] == 0 || counts["b3"] == 0 {
		t.Errorf("after b2 failed: %v, want none to b2 and some to b1 and b3", counts)
	}
}

// TestNATRehashResets is TestDSR's rehash in mode nat (masquerade), as a
// control: the connections that the router moves to another node break,
// which is what DSR fixes. It proves the rehash in TestDSR moves flows.
func TestNATRehashResets(t *testing.T) {
	w := lbWorld(t, 3)
	eip := lbPool.Addr().Next().Next()
	backends := dsrBackends(t, w, eip)
	startLBCluster(t, w, eip, "nat", backends)
	resets := connectionsThroughRehash(t, w, netip.AddrPortFrom(eip, 80), func(string) {})
	if resets == 0 {
		t.Errorf("nat: no connection broke while n1 left and rejoined the ECMP set: the rehash moved no flow, so TestDSR proves nothing")
	}
}

// rehashConns is how many connections go through the rehash.
const rehashConns = 200

// connectionsThroughRehash opens rehashConns connections from the client,
// drains n1 (its address is withdrawn, so the router rehashes its flows
// onto n2 and n3), undrains it (they rehash again), and sends a request
// on every connection after each step. It returns how many connections
// broke (reset, closed, or no answer), and fails the test if one that
// still works changed backend. It calls observe before ("start") and
// after opening the connections ("open") and after each step's requests.
func connectionsThroughRehash(t *testing.T, w *testnet.World, target netip.AddrPort, observe func(step string)) int {
	t.Helper()
	observe("start")
	ctx := context.Background()
	r1, n1, c1 := w.Router("r1"), w.Node("n1"), w.Client()
	conns := make([]net.Conn, rehashConns)
	owner := make([]string, rehashConns)
	for i := range conns {
		err := c1.InNamespace(func() (err error) {
			conns[i], err = net.DialTimeout("tcp", target.String(), 5*time.Second)
			return err
		})
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		t.Cleanup(func() { conns[i].Close() })
		if owner[i], err = roundTrip(conns[i], target); err != nil {
			t.Fatalf("connection %d, first request: %v", i, err)
		}
	}
	observe("open")
	var broken atomic.Int32
	dead := make([]bool, rehashConns)
	check := func(step string) {
		var resets, others int
		for i, c := range conns {
			if dead[i] {
				continue
			}
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			who, err := roundTrip(c, target)
			switch {
			case errors.Is(err, syscall.ECONNRESET):
				resets++
			case err != nil:
				others++
			case who != owner[i]:
				t.Errorf("%s: connection %d moved from backend %s to %s", step, i, owner[i], who)
			}
			if err != nil {
				dead[i] = true
				broken.Add(1)
			}
		}
		t.Logf("%s: %d connections reset, %d failed otherwise, %d of %d still work", step, resets, others,
			rehashConns-int(broken.Load()), rehashConns)
		observe(step)
	}
	prefix := netip.PrefixFrom(target.Addr(), 32)
	if err := lbClient(n1).Drain(ctx, "lb/web", true); err != nil {
		t.Fatal(err)
	}
	waitFIB(t, r1, prefix, w.Node("n2").Addr4(), w.Node("n3").Addr4())
	check("n1 drained")
	if err := lbClient(n1).Drain(ctx, "lb/web", false); err != nil {
		t.Fatal(err)
	}
	waitFIB(t, r1, prefix, addrs4(w.Nodes())...)
	check("n1 back")
	return int(broken.Load())
}

// TestDSRWithoutXDP: where the program cannot be attached (here: an
// interface that does not exist), a dsr load balancer is not announced,
// status says why, and nothing falls back to nftables.
func TestDSRWithoutXDP(t *testing.T) {
	w := lbWorld(t, 1)
	n1 := w.Node("n1")
	startLBNode(t, n1, lbConfig("dataplane: {xdp: {interfaces: [nope0]}}\n"))
	ctx := context.Background()
	l, _, err := lbClient(n1).CreateLoadBalancer(ctx, api.LoadBalancerRequest{Name: "web", Port: 80, Mode: "dsr"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lbClient(n1).AddBackend(ctx, l.UUID, api.BackendRequest{IP: "10.255.255.21"}); err != nil {
		t.Fatal(err)
	}
	st := waitStatus(t, n1, "xdp_failed", func(st api.Status) bool {
		return len(st.LoadBalancers) == 1 && st.LoadBalancers[0].Reason == "xdp_failed"
	})
	if st.LoadBalancers[0].Announced || st.XDP == nil || len(st.XDP.Interfaces) != 1 ||
		st.XDP.Interfaces[0].Mode != "" || st.XDP.Interfaces[0].Error == "" {
		t.Errorf("status: %+v, XDP %+v; want withdrawn, and nope0 not attached with its error", st.LoadBalancers[0], st.XDP)
	}
	rules, err := n1.Exec(ctx, "nft", "list", "ruleset")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(rules, l.EIP) {
		t.Errorf("the dsr load balancer fell back to nftables:\n%s", rules)
	}
}

// xdpPackets is the node's vipd_lb_xdp_packets_total of load balancer web.
func xdpPackets(t *testing.T, n *testnet.Node) float64 {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, network, address string) (net.Conn, error) {
		return n.DialContext(ctx, network, address)
	}}}
	v, err := scrape(t.Context(), client, "vipd_lb_xdp_packets_total", "lb", "web")
	if err != nil {
		t.Fatalf("%s: %v", n.Name(), err)
	}
	return v
}

// TestDSRIPv6AndUDP: mode dsr forwards IPv6 (backends found by neighbour
// discovery) and UDP, each flow to one backend, spread over all of them.
func TestDSRIPv6AndUDP(t *testing.T) {
	w := lbWorld(t, 1)
	n1, r1, c1 := w.Node("n1"), w.Router("r1"), w.Client()
	if err := w.PassXDPOnLAN(n1.Name()); err != nil {
		t.Fatal(err)
	}
	if err := w.FillChecksums(c1.Name()); err != nil {
		t.Fatal(err)
	}
	web6, dns4 := addr("fd00:10::5"), addr("198.51.100.5")
	ctx := context.Background()
	for _, h := range w.Hosts() {
		for _, cmd := range [][]string{
			{"sysctl", "-qw", "net.ipv4.conf.all.arp_ignore=1", "net.ipv4.conf.all.arp_announce=2"},
			{"ip", "addr", "add", dns4.String() + "/32", "dev", "lo"},
			{"ip", "addr", "add", web6.String() + "/128", "dev", "lo"},
		} {
			if out, err := h.Exec(ctx, cmd[0], cmd[1:]...); err != nil {
				t.Fatalf("%s: %v: %s", h.Name(), err, out)
			}
		}
		ln, err := h.Listen("tcp", "["+web6.String()+"]:80")
		if err != nil {
			t.Fatal(err)
		}
		name := h.Name()
		srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprintln(w, name)
		})}
		go func() { _ = srv.Serve(ln) }()
		t.Cleanup(func() { srv.Close() })
		// Bound to the address, so the answer leaves from it.
		serveUDPAnswer(t, h, dns4.String()+":53", name)
	}
	startLBNode(t, n1, fmt.Sprintf(`bgp:
  asn: 4200000000
  allowed_prefixes: [198.51.100.0/27, "fd00:10::/64"]
  peers:
%spools:
  - {name: v4, prefixes: [198.51.100.0/28]}
  - {name: v6, prefixes: ["fd00:10::/124"]}
`, peersYAML(peer{name: "r1", address: addr("10.255.255.1"), asn: 65535})))
	web, _, err := lbClient(n1).CreateLoadBalancer(ctx, api.LoadBalancerRequest{Name: "web6", Port: 80, Mode: "dsr", Address: web6.String()})
	if err != nil {
		t.Fatal(err)
	}
	dns, _, err := lbClient(n1).CreateLoadBalancer(ctx, api.LoadBalancerRequest{Name: "dns4", Port: 53, Protocol: "udp", Mode: "dsr", Address: dns4.String()})
	if err != nil {
		t.Fatal(err)
	}
	up6, up4 := map[string]string{}, map[string]string{}
	for _, h := range w.Hosts() {
		if _, err := lbClient(n1).AddBackend(ctx, web.UUID, api.BackendRequest{IP: h.Addr6().String()}); err != nil {
			t.Fatal(err)
		}
		if _, err := lbClient(n1).AddBackend(ctx, dns.UUID, api.BackendRequest{IP: h.Addr4().String()}); err != nil {
			t.Fatal(err)
		}
		up6[h.Addr6().String()], up4[h.Addr4().String()] = "up", "up"
	}
	waitBackends(t, n1, web.UUID, up6)
	waitBackends(t, n1, dns.UUID, up4)
	waitFIB(t, r1, netip.PrefixFrom(web6, 128), n1.Addr6())
	waitFIB(t, r1, netip.PrefixFrom(dns4, 32), n1.Addr4())

	st := status(t, n1)
	for _, b := range st.XDP.Backends {
		if b.MAC == "" || b.Problem != "" {
			t.Errorf("backend %s of %s: MAC %q, problem %q", b.Backend, b.LoadBalancer, b.MAC, b.Problem)
		}
	}
	const flows = 60
	tcp6 := map[string]int{}
	for sport := 41000; sport < 41000+flows; sport++ {
		who, err := get(ctx, c1, netip.AddrPortFrom(web6, 80), sport)
		if err != nil {
			t.Fatalf("TCP over IPv6 from port %d: %v", sport, err)
		}
		tcp6[who]++
	}
	udp4 := map[string]int{}
	for sport := 42000; sport < 42000+flows; sport++ {
		var conn net.Conn
		if err := c1.InNamespace(func() (err error) {
			conn, err = (&net.Dialer{LocalAddr: &net.UDPAddr{Port: sport}}).Dial("udp", dns4.String()+":53")
			return err
		}); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 64)
		_, err := conn.Write([]byte("who"))
		n := 0
		if err == nil {
			n, err = conn.Read(buf)
		}
		conn.Close()
		if err != nil {
			t.Fatalf("UDP from port %d: %v", sport, err)
		}
		udp4[string(buf[:n])]++
	}
	t.Logf("%d flows each: TCP over IPv6 %v, UDP over IPv4 %v", flows, tcp6, udp4)
	if len(tcp6) != 3 || len(udp4) != 3 {
		t.Errorf("flows reached %d and %d backends, want all 3", len(tcp6), len(udp4))
	}
}

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vipd/vipd/internal/api"
	"github.com/vipd/vipd/internal/testnet"
	"github.com/vipd/vipd/internal/testnet/worldtest"
)

// lbPool is the pool the load-balancer tests draw addresses from.
var lbPool = mustPrefix("198.51.100.0/28")

// lbWorld builds BIRD router r1, vipd nodes, backends b1…b3 and client c1
// on one LAN.
func lbWorld(t *testing.T, nodes int) *testnet.World {
	t.Helper()
	specs := nodeSpecs(nodes)
	return worldtest.New(t, testnet.Spec{
		Routers: []testnet.RouterSpec{{Name: "r1", Kind: testnet.BIRD, ASN: 65535, Address: addr("10.255.255.1"),
			Neighbors: neighbors(specs, 4200000000, "")}},
		Nodes:  specs,
		Client: &testnet.NodeSpec{Name: "c1", Address: addr("10.255.255.50")},
		Hosts: []testnet.NodeSpec{
			{Name: "b1", Address: addr("10.255.255.21")},
			{Name: "b2", Address: addr("10.255.255.22")},
			{Name: "b3", Address: addr("10.255.255.23")},
		},
	})
}

// lbConfig is a node's config: one pool inside 198.51.100.0/27, and the
// extra keys.
func lbConfig(extra string) string { return lbConfigPool(lbPool, extra) }

func lbConfigPool(pool netip.Prefix, extra string) string {
	return fmt.Sprintf(`bgp:
  asn: 4200000000
  allowed_prefixes: [198.51.100.0/27]
  peers:
%spools:
  - name: default
    prefixes: [%s]
%s`, peersYAML(peer{name: "r1", address: addr("10.255.255.1"), asn: 65535}), pool, extra)
}

// backend is an HTTP server in a backend's namespace that answers with
// its name, and on /healthz with 200 until failed.
type backend struct {
	name   string
	addr   netip.Addr
	failed atomic.Bool
}

func startBackends(t *testing.T, w *testnet.World) []*backend {
	t.Helper()
	var out []*backend
	for _, h := range w.Hosts() {
		out = append(out, serveBackend(t, h, ":8080"))
	}
	return out
}

// serveBackend runs a backend's HTTP server on h at listen (":8080").
func serveBackend(t *testing.T, h *testnet.Host, listen string) *backend {
	t.Helper()
	b := &backend{name: h.Name(), addr: h.Addr4()}
	ln, err := h.Listen("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if b.failed.Load() {
			http.Error(w, "failed by the test", http.StatusServiceUnavailable)
		}
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, b.name) })
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return b
}

// startLBNode starts vipd with config and waits until it answers.
func startLBNode(t *testing.T, node *testnet.Node, config string) *testnet.Process {
	t.Helper()
	p := startVipd(t, node, config)
	waitStatus(t, node, "daemon answering", func(api.Status) bool { return true })
	return p
}

// lbClient talks to a node's daemon over its control socket.
func lbClient(node *testnet.Node) *api.Client { return api.NewClient(node.Socket()) }

// startTCPAPINode starts vipd on node with the TCP API on 127.0.0.1:10001
// (in the node's namespace) behind token, and waits until it answers.
func startTCPAPINode(t *testing.T, node *testnet.Node, token string) {
	t.Helper()
	file := filepath.Join(node.Dir(), "api.token")
	if err := os.WriteFile(file, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	startVipdConfig(t, node, lbConfig(fmt.Sprintf(`state_dir: %s
api: {socket: %s, listen: "127.0.0.1:10001", token_file: %s}
metrics: {listen: ""}
`, node.StateDir(), node.Socket(), file)))
	waitStatus(t, node, "daemon up", func(api.Status) bool { return true })
}

// createWebLB creates load balancer "web" on port 80 with an HTTP check
// and the backends, at address (zero: allocated).
func createWebLB(t *testing.T, node *testnet.Node, address netip.Addr, backends []*backend) api.LoadBalancer {
	t.Helper()
	ctx := context.Background()
	req := api.LoadBalancerRequest{Name: "web", Port: 80,
		Check: &api.Check{Type: "http", Path: "/healthz", Interval: "200ms", Rise: 2, Fall: 2}}
	if address.IsValid() {
		req.Address = address.String()
	}
	l, created, err := lbClient(node).CreateLoadBalancer(ctx, req)
	if err != nil || !created {
		t.Fatalf("create on %s: created=%v err=%v", node.Name(), created, err)
	}
	for _, b := range backends {
		if l, err = lbClient(node).AddBackend(ctx, l.UUID, api.BackendRequest{IP: b.addr.String(), Port: 8080}); err != nil {
			t.Fatalf("add backend %s on %s: %v", b.name, node.Name(), err)
		}
	}
	return l
}

// waitBackends waits until node's load balancer id shows the backends'
// states as want (by backend IP).
func waitBackends(t *testing.T, node *testnet.Node, id string, want map[string]string) {
	t.Helper()
	var last api.LoadBalancer
	err := testnet.WaitFor(context.Background(), convergeTimeout, func(ctx context.Context) error {
		l, err := lbClient(node).LoadBalancer(ctx, id)
		if err != nil {
			return err
		}
		last = l
		for _, b := range l.Backends {
			if want[b.IP] != b.State {
				return fmt.Errorf("backend %s is %s, want %s", b.IP, b.State, want[b.IP])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%s: %v\nlast: %+v", node.Name(), err, last)
	}
}

// get sends one HTTP request on a new connection from the client, from
// source port sport (0: any), and returns the backend that answered.
func get(ctx context.Context, c *testnet.Client, target netip.AddrPort, sport int) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var conn net.Conn
	err := c.InNamespace(func() error {
		d := net.Dialer{LocalAddr: &net.TCPAddr{Port: sport}, Control: reuseAddr}
		var err error
		conn, err = d.DialContext(ctx, "tcp", target.String())
		return err
	})
	if err != nil {
		return "", err
	}
	// Close with a reset: no TIME_WAIT, so the same source port can
	// start the same flow again at once.
	_ = conn.(*net.TCPConn).SetLinger(0)
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	return roundTrip(conn, target)
}

// roundTrip sends one keep-alive GET on conn and returns the body's line.
func roundTrip(conn net.Conn, target netip.AddrPort) (string, error) {
	if _, err := fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", target); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(body)), err
}

func reuseAddr(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1) })
	if err != nil {
		return err
	}
	return serr
}

// spread sends n requests on new connections and counts the answers.
func spread(t *testing.T, c *testnet.Client, target netip.AddrPort, n int) map[string]int {
	t.Helper()
	counts := map[string]int{}
	for i := range n {
		who, err := get(context.Background(), c, target, 0)
		if err != nil {
			t.Fatalf("request %d to %s: %v", i, target, err)
		}
		counts[who]++
	}
	return counts
}

// TestLoadBalancer is issue 5's scenario on one node: create through the
// API, spread over three backends, a failing backend leaves the table
// while established flows stay, a restart brings everything back, and a
// delete withdraws the route, removes the rules and frees the address.
func TestLoadBalancer(t *testing.T) {
	w := lbWorld(t, 1)
	r1, n1, c1 := w.Router("r1"), w.Node("n1"), w.Client()
	backends := startBackends(t, w)
	cfg := lbConfig("")
	p := startLBNode(t, n1, cfg)
	ctx := context.Background()

	l := createWebLB(t, n1, netip.Addr{}, backends)
	eip := netip.MustParseAddr(l.EIP)
	if !lbPool.Contains(eip) || l.Mode != "nat" || l.Protocol != "tcp" || !l.Masquerade {
		t.Fatalf("created %+v: want an address from %s, nat, tcp, masquerade", l, lbPool)
	}
	allUp := map[string]string{"10.255.255.21": "up", "10.255.255.22": "up", "10.255.255.23": "up"}
	waitBackends(t, n1, l.UUID, allUp)
	prefix := netip.PrefixFrom(eip, 32)
	waitFIB(t, r1, prefix, n1.Addr4())
	target := netip.AddrPortFrom(eip, 80)

	// Every backend gets a share: 300 flows, expected 100 each.
	const flows = 300
	counts := spread(t, c1, target, flows)
	t.Logf("%d flows: %v", flows, counts)
	for _, b := range backends {
		if got := counts[b.name]; got < flows/5 || got > flows/2 {
			t.Errorf("backend %s got %d of %d flows, want %d..%d (a third, ±40%%); all: %v", b.name, got, flows, flows/5, flows/2, counts)
		}
	}

	// Established connections, one set per backend, kept open.
	conns := map[string][]net.Conn{}
	for i := 0; i < 60 && (len(conns["b1"]) == 0 || len(conns["b3"]) == 0); i++ {
		var conn net.Conn
		err := c1.InNamespace(func() (err error) {
			conn, err = net.DialTimeout("tcp", target.String(), 5*time.Second)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		who, err := roundTrip(conn, target)
		if err != nil {
			t.Fatal(err)
		}
		conns[who] = append(conns[who], conn)
	}
	if len(conns["b1"]) == 0 || len(conns["b3"]) == 0 {
		t.Fatalf("no established connection to b1 and b3 after 60 tries: %v", conns)
	}

	// b2 fails its check: it leaves the table, the address stays up.
	backends[1].failed.Store(true)
	waitBackends(t, n1, l.UUID, map[string]string{"10.255.255.21": "up", "10.255.255.22": "down", "10.255.255.23": "up"})
	counts = spread(t, c1, target, 150)
	if counts["b2"] != 0 || counts["b1"] == 0 || counts["b3"] == 0 {
		t.Errorf("after b2 failed: %v, want none to b2 and some to b1 and b3", counts)
	}
	for _, name := range []string{"b1", "b3"} {
		for _, conn := range conns[name] {
			if who, err := roundTrip(conn, target); err != nil || who != name {
				t.Errorf("established connection to %s: answered by %q, %v", name, who, err)
			}
		}
	}
	backends[1].failed.Store(false)
	waitBackends(t, n1, l.UUID, allUp)

	// A restart brings the load balancer back as it was, and it serves.
	if err := p.Stop(stopTimeout); err != nil {
		t.Fatal(err)
	}
	waitFIB(t, r1, prefix)
	startLBNode(t, n1, cfg)
	waitStatus(t, n1, "load balancer back", func(st api.Status) bool {
		return len(st.LoadBalancers) == 1 && st.LoadBalancers[0].Announced
	})
	after, err := lbClient(n1).LoadBalancer(ctx, l.UUID)
	if err != nil {
		t.Fatal(err)
	}
	if after.EIP != l.EIP || len(after.Backends) != 3 || after.Backends[0].UUID != l.Backends[0].UUID {
		t.Errorf("after restart: %+v, want %+v", after, l)
	}
	waitFIB(t, r1, prefix, n1.Addr4())
	if counts := spread(t, c1, target, 30); len(counts) < 2 {
		t.Errorf("after restart: %v, want answers from several backends", counts)
	}

	// Delete: withdrawn at the router, rules gone, address free again.
	if err := lbClient(n1).DeleteLoadBalancer(ctx, l.UUID); err != nil {
		t.Fatal(err)
	}
	waitFIB(t, r1, prefix)
	rules, err := n1.Exec(ctx, "nft", "list", "ruleset")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(rules, eip.String()) {
		t.Errorf("after delete, n1's ruleset still mentions %s:\n%s", eip, rules)
	}
	again, _, err := lbClient(n1).CreateLoadBalancer(ctx, api.LoadBalancerRequest{Name: "again", Port: 80})
	if err != nil || again.EIP != l.EIP {
		t.Errorf("create after delete: %+v, %v; want the released address %s", again, err, l.EIP)
	}
}

// TestLoadBalancerSameChoiceOnTwoNodes: two nodes with the same load
// balancer (same explicit address, same backends) send each flow to the
// same backend, so a flow that ECMP moves between them finds the same one.
func TestLoadBalancerSameChoiceOnTwoNodes(t *testing.T) {
	w := lbWorld(t, 2)
	r1, c1 := w.Router("r1"), w.Client()
	backends := startBackends(t, w)
	eip := lbPool.Addr().Next().Next() // not the first: the address is explicit
	all := map[string]string{"10.255.255.21": "up", "10.255.255.22": "up", "10.255.255.23": "up"}
	for _, n := range w.Nodes() {
		startLBNode(t, n, lbConfig(""))
		l := createWebLB(t, n, eip, backends)
		waitBackends(t, n, l.UUID, all)
	}
	waitFIB(t, r1, netip.PrefixFrom(eip, 32), addrs4(w.Nodes())...)

	// Send each flow (same source port) through n1, then through n2, by
	// pointing the client's route for the address at one node at a time.
	ctx := context.Background()
	target := netip.AddrPortFrom(eip, 80)
	const flows = 40
	chosen := make([]map[int]string, 2)
	for i, n := range w.Nodes() {
		if _, err := c1.Exec(ctx, "ip", "route", "replace", eip.String()+"/32", "via", n.Addr4().String()); err != nil {
			t.Fatal(err)
		}
		chosen[i] = map[int]string{}
		for sport := 40000; sport < 40000+flows; sport++ {
			who, err := get(ctx, c1, target, sport)
			if err != nil {
				t.Fatalf("via %s from port %d: %v", n.Name(), sport, err)
			}
			chosen[i][sport] = who
		}
	}
	used := map[string]bool{}
	for sport, who := range chosen[0] {
		used[who] = true
		if chosen[1][sport] != who {
			t.Errorf("flow from port %d: n1 chose %s, n2 chose %s", sport, who, chosen[1][sport])
		}
	}
	if len(used) != len(backends) {
		t.Errorf("%d flows reached only %v", flows, used)
	}
}

// TestLoadBalancerAPI checks what the API promises a client of a real
// daemon: the socket's mode, 400 naming the field, and 401 on TCP without
// the token.
func TestLoadBalancerAPI(t *testing.T) {
	w := lbWorld(t, 1)
	n1 := w.Node("n1")
	startTCPAPINode(t, n1, "s3cret-token")
	fi, err := os.Stat(n1.Socket())
	if err != nil {
		t.Fatal(err)
	}
	if mode := fi.Mode(); mode&os.ModeSocket == 0 || mode.Perm() != 0o600 {
		t.Errorf("control socket mode %v, want a socket with 0600", mode)
	}

	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, address string) (net.Conn, error) {
		return n1.DialContext(ctx, network, address)
	}}}
	call := func(method, path, bearer, body string) (int, api.Error) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), method, "http://127.0.0.1:10001"+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var e api.Error
		if resp.StatusCode >= 400 {
			if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
				t.Errorf("%s %s: %d with a body that is not a JSON error: %v", method, path, resp.StatusCode, err)
			}
		}
		return resp.StatusCode, e
	}
	for _, bearer := range []string{"", "wrong-token"} {
		if code, e := call(http.MethodGet, "/loadbalancers", bearer, ""); code != http.StatusUnauthorized || e.Message == "" {
			t.Errorf("token %q: %d %+v, want 401 with a JSON error", bearer, code, e)
		}
	}
	if code, _ := call(http.MethodGet, "/loadbalancers", "s3cret-token", ""); code != http.StatusOK {
		t.Errorf("with the token: %d, want 200", code)
	}
	for _, tc := range []struct{ body, field string }{
		{`{"name": "w", "port": "eighty"}`, "port"},
		{`{"name": "w", "port": 80, "check": {"type": "icmp"}}`, "check.type"},
		{`{"name": "w", "port": 80, "colour": "blue"}`, "colour"},
		{`{"name": "w", "port": 80, "address": "198.51.100.99"}`, "address"},
		{`{"name": "w\tb", "port": 80}`, "name"},
	} {
		code, e := call(http.MethodPost, "/loadbalancer", "s3cret-token", tc.body)
		if code != http.StatusBadRequest || e.Field != tc.field {
			t.Errorf("POST %s: %d %+v, want 400 naming %s", tc.body, code, e, tc.field)
		}
	}
	if code, _ := call(http.MethodGet, "/loadbalancer/no-such-uuid", "s3cret-token", ""); code != http.StatusNotFound {
		t.Errorf("unknown load balancer: %d, want 404", code)
	}
	// Nothing above changed anything, and with nothing to balance vipd
	// keeps out of nftables (NAT chains would track every connection).
	if lbs, err := lbClient(n1).LoadBalancers(t.Context()); err != nil || len(lbs) != 0 {
		t.Errorf("load balancers after bad requests: %v, %v; want none", lbs, err)
	}
	if tables, err := n1.Exec(t.Context(), "nft", "list", "tables"); err != nil || strings.Contains(tables, "vipd") {
		t.Errorf("nft tables with no load balancer: %q, %v; want no vipd table", tables, err)
	}

	// An address the operator already has on the host is never handed
	// out: asking for it is a conflict naming the interface, and the pool
	// skips it. vipd leaves it where it is.
	if out, err := n1.Exec(t.Context(), "ip", "addr", "add", "198.51.100.0/32", "dev", "lo"); err != nil {
		t.Fatalf("add the operator's address: %v\n%s", err, out)
	}
	if code, e := call(http.MethodPost, "/loadbalancer", "s3cret-token", `{"name": "w", "port": 80, "address": "198.51.100.0"}`); code != http.StatusConflict || !strings.Contains(e.Message, "interface lo") {
		t.Errorf("an explicit host address: %d %+v, want 409 naming interface lo", code, e)
	}
	l, created, err := lbClient(n1).CreateLoadBalancer(t.Context(), api.LoadBalancerRequest{Name: "w", Port: 80})
	if err != nil || !created || l.EIP != "198.51.100.1" {
		t.Fatalf("allocated %+v, created %v, %v; want 198.51.100.1 (the host's 198.51.100.0 skipped)", l, created, err)
	}
	if err := lbClient(n1).DeleteLoadBalancer(t.Context(), l.UUID); err != nil {
		t.Fatal(err)
	}
	if out, err := n1.Exec(t.Context(), "ip", "-o", "addr", "show", "dev", "lo"); err != nil || !strings.Contains(out, "198.51.100.0/32") {
		t.Errorf("the operator's address after vipd's work: %v\n%s", err, out)
	}
}

// TestServicePortsAndPoolReload: a service's ports keep the host's other
// listeners off its VIP, and a reload that would orphan a load balancer's
// address is refused, naming it, with everything left running.
func TestServicePortsAndPoolReload(t *testing.T) {
	w := lbWorld(t, 1)
	r1, n1, c1 := w.Router("r1"), w.Node("n1"), w.Client()
	vip := addr("198.51.100.20")
	service := fmt.Sprintf("services:\n  - {name: web, vips: [%s], ports: [80]}\n", vip)
	p := startLBNode(t, n1, lbConfig(service))
	for _, port := range []string{"80", "22"} {
		ln, err := n1.Listen("tcp", ":"+port)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				fmt.Fprintln(conn, "port", port)
				conn.Close()
			}
		}()
	}
	waitFIB(t, r1, netip.PrefixFrom(vip, 32), n1.Addr4())
	dial := func(port int) error {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		conn, err := c1.DialContext(ctx, "tcp", netip.AddrPortFrom(vip, uint16(port)).String())
		if err == nil {
			conn.Close()
		}
		return err
	}
	if err := dial(80); err != nil {
		t.Errorf("port 80, listed in ports: %v", err)
	}
	if err := dial(22); err == nil {
		t.Error("port 22, not listed in ports: connected, want it dropped")
	}

	l, _, err := lbClient(n1).CreateLoadBalancer(t.Context(), api.LoadBalancerRequest{Name: "keeper", Port: 80})
	if err != nil {
		t.Fatal(err)
	}
	args := p.Args()
	conf := args[len(args)-1]
	shrunk := lbConfigPool(mustPrefix("198.51.100.8/29"), service) + n1.RuntimeYAML()
	if err := os.WriteFile(conf, []byte(shrunk), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := vipdCLI(n1, "reload")
	if err == nil || !strings.Contains(out, `"keeper"`) || !strings.Contains(out, l.EIP) {
		t.Errorf("reload orphaning %s of keeper: %v\n%s\nwant an error naming keeper and its address", l.EIP, err, out)
	}
	if lbs, err := lbClient(n1).LoadBalancers(t.Context()); err != nil || len(lbs) != 1 || lbs[0].EIP != l.EIP {
		t.Errorf("after the refused reload: %+v, %v; want keeper as it was", lbs, err)
	}
	if err := dial(80); err != nil {
		t.Errorf("after the refused reload, port 80: %v", err)
	}
}

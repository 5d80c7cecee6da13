package dataplane

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vipd/vipd/internal/lb"
	"github.com/vipd/vipd/internal/testnet"
	"github.com/vipd/vipd/internal/testnet/worldtest"
)

// ioTimeout bounds every dial, read and write of the packet tests.
const ioTimeout = 2 * time.Second

// backendPort is where every backend serves TCP and UDP; the local-mode
// server on lb1 listens on localPort.
const (
	backendPort = 8080
	localPort   = 8081
)

// emptyPort is a load balancer without backends; lb1 listens on it too,
// so a connection succeeds unless the load balancer drops it.
const emptyPort = 83

// packetLab is a LAN with two load-balancer nodes holding the VIPs, a
// client that reaches the VIPs through lb1, and three backends that answer
// every connection and datagram with their name and the address they see.
type packetLab struct {
	t        *testing.T
	w        *testnet.World
	lb1, lb2 *dpNode
	client   *testnet.Host
	backends []*testnet.Host
}

// dpNode is a load-balancer node with its Table.
type dpNode struct {
	h     *testnet.Host
	table *Table
}

func newPacketLab(t *testing.T) *packetLab {
	t.Helper()
	w := worldtest.New(t, testnet.Spec{
		Nodes: []testnet.NodeSpec{
			{Name: "lb1", Address: netip.MustParseAddr("10.255.255.21")},
			{Name: "lb2", Address: netip.MustParseAddr("10.255.255.22")},
		},
		Client: &testnet.NodeSpec{Name: "c", Address: netip.MustParseAddr("10.255.255.30")},
		Hosts: []testnet.NodeSpec{
			{Name: "b1", Address: netip.MustParseAddr("10.255.255.41")},
			{Name: "b2", Address: netip.MustParseAddr("10.255.255.42")},
			{Name: "b3", Address: netip.MustParseAddr("10.255.255.43")},
		},
	})
	l := &packetLab{t: t, w: w, client: &w.Client().Host, backends: w.Hosts()}
	l.lb1, l.lb2 = l.newNode(&w.Node("lb1").Host), l.newNode(&w.Node("lb2").Host)
	l.exec(l.client, "ip", "route", "add", vip4.String()+"/32", "via", l.lb1.h.Addr4().String())
	l.exec(l.client, "ip", "-6", "route", "add", vip6.String()+"/128", "via", l.lb1.h.Addr6().String())
	for _, b := range l.backends {
		serveTCP(t, b, listen(t, b, "tcp", fmt.Sprintf("[::]:%d", backendPort)))
		serveUDP(t, b, fmt.Sprintf("[::]:%d", backendPort))
		// Replies of the load balancer without masquerade go back through lb1.
		l.exec(b, "ip", "route", "add", l.client.Addr4().String()+"/32", "via", l.lb1.h.Addr4().String())
	}
	for _, port := range []int{localPort, emptyPort, 2222, 2223} {
		serveTCP(t, l.lb1.h, listen(t, l.lb1.h, "tcp", fmt.Sprintf("[::]:%d", port)))
	}
	serveTCP(t, l.client, listen(t, l.client, "tcp", "[::]:9000"))
	return l
}

// newNode binds the VIPs to lo, applies the host settings nat mode needs
// and creates the node's Table, all inside the node's namespace.
func (l *packetLab) newNode(h *testnet.Host) *dpNode {
	l.t.Helper()
	l.exec(h, "ip", "addr", "add", vip4.String()+"/32", "dev", "lo")
	l.exec(h, "ip", "addr", "add", vip6.String()+"/128", "dev", "lo", "nodad")
	n := &dpNode{h: h}
	err := h.InNamespace(func() error {
		settings, err := ApplyHostSettings(ProcSys, true)
		if err != nil {
			return err
		}
		if !slices.Contains(settings, Setting{Name: "net.ipv4.ip_forward", Was: "0", Want: "1"}) {
			return fmt.Errorf("settings %v lack ip_forward 0 -> 1", settings)
		}
		n.table, err = New(nil)
		return err
	})
	if err != nil {
		l.t.Fatalf("%s: %v", h.Name(), err)
	}
	for _, s := range []string{"net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding", "net.ipv6.conf.lan0.accept_ra"} {
		want := map[bool]string{true: "2", false: "1"}[strings.HasSuffix(s, "accept_ra")]
		if got := strings.TrimSpace(l.exec(h, "sysctl", "-n", s)); got != want {
			l.t.Errorf("%s: %s = %s, want %s", h.Name(), s, got, want)
		}
	}
	return n
}

func (l *packetLab) exec(h *testnet.Host, cmd string, args ...string) string {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := h.Exec(ctx, cmd, args...)
	if err != nil {
		l.t.Fatal(err)
	}
	return out
}

func (n *dpNode) set(t *testing.T, s State) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.h.InNamespace(func() error { return n.table.Set(ctx, s) }); err != nil {
		t.Fatalf("%s: Set: %v", n.h.Name(), err)
	}
}

func listen(t *testing.T, h *testnet.Host, network, addr string) net.Listener {
	t.Helper()
	ln, err := h.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// serveTCP greets every connection with "name remote-address" and then
// answers each line with "name line", until the test ends.
func serveTCP(t *testing.T, h *testnet.Host, ln net.Listener) {
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		conns  = map[net.Conn]bool{}
		closed bool
	)
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		closed = true
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			if closed {
				conn.Close()
			}
			conns[conn] = true
			mu.Unlock()
			wg.Go(func() {
				defer func() {
					mu.Lock()
					delete(conns, conn)
					mu.Unlock()
					conn.Close()
				}()
				remote := netip.MustParseAddrPort(conn.RemoteAddr().String()).Addr().Unmap()
				fmt.Fprintf(conn, "%s %s\n", h.Name(), remote)
				sc := bufio.NewScanner(conn)
				for sc.Scan() {
					fmt.Fprintf(conn, "%s %s\n", h.Name(), sc.Text())
				}
			})
		}
	})
}

// serveUDP answers every datagram with "name remote-address".
func serveUDP(t *testing.T, h *testnet.Host, addr string) {
	t.Helper()
	var pc net.PacketConn
	if err := h.InNamespace(func() (err error) { pc, err = net.ListenPacket("udp", addr); return err }); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { pc.Close(); wg.Wait() })
	wg.Go(func() {
		buf := make([]byte, 1500)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			remote := netip.MustParseAddrPort(from.String()).Addr().Unmap()
			pc.WriteTo(fmt.Appendf(nil, "%s %s", h.Name(), remote), from)
		}
	})
}

// answer is a server's greeting: who answered and whom it saw.
type answer struct{ name, remote string }

func parseAnswer(line string) (answer, error) {
	name, remote, ok := strings.Cut(strings.TrimSpace(line), " ")
	if !ok {
		return answer{}, fmt.Errorf("bad answer %q", line)
	}
	return answer{name, remote}, nil
}

// ask opens a TCP connection from the calling thread's namespace and
// returns the greeting. A non-nil keep receives the open connection.
func ask(addr netip.AddrPort, local netip.Addr, keep *net.Conn) (answer, error) {
	d := net.Dialer{Timeout: ioTimeout}
	if local.IsValid() {
		d.LocalAddr = &net.TCPAddr{IP: local.AsSlice()}
	}
	conn, err := d.Dial("tcp", addr.String())
	if err != nil {
		return answer{}, err
	}
	conn.SetDeadline(time.Now().Add(ioTimeout))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		conn.Close()
		return answer{}, fmt.Errorf("%s: %w", addr, err)
	}
	if keep != nil {
		*keep = conn
	} else {
		conn.Close()
	}
	return parseAnswer(line)
}

// askMany opens n connections from h to addr, one after the other, and
// returns the greetings.
func askMany(t *testing.T, h *testnet.Host, addr netip.AddrPort, n int) []answer {
	t.Helper()
	var out []answer
	err := h.InNamespace(func() error {
		for range n {
			a, err := ask(addr, netip.Addr{}, nil)
			if err != nil {
				return err
			}
			out = append(out, a)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%s: %v", h.Name(), err)
	}
	return out
}

// udpFlow is one UDP flow from the client: a fixed source port.
type udpFlow struct{ conn *net.UDPConn }

// udpFlows opens n UDP sockets on the client, connected to addr.
func udpFlows(t *testing.T, h *testnet.Host, addr netip.AddrPort, n int) []udpFlow {
	t.Helper()
	var flows []udpFlow
	err := h.InNamespace(func() error {
		for range n {
			c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(addr))
			if err != nil {
				return err
			}
			t.Cleanup(func() { c.Close() })
			flows = append(flows, udpFlow{c})
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%s: %v", h.Name(), err)
	}
	return flows
}

func (f udpFlow) ask() (answer, error) {
	f.conn.SetDeadline(time.Now().Add(ioTimeout))
	if _, err := f.conn.Write([]byte("?")); err != nil {
		return answer{}, err
	}
	buf := make([]byte, 1500)
	n, err := f.conn.Read(buf)
	if err != nil {
		return answer{}, fmt.Errorf("udp from %s: %w", f.conn.LocalAddr(), err)
	}
	return parseAnswer(string(buf[:n]))
}

// askAll sends one datagram on each flow and returns the answering names.
func askAll(t *testing.T, flows []udpFlow) []string {
	t.Helper()
	names := make([]string, len(flows))
	for i, f := range flows {
		a, err := f.ask()
		if err != nil {
			t.Fatal(err)
		}
		names[i] = a.name
	}
	return names
}

func count(answers []answer) map[string]int {
	c := map[string]int{}
	for _, a := range answers {
		c[a.name]++
	}
	return c
}

// labState is what the lab's load balancers hold, backends listed in
// order (lb2 gets them reversed, as another node might list them).
func (l *packetLab) state(reverse bool, without ...string) State {
	var v4, v6 []Backend
	for _, b := range l.backends {
		if !slices.Contains(without, b.Name()) {
			v4 = append(v4, Backend{Addr: netip.AddrPortFrom(b.Addr4(), backendPort), Weight: 1})
			v6 = append(v6, Backend{Addr: netip.AddrPortFrom(b.Addr6(), backendPort), Weight: 1})
		}
	}
	if reverse {
		slices.Reverse(v4)
		slices.Reverse(v6)
	}
	nat := func(id string, addr netip.Addr, port uint16, proto lb.Protocol, bs []Backend) LoadBalancer {
		return LoadBalancer{ID: id, Address: addr, Port: port, Protocol: proto, Mode: lb.ModeNAT, Masquerade: true, Backends: bs}
	}
	plain := nat("plain4", vip4, 82, lb.TCP, []Backend{{Addr: netip.AddrPortFrom(l.backends[0].Addr4(), backendPort), Weight: 1}})
	plain.Masquerade = false
	return State{
		LoadBalancers: []LoadBalancer{
			nat("web4", vip4, 80, lb.TCP, v4),
			nat("web6", vip6, 80, lb.TCP, v6),
			nat("dns4", vip4, 53, lb.UDP, v4),
			plain,
			{ID: "local4", Address: vip4, Port: 81, Protocol: lb.TCP, Mode: lb.ModeLocal,
				Backends: []Backend{{Addr: netip.AddrPortFrom(vip4, localPort), Weight: 1}}},
			nat("empty4", vip4, emptyPort, lb.TCP, nil),
		},
		Filters: []PortFilter{{Address: vip4, Ports: []uint16{2222}}},
	}
}

// TestPackets sends real traffic through the table in network namespaces.
func TestPackets(t *testing.T) {
	l := newPacketLab(t)
	// lb2 starts with what a crashed vipd left, and a table of someone else.
	l.exec(l.lb2.h, "nft", "add table inet vipd; add chain inet vipd junk; add table inet keepme")
	l.lb1.set(t, l.state(false))
	l.lb2.set(t, l.state(true))
	web4 := netip.AddrPortFrom(vip4, 80)

	t.Run("spread over backends, masqueraded", func(t *testing.T) {
		answers := askMany(t, l.client, web4, 300)
		c := count(answers)
		t.Logf("300 connections: %v", c)
		// 100 each on average; 50 is more than 6 standard deviations off.
		for _, b := range l.backends {
			if c[b.Name()] < 50 {
				t.Errorf("backend %s got %d of 300 connections, want >= 50 (all: %v)", b.Name(), c[b.Name()], c)
			}
		}
		for _, a := range answers {
			if a.remote != l.lb1.h.Addr4().String() {
				t.Fatalf("backend %s saw the client as %s, want lb1's address %s", a.name, a.remote, l.lb1.h.Addr4())
			}
		}
	})

	t.Run("ipv6", func(t *testing.T) {
		answers := askMany(t, l.client, netip.AddrPortFrom(vip6, 80), 30)
		if c := count(answers); len(c) < 2 {
			t.Errorf("30 connections reached only %v", c)
		}
		for _, a := range answers {
			if a.remote != l.lb1.h.Addr6().String() {
				t.Fatalf("backend %s saw the client as %s, want lb1's address %s", a.name, a.remote, l.lb1.h.Addr6())
			}
		}
	})

	t.Run("without masquerade the backend sees the client", func(t *testing.T) {
		a := askMany(t, l.client, netip.AddrPortFrom(vip4, 82), 1)[0]
		if want := (answer{"b1", l.client.Addr4().String()}); a != want {
			t.Errorf("got %+v, want %+v", a, want)
		}
	})

	t.Run("local mode", func(t *testing.T) {
		local := netip.AddrPortFrom(vip4, 81)
		if a := askMany(t, l.client, local, 1)[0]; a.name != "lb1" {
			t.Errorf("from the client: answered by %s, want lb1's local server", a.name)
		}
		if a := askMany(t, l.lb1.h, local, 1)[0]; a.name != "lb1" {
			t.Errorf("from lb1 itself: answered by %s, want lb1's local server", a.name)
		}
	})

	t.Run("no backend: dropped", func(t *testing.T) {
		l.dropped(t, netip.AddrPortFrom(vip4, emptyPort))
	})

	t.Run("port filter", func(t *testing.T) {
		if a := askMany(t, l.client, netip.AddrPortFrom(vip4, 2222), 1)[0]; a.name != "lb1" {
			t.Errorf("allowed port answered by %s, want lb1", a.name)
		}
		l.dropped(t, netip.AddrPortFrom(vip4, 2223))
		if a := askMany(t, l.lb1.h, netip.AddrPortFrom(vip4, 2223), 1)[0]; a.name != "lb1" {
			t.Errorf("other port from lb1 itself: answered by %s, want lb1", a.name)
		}
		// Replies to a connection lb1 opens from the VIP come back in.
		err := l.lb1.h.InNamespace(func() error {
			a, err := ask(netip.AddrPortFrom(l.client.Addr4(), 9000), vip4, nil)
			if err == nil && a.remote != vip4.String() {
				err = fmt.Errorf("client saw %s, want the VIP", a.remote)
			}
			return err
		})
		if err != nil {
			t.Errorf("connection from the VIP: %v", err)
		}
	})

	t.Run("two nodes pick the same backend", func(t *testing.T) {
		flows := udpFlows(t, l.client, netip.AddrPortFrom(vip4, 53), 40)
		viaLB1 := askAll(t, flows)
		l.exec(l.client, "ip", "route", "replace", vip4.String()+"/32", "via", l.lb2.h.Addr4().String())
		defer l.exec(l.client, "ip", "route", "replace", vip4.String()+"/32", "via", l.lb1.h.Addr4().String())
		viaLB2 := askAll(t, flows)
		if !slices.Equal(viaLB1, viaLB2) {
			t.Errorf("same flows, different backends:\nvia lb1 %v\nvia lb2 %v", viaLB1, viaLB2)
		}
		if c := count(answersOf(viaLB1)); len(c) < 2 {
			t.Errorf("40 flows all went to %v: the test shows nothing", c)
		}
	})

	t.Run("departed backend gets no new flows, the others keep theirs", func(t *testing.T) {
		flows := udpFlows(t, l.client, netip.AddrPortFrom(vip4, 53), 12)
		before := askAll(t, flows)
		gone := before[0]
		// An established TCP connection to another backend.
		var kept net.Conn
		err := l.client.InNamespace(func() error {
			for range 30 {
				a, err := ask(web4, netip.Addr{}, &kept)
				if err != nil || a.name != gone {
					return err
				}
				kept.Close()
			}
			return errors.New("30 connections all reached " + gone)
		})
		if err != nil {
			t.Fatal(err)
		}
		defer kept.Close()

		l.lb1.set(t, l.state(false, gone))
		defer l.lb1.set(t, l.state(false))

		kept.SetDeadline(time.Now().Add(ioTimeout))
		fmt.Fprintln(kept, "still there?")
		if line, err := bufio.NewReader(kept).ReadString('\n'); err != nil || !strings.HasSuffix(line, " still there?\n") {
			t.Errorf("established connection after the change: %q, %v", line, err)
		}
		after := askAll(t, flows)
		for i := range flows {
			switch {
			case before[i] == gone && after[i] == gone:
				t.Errorf("udp flow %d still reaches %s: its conntrack entry was not deleted", i, gone)
			case before[i] != gone && after[i] != before[i]:
				t.Errorf("udp flow %d moved from %s to %s", i, before[i], after[i])
			}
		}
		for _, a := range askMany(t, l.client, web4, 60) {
			if a.name == gone {
				t.Fatalf("a new connection reached the departed backend %s", gone)
			}
		}
	})

	t.Run("crash leftovers, removal and delete", func(t *testing.T) {
		if out := l.exec(l.lb2.h, "nft", "list", "table", "inet", "vipd"); strings.Contains(out, "junk") {
			t.Errorf("first Set kept a leftover chain:\n%s", out)
		}
		s := l.state(true)
		s.LoadBalancers = slices.DeleteFunc(s.LoadBalancers, func(lb LoadBalancer) bool { return lb.ID == "web6" })
		l.lb2.set(t, s)
		// Removal empties web6's chain and map at once; the objects go
		// with a later Set.
		if out := l.exec(l.lb2.h, "nft", "list", "table", "inet", "vipd"); strings.Contains(out, "goto lb-web6") ||
			strings.Contains(out, "map @lb-web6-maglev") || !strings.Contains(out, "map @lb-web4-maglev") {
			t.Errorf("after removing web6, the table is:\n%s", out)
		}
		l.lb2.table.now = func() time.Time { return time.Now().Add(2 * retireAfter) }
		l.lb2.set(t, s)
		if out := l.exec(l.lb2.h, "nft", "list", "chains", "inet"); strings.Contains(out, "lb-web6") || !strings.Contains(out, "lb-web4") {
			t.Errorf("a Set after web6's removal left its chain; chains are:\n%s", out)
		}
		if out := l.exec(l.lb2.h, "nft", "list", "maps", "inet"); strings.Contains(out, "lb-web6-maglev") {
			t.Errorf("a Set after web6's removal left its map; maps are:\n%s", out)
		}
		for range 2 {
			if err := l.lb2.h.InNamespace(func() error { return l.lb2.table.Delete(context.Background()) }); err != nil {
				t.Fatalf("Delete: %v", err)
			}
		}
		out := l.exec(l.lb2.h, "nft", "list", "tables")
		if strings.Contains(out, "inet vipd") || !strings.Contains(out, "inet keepme") {
			t.Errorf("after Delete, tables are:\n%s", out)
		}
	})
}

// dropped checks that a connection from the client to addr times out.
func (l *packetLab) dropped(t *testing.T, addr netip.AddrPort) {
	t.Helper()
	err := l.client.InNamespace(func() error {
		_, err := ask(addr, netip.Addr{}, nil)
		return err
	})
	if ne, ok := errors.AsType[net.Error](err); !ok || !ne.Timeout() {
		t.Errorf("%s: dial error %v, want a timeout (dropped)", addr, err)
	}
}

func answersOf(names []string) []answer {
	out := make([]answer, len(names))
	for i, n := range names {
		out[i] = answer{name: n}
	}
	return out
}

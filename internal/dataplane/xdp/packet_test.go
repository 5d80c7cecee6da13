package xdp

import (
	"context"
	"math/rand/v2"
	"net"
	"net/netip"
	"testing"

	"github.com/vipd/vipd/internal/lb"
	"github.com/vipd/vipd/internal/maglev"
)

var (
	vip4 = netip.MustParseAddr("198.51.100.1")
	vip6 = netip.MustParseAddr("2001:db8:10::1")
	be4  = netip.MustParseAddr("10.0.0.0")
	be6  = netip.MustParseAddr("2001:db8:be::")
)

// testState is four load balancers: TCP and UDP on port 80 of vip4 and
// vip6, three backends each, and an empty one on vip4:443.
func testState() State {
	return State{LoadBalancers: []LoadBalancer{
		{ID: "tcp4", Address: vip4, Port: 80, Protocol: lb.TCP, Backends: backendsAt(be4, 80, 3)},
		{ID: "udp4", Address: vip4, Port: 53, Protocol: lb.UDP, Backends: backendsAt(be4, 53, 3)},
		{ID: "tcp6", Address: vip6, Port: 80, Protocol: lb.TCP, Backends: backendsAt(be6, 80, 3)},
		{ID: "udp6", Address: vip6, Port: 53, Protocol: lb.UDP, Backends: backendsAt(be6, 53, 3)},
		{ID: "empty", Address: vip4, Port: 443, Protocol: lb.TCP},
	}}
}

func setState(t *testing.T, p *Plane, s State) {
	t.Helper()
	if err := p.Set(context.Background(), s); err != nil {
		t.Fatal(err)
	}
}

// TestForwardsToMaglevBackend: TCP and UDP, IPv4 and IPv6, to a load
// balancer go back out (XDP_TX) to the backend the Go side's table and
// hash choose, with only the MACs rewritten, over many flows.
func TestForwardsToMaglevBackend(t *testing.T) {
	p := newTestPlane(t)
	s := testState()
	setState(t, p, s)
	cases := []struct {
		name     string
		backends []Backend
		src      netip.Addr
		frame    func(src netip.Addr, sport uint16) []byte
	}{
		{"tcp4", s.LoadBalancers[0].Backends, client4, func(a netip.Addr, sp uint16) []byte { return tcp4(a, sp, vip4, 80) }},
		{"udp4", s.LoadBalancers[1].Backends, client4, func(a netip.Addr, sp uint16) []byte { return udp4(a, sp, vip4, 53) }},
		{"tcp6", s.LoadBalancers[2].Backends, client6, func(a netip.Addr, sp uint16) []byte { return tcp6(a, sp, vip6, 80) }},
		{"udp6", s.LoadBalancers[3].Backends, client6, func(a netip.Addr, sp uint16) []byte { return udp6(a, sp, vip6, 53) }},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			used := map[string]int{}
			for i := range 600 {
				src, sport := tc.src, uint16(1024+rng.IntN(60000))
				if i%2 == 1 { // vary the address too
					b := src.AsSlice()
					b[len(b)-1] = byte(rng.IntN(256))
					src, _ = netip.AddrFromSlice(b)
				}
				in := tc.frame(src, sport)
				ret, out := run(t, p, in)
				want := wantBackend(tc.backends, src, sport)
				if ret != xdpTX || !onlyMACsChanged(in, out, want) {
					t.Fatalf("flow %s:%d: verdict %d, frame\n%x\nwant XDP_TX (%d) to %s:\n%x", src, sport, ret, out, xdpTX, want, in)
				}
				used[want.String()]++
			}
			if len(used) != len(tc.backends) {
				t.Errorf("600 flows reached %d backends, want all %d: %v", len(used), len(tc.backends), used)
			}
		})
	}
}

// TestPassesEverythingElse: the kernel gets, untouched, every frame that
// is not a load balancer's TCP or UDP traffic to this interface's MAC.
func TestPassesEverythingElse(t *testing.T) {
	p := newTestPlane(t)
	setState(t, p, testState())
	const mf, offset = 0x2000, 0x00b9
	tcpPayload := l4(6, 40000, 80)
	cases := []struct {
		name  string
		frame []byte
	}{
		{"other port", tcp4(client4, 40000, vip4, 8080)},
		{"other address", tcp4(client4, 40000, vip4.Next(), 80)},
		{"udp to a tcp load balancer", udp4(client4, 40000, vip4, 80)},
		{"tcp to a udp load balancer", tcp6(client6, 40000, vip6, 53)},
		{"ipv4 first fragment (MF)", ethernet(nodeMAC, 0x0800, ipv4(client4, vip4, 6, 5, mf, tcpPayload))},
		{"ipv4 later fragment", ethernet(nodeMAC, 0x0800, ipv4(client4, vip4, 6, 5, offset, tcpPayload))},
		{"ipv4 last fragment", ethernet(nodeMAC, 0x0800, ipv4(client4, vip4, 17, 5, offset, l4(17, 40000, 53)))},
		{"ipv6 fragment header", ethernet(nodeMAC, 0x86dd, ipv6(client6, vip6, 44, append([]byte{6, 0, 0, 1, 0, 0, 0, 1}, tcpPayload...)))},
		{"ipv6 hop-by-hop header", ethernet(nodeMAC, 0x86dd, ipv6(client6, vip6, 0, append([]byte{6, 0, 1, 4, 0, 0, 0, 0}, tcpPayload...)))},
		{"icmp", ethernet(nodeMAC, 0x0800, ipv4(client4, vip4, 1, 5, 0, []byte{8, 0, 0, 0, 0, 1, 0, 1}))},
		{"icmp fragmentation needed", ethernet(nodeMAC, 0x0800, ipv4(client4, vip4, 1, 5, 0, append([]byte{3, 4, 0, 0, 0, 0, 5, 0xdc}, ipv4(vip4, client4, 6, 5, 0, l4(6, 80, 40000))...)))},
		{"icmpv6 packet too big", ethernet(nodeMAC, 0x86dd, ipv6(client6, vip6, 58, append([]byte{2, 0, 0, 0, 0, 0, 5, 0xdc}, ipv6(vip6, client6, 6, l4(6, 80, 40000))...)))},
		{"another host's MAC (flooded by a bridge)", ethernet(otherMAC, 0x0800, ipv4(client4, vip4, 6, 5, 0, tcpPayload))},
		{"broadcast", ethernet(net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 0x0800, ipv4(client4, vip4, 6, 5, 0, tcpPayload))},
		{"arp", ethernet(nodeMAC, 0x0806, make([]byte, 28))},
		{"vlan tag", ethernet(nodeMAC, 0x8100, append([]byte{0, 10, 0x08, 0}, ipv4(client4, vip4, 6, 5, 0, tcpPayload)...))},
		// Malformed and truncated: pass, for the kernel to drop.
		{"ethernet header only", ethernet(nodeMAC, 0x0800, nil)},
		{"ipv4 header cut", ethernet(nodeMAC, 0x0800, ipv4(client4, vip4, 6, 5, 0, tcpPayload)[:19])},
		{"ipv4 ihl 4", ethernet(nodeMAC, 0x0800, ipv4(client4, vip4, 6, 4, 0, tcpPayload))},
		{"ipv4 ihl beyond the frame", ethernet(nodeMAC, 0x0800, ipv4(client4, vip4, 6, 15, 0, nil)[:24])},
		{"ipv4 ports cut", ethernet(nodeMAC, 0x0800, ipv4(client4, vip4, 6, 5, 0, tcpPayload[:3]))},
		{"ipv4 with options, ports cut", ethernet(nodeMAC, 0x0800, ipv4(client4, vip4, 6, 6, 0, tcpPayload[:2]))},
		{"version 6 in an ipv4 frame", ethernet(nodeMAC, 0x0800, ipv6(client6, vip6, 6, tcpPayload))},
		{"ipv6 header cut", ethernet(nodeMAC, 0x86dd, ipv6(client6, vip6, 6, nil)[:39])},
		{"ipv6 ports cut", ethernet(nodeMAC, 0x86dd, ipv6(client6, vip6, 6, tcpPayload[:3]))},
		{"version 4 in an ipv6 frame", ethernet(nodeMAC, 0x86dd, append(ipv4(client4, vip4, 6, 5, 0, tcpPayload), make([]byte, 20)...))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ret, out := run(t, p, tc.frame)
			if ret != xdpPass || string(out) != string(tc.frame) {
				t.Errorf("verdict %d, frame\n%x\nwant XDP_PASS (%d), unchanged:\n%x", ret, out, xdpPass, tc.frame)
			}
		})
	}
}

// TestOptionsAreSkipped: an IPv4 header with options still finds the
// ports after it.
func TestOptionsAreSkipped(t *testing.T) {
	p := newTestPlane(t)
	s := testState()
	setState(t, p, s)
	in := ethernet(nodeMAC, 0x0800, ipv4(client4, vip4, 6, 7, 0, l4(6, 40000, 80)))
	ret, out := run(t, p, in)
	if want := wantBackend(s.LoadBalancers[0].Backends, client4, 40000); ret != xdpTX || !onlyMACsChanged(in, out, want) {
		t.Errorf("verdict %d, frame %x; want XDP_TX to %s", ret, out, want)
	}
}

// TestNoBackendDrops: a load balancer with no backend drops its traffic,
// as the nftables modes do.
func TestNoBackendDrops(t *testing.T) {
	p := newTestPlane(t)
	setState(t, p, testState())
	if ret, _ := run(t, p, tcp4(client4, 40000, vip4, 443)); ret != xdpDrop {
		t.Errorf("to the empty load balancer: verdict %d, want XDP_DROP (%d)", ret, xdpDrop)
	}
}

// TestCounters: each load balancer counts its own packets and bytes.
func TestCounters(t *testing.T) {
	p := newTestPlane(t)
	setState(t, p, testState())
	frame := tcp4(client4, 40000, vip4, 80)
	for range 5 {
		run(t, p, frame)
	}
	run(t, p, udp6(client6, 40000, vip6, 53))
	run(t, p, tcp4(client4, 40000, vip4, 8080)) // no load balancer's
	got, err := p.Counters()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Counter{
		"tcp4": {5, 5 * uint64(len(frame))}, "udp4": {}, "tcp6": {},
		"udp6": {1, uint64(len(udp6(client6, 40000, vip6, 53)))}, "empty": {},
	}
	for id, w := range want {
		if got[id] != w {
			t.Errorf("counter %s = %+v, want %+v (all: %+v)", id, got[id], w, got)
		}
	}
	// A removed load balancer's id, reused, counts from zero.
	s := testState()
	s.LoadBalancers = s.LoadBalancers[1:]
	setState(t, p, s)
	s.LoadBalancers = append(s.LoadBalancers, LoadBalancer{ID: "new", Address: vip4, Port: 81, Protocol: lb.TCP})
	setState(t, p, s)
	if got, _ := p.Counters(); got["new"] != (Counter{}) || len(got) != 5 {
		t.Errorf("after replacing tcp4 by new: %+v, want new at zero and 5 load balancers", got)
	}
}

// TestBackendLeaves: when one of N backends leaves, the flows of the
// others keep their backend, the leaver's move, and the table change
// moves at most 1.1/N of the slots.
func TestBackendLeaves(t *testing.T) {
	p := newTestPlane(t)
	const n = 10
	backends := backendsAt(be4, 80, n)
	s := State{LoadBalancers: []LoadBalancer{{ID: "web", Address: vip4, Port: 80, Protocol: lb.TCP, Backends: backends}}}
	setState(t, p, s)
	before := tableSlots(backends)
	const flows = 2000
	chosen := make(map[uint16]string, flows)
	for sport := uint16(20000); sport < 20000+flows; sport++ {
		_, out := run(t, p, tcp4(client4, sport, vip4, 80))
		chosen[sport] = net.HardwareAddr(out[0:6]).String()
	}

	gone := backends[4]
	s.LoadBalancers[0].Backends = append(backends[:4:4], backends[5:]...)
	setState(t, p, s)
	after := tableSlots(s.LoadBalancers[0].Backends)
	moved := 0
	for i := range before {
		if before[i] != after[i] {
			moved++
		}
	}
	if limit := 1.1 / n * TableSize; float64(moved) > limit {
		t.Errorf("%d of %d slots moved, more than 1.1/N (%.0f)", moved, TableSize, limit)
	}
	for sport, was := range chosen {
		_, out := run(t, p, tcp4(client4, sport, vip4, 80))
		now := net.HardwareAddr(out[0:6]).String()
		switch {
		case was == gone.MAC.String() && now == was:
			t.Errorf("flow from port %d still goes to the removed backend", sport)
		case was != gone.MAC.String() && now != was:
			t.Errorf("flow from port %d moved from %s to %s, though its backend stayed", sport, was, now)
		}
	}
	t.Logf("removing 1 of %d backends moved %d slots (%.3f/N)", n, moved, float64(moved)*n/TableSize)
}

// TestTableBalance: with the large table, removing any one of N backends
// moves at most 1.1/N of the slots, for the sizes the issue names.
func TestTableBalance(t *testing.T) {
	for _, n := range []int{2, 3, 5, 10, 20} {
		backends := make([]maglev.Backend, n)
		for i := range backends {
			backends[i] = maglev.Backend{Key: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 1, byte(i + 1)}), 80).String(), Weight: 1}
		}
		table := maglev.TableOfSize(backends, TableSize)
		share := make([]int, n)
		for _, k := range table {
			share[k]++
		}
		for i, c := range share {
			if frac := float64(c) * float64(n) / TableSize; frac > 1.1 {
				t.Errorf("N=%d: backend %d holds %.3f/N of the slots: removing it moves more than 1.1/N", n, i, frac)
			}
		}
	}
}

// TestUpdateChangesOnlyWhatChanged: a repeat writes nothing, and a key
// change of a load balancer keeps its table.
func TestUpdateChangesOnlyWhatChanged(t *testing.T) {
	p := newTestPlane(t)
	s := testState()
	setState(t, p, s)
	table := p.lbs["tcp4"].table
	setState(t, p, s)
	if p.lbs["tcp4"].table != table {
		t.Error("a repeat replaced the table")
	}
	s.LoadBalancers[0].Port = 8080
	setState(t, p, s)
	if p.lbs["tcp4"].table != table {
		t.Error("a port change replaced the table")
	}
	if ret, _ := run(t, p, tcp4(client4, 40000, vip4, 80)); ret != xdpPass {
		t.Errorf("old port after the change: verdict %d, want XDP_PASS", ret)
	}
	if ret, _ := run(t, p, tcp4(client4, 40000, vip4, 8080)); ret != xdpTX {
		t.Errorf("new port after the change: verdict %d, want XDP_TX", ret)
	}
	setState(t, p, State{})
	if ret, _ := run(t, p, tcp4(client4, 40000, vip4, 8080)); ret != xdpPass || len(p.lbs) != 0 || len(p.free) != maxLoadBalancers {
		t.Errorf("after removing all: verdict %d, %d programmed, %d ids free", ret, len(p.lbs), len(p.free))
	}
}

// FuzzProgram: whatever follows an Ethernet header addressed to the
// node, the program passes it untouched, drops it, or sends it to a
// backend with only the MACs rewritten.
func FuzzProgram(f *testing.F) {
	f.Add(uint16(0x0800), ipv4(client4, vip4, 6, 5, 0, l4(6, 40000, 80)))
	f.Add(uint16(0x86dd), ipv6(client6, vip6, 17, l4(17, 40000, 53)))
	f.Add(uint16(0x0800), ipv4(client4, vip4, 6, 15, 0, nil))
	f.Add(uint16(0x0800), ipv4(client4, vip4, 6, 5, 0, l4(6, 40000, 443)))
	p := newTestPlane(f)
	if err := p.Set(context.Background(), testState()); err != nil {
		f.Fatal(err)
	}
	macs := map[string]bool{}
	for _, l := range testState().LoadBalancers {
		for _, b := range l.Backends {
			macs[b.MAC.String()] = true
		}
	}
	f.Fuzz(func(t *testing.T, ethType uint16, payload []byte) {
		if len(payload) > 1500 {
			// Beyond an MTU; skipped rather than cut, so the fuzzer
			// does not spend its time minimizing long inputs.
			t.Skip()
		}
		in := ethernet(nodeMAC, ethType, payload)
		ret, out := run(t, p, in)
		switch ret {
		case xdpPass:
			if string(out) != string(in) {
				t.Errorf("XDP_PASS changed the frame:\n%x\n%x", in, out)
			}
		case xdpTX:
			if !macs[net.HardwareAddr(out[0:6]).String()] || !onlyMACsChanged(in, out, out[0:6]) {
				t.Errorf("XDP_TX to no backend's MAC, or changed more than the MACs:\n%x\n%x", in, out)
			}
		case xdpDrop:
		default:
			t.Errorf("verdict %d", ret)
		}
	})
}

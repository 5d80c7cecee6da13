package dataplane

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"sigs.k8s.io/knftables"

	"github.com/vipd/vipd/internal/lb"
	"github.com/vipd/vipd/internal/maglev"
)

// fakeConntrack records the flows Set asks to forget and fails on demand.
type fakeConntrack struct {
	mu     sync.Mutex
	calls  [][]flow
	failed error // returned by the next call, then cleared
}

func (c *fakeConntrack) forget(flows []flow) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, slices.Clone(flows))
	err := c.failed
	c.failed = nil
	return len(flows), err
}

// take returns the flows forgotten since the last take, sorted.
func (c *fakeConntrack) take() []flow {
	c.mu.Lock()
	defer c.mu.Unlock()
	var all []flow
	for _, call := range c.calls {
		all = append(all, call...)
	}
	c.calls = nil
	slices.SortFunc(all, func(a, b flow) int {
		return strings.Compare(a.vip.String()+a.backend.String(), b.vip.String()+b.backend.String())
	})
	return all
}

// failingNFT fails Run while fail is set.
type failingNFT struct {
	knftables.Interface
	fail bool
}

func (f *failingNFT) Run(ctx context.Context, tx *knftables.Transaction) error {
	if f.fail {
		return errors.New("injected failure")
	}
	return f.Interface.Run(ctx, tx)
}

// testSlots is a Maglev table cut to 11 slots: small enough for the fake,
// and still independent of the order of backends.
var testSlots = slotter{size: 11, table: func(bs []maglev.Backend) []int {
	if t := maglev.Table(bs); t != nil {
		return t[:11]
	}
	return nil
}}

// newFakeTable returns a Table on a knftables.Fake with testSlots.
func newFakeTable(t *testing.T) (*Table, *knftables.Fake, *fakeConntrack) {
	t.Helper()
	fake := knftables.NewFake(knftables.InetFamily, tableName)
	ct := &fakeConntrack{}
	return newTable(fake, testSlots, ct.forget, nil), fake, ct
}

func set(t *testing.T, tb *Table, s State) {
	t.Helper()
	if err := tb.Set(context.Background(), s); err != nil {
		t.Fatalf("Set: %v", err)
	}
}

// slotLine matches the elements of Maglev maps, which dumps leave out:
// slots checks them.
var slotLine = regexp.MustCompile(`^add element inet vipd lb-\S+-maglev `)

// dump returns the fake's table without Maglev slots, normalized for
// comparison: object lines sorted, rules kept in order within their chain.
func dump(fake *knftables.Fake) string {
	var lines []string
	for _, line := range strings.Split(fake.Dump(), "\n") {
		if line != "" && !slotLine.MatchString(line) {
			lines = append(lines, line)
		}
	}
	return normalize(lines)
}

// normalize sorts nft lines so that two descriptions of the same table
// compare equal: everything by its text except rules, which keep their
// order within a chain.
func normalize(lines []string) string {
	key := func(line string) string {
		if f := strings.Fields(line); len(f) > 4 && f[0] == "add" && f[1] == "rule" {
			return strings.Join(f[:5], " ")
		}
		return line
	}
	slices.SortStableFunc(lines, func(a, b string) int { return strings.Compare(key(a), key(b)) })
	return strings.Join(lines, "\n") + "\n"
}

// expect builds the expected dump: the static objects plus lines.
func expect(lines ...string) string {
	return normalize(append(strings.Split(strings.TrimSpace(staticDump), "\n"), lines...))
}

// staticDump is what every table holds.
const staticDump = `
add table inet vipd { comment "vipd load balancers and port filters; rewritten by vipd, do not edit" ; }
add chain inet vipd nat-output { type nat hook output priority -100 ; }
add chain inet vipd nat-postrouting { type nat hook postrouting priority 100 ; }
add chain inet vipd nat-prerouting { type nat hook prerouting priority -100 ; }
add chain inet vipd port-filter { type filter hook prerouting priority dstnat - 10 ; }
add chain inet vipd services
add set inet vipd allowed4 { type ipv4_addr . inet_proto . inet_service ; }
add set inet vipd allowed6 { type ipv6_addr . inet_proto . inet_service ; }
add set inet vipd filtered4 { type ipv4_addr ; }
add set inet vipd filtered6 { type ipv6_addr ; }
add set inet vipd masquerade4 { type ipv4_addr . inet_proto . inet_service ; }
add set inet vipd masquerade6 { type ipv6_addr . inet_proto . inet_service ; }
add map inet vipd services4 { type ipv4_addr . inet_proto . inet_service : verdict ; }
add map inet vipd services6 { type ipv6_addr . inet_proto . inet_service : verdict ; }
add rule inet vipd nat-output jump services
add rule inet vipd nat-postrouting ct status dnat meta l4proto { tcp, udp } ct original ip daddr . meta l4proto . ct original proto-dst @masquerade4 masquerade
add rule inet vipd nat-postrouting ct status dnat meta l4proto { tcp, udp } ct original ip6 daddr . meta l4proto . ct original proto-dst @masquerade6 masquerade
add rule inet vipd nat-prerouting jump services
add rule inet vipd port-filter iif lo accept
add rule inet vipd port-filter ct state established,related accept
add rule inet vipd port-filter meta l4proto { tcp, udp } ip daddr @filtered4 ip daddr . meta l4proto . th dport != @allowed4 drop
add rule inet vipd port-filter meta l4proto { tcp, udp } ip6 daddr @filtered6 ip6 daddr . meta l4proto . th dport != @allowed6 drop
add rule inet vipd services ip daddr . meta l4proto . th dport vmap @services4
add rule inet vipd services ip6 daddr . meta l4proto . th dport vmap @services6
`

// slots returns the backend ("addr . port") of every slot of a load
// balancer's Maglev map in the fake, "" for an empty slot.
func slots(t *testing.T, fake *knftables.Fake, id string, size int) []string {
	t.Helper()
	m := fake.Table.Maps[lbPrefix+id+maglevSuffix]
	if m == nil {
		t.Fatalf("no Maglev map for lb %s", id)
	}
	out := make([]string, size)
	for _, e := range m.Elements {
		i, err := strconv.Atoi(e.Key[0])
		if err != nil || i < 0 || i >= size || len(e.Value) != 1 {
			t.Fatalf("map %s: bad element %v : %v", m.Name, e.Key, e.Value)
		}
		out[i] = e.Value[0]
	}
	return out
}

// wantSlots returns what slots should return for backends.
func wantSlots(sl slotter, backends ...Backend) []string {
	mb := make([]maglev.Backend, len(backends))
	for i, b := range backends {
		mb[i] = maglev.Backend{Key: b.Addr.String(), Weight: b.Weight}
	}
	out := make([]string, sl.size)
	if table := sl.table(mb); table != nil {
		for i := range out {
			b := backends[table[i]].Addr
			out[i] = fmt.Sprintf("%s . %d", b.Addr(), b.Port())
		}
	}
	return out
}

func backend(s string) Backend { return Backend{Addr: netip.MustParseAddrPort(s), Weight: 1} }

var (
	vip4 = netip.MustParseAddr("192.0.2.10")
	vip6 = netip.MustParseAddr("2001:db8::10")
)

// web is a nat-mode IPv4 TCP load balancer with three backends.
func web() LoadBalancer {
	return LoadBalancer{
		ID: "web", Address: vip4, Port: 80, Protocol: lb.TCP, Mode: lb.ModeNAT, Masquerade: true,
		Backends: []Backend{backend("10.0.0.1:8080"), backend("10.0.0.2:8080"), backend("10.0.0.3:8080")},
	}
}

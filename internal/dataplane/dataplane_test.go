package dataplane

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/knftables"

	"github.com/vipd/vipd/internal/lb"
	"github.com/vipd/vipd/internal/maglev"
)

func TestSetRenders(t *testing.T) {
	tests := []struct {
		name  string
		state State
		want  string
		slots map[string][]string // by LB ID
	}{{
		name:  "empty",
		state: State{},
		want:  expect(),
	}, {
		name:  "nat ipv4 tcp with masquerade",
		state: State{LoadBalancers: []LoadBalancer{web()}},
		want: expect(
			`add chain inet vipd lb-web`,
			`add map inet vipd lb-web-maglev { typeof numgen inc mod 11 : ip daddr . th dport ; }`,
			`add rule inet vipd lb-web meta l4proto tcp dnat ip to jhash ip saddr . th sport mod 11 seed 0x76697064 map @lb-web-maglev comment "192.0.2.10:80 tcp nat"`,
			`add rule inet vipd lb-web drop`,
			`add element inet vipd services4 { 192.0.2.10 . tcp . 80 : goto lb-web }`,
			`add element inet vipd masquerade4 { 192.0.2.10 . tcp . 80 }`,
		),
		slots: map[string][]string{"web": wantSlots(testSlots, web().Backends...)},
	}, {
		name: "local mode, weighted",
		state: State{LoadBalancers: []LoadBalancer{{
			ID: "loc", Address: vip4, Port: 443, Protocol: lb.TCP, Mode: lb.ModeLocal,
			Backends: []Backend{{Addr: netip.MustParseAddrPort("192.0.2.10:8443"), Weight: 3}, backend("192.0.2.10:9443")},
		}}},
		want: expect(
			`add chain inet vipd lb-loc`,
			`add map inet vipd lb-loc-maglev { typeof numgen inc mod 11 : ip daddr . th dport ; }`,
			`add rule inet vipd lb-loc meta l4proto tcp dnat ip to jhash ip saddr . th sport mod 11 seed 0x76697064 map @lb-loc-maglev comment "192.0.2.10:443 tcp local"`,
			`add rule inet vipd lb-loc drop`,
			`add element inet vipd services4 { 192.0.2.10 . tcp . 443 : goto lb-loc }`,
		),
		slots: map[string][]string{"loc": wantSlots(testSlots,
			Backend{Addr: netip.MustParseAddrPort("192.0.2.10:8443"), Weight: 3}, backend("192.0.2.10:9443"))},
	}, {
		name: "ipv6 udp without masquerade or backends",
		state: State{LoadBalancers: []LoadBalancer{{
			ID: "dns", Address: vip6, Port: 53, Protocol: lb.UDP, Mode: lb.ModeNAT,
		}}},
		want: expect(
			`add chain inet vipd lb-dns`,
			`add map inet vipd lb-dns-maglev { typeof numgen inc mod 11 : ip6 daddr . th dport ; }`,
			`add rule inet vipd lb-dns meta l4proto udp dnat ip6 to jhash ip6 saddr . th sport mod 11 seed 0x76697064 map @lb-dns-maglev comment "[2001:db8::10]:53 udp nat"`,
			`add rule inet vipd lb-dns drop`,
			`add element inet vipd services6 { 2001:db8::10 . udp . 53 : goto lb-dns }`,
		),
		slots: map[string][]string{"dns": make([]string, 11)},
	}, {
		name: "filters allow their ports and the load balancers' own",
		state: State{
			LoadBalancers: []LoadBalancer{web()},
			Filters: []PortFilter{
				{Address: vip4, Ports: []uint16{22}},
				{Address: vip6},
			},
		},
		want: expect(
			`add chain inet vipd lb-web`,
			`add map inet vipd lb-web-maglev { typeof numgen inc mod 11 : ip daddr . th dport ; }`,
			`add rule inet vipd lb-web meta l4proto tcp dnat ip to jhash ip saddr . th sport mod 11 seed 0x76697064 map @lb-web-maglev comment "192.0.2.10:80 tcp nat"`,
			`add rule inet vipd lb-web drop`,
			`add element inet vipd services4 { 192.0.2.10 . tcp . 80 : goto lb-web }`,
			`add element inet vipd masquerade4 { 192.0.2.10 . tcp . 80 }`,
			`add element inet vipd filtered4 { 192.0.2.10 }`,
			`add element inet vipd filtered6 { 2001:db8::10 }`,
			`add element inet vipd allowed4 { 192.0.2.10 . tcp . 22 }`,
			`add element inet vipd allowed4 { 192.0.2.10 . udp . 22 }`,
			`add element inet vipd allowed4 { 192.0.2.10 . tcp . 80 }`,
		),
		slots: map[string][]string{"web": wantSlots(testSlots, web().Backends...)},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tb, fake, _ := newFakeTable(t)
			set(t, tb, tc.state)
			if diff := cmp.Diff(tc.want, dump(fake)); diff != "" {
				t.Errorf("table (-want +got):\n%s", diff)
			}
			if got := len(fake.Table.Maps) - 2; got != len(tc.slots) {
				t.Errorf("%d Maglev maps, want %d", got, len(tc.slots))
			}
			for id, want := range tc.slots {
				if diff := cmp.Diff(want, slots(t, fake, id, testSlots.size)); diff != "" {
					t.Errorf("lb %s slots (-want +got):\n%s", id, diff)
				}
			}
		})
	}
}

// TestSetFillsMaglevTable checks the production table: maglev.TableSize
// slots, hashed modulo the same size.
func TestSetFillsMaglevTable(t *testing.T) {
	fake := knftables.NewFake(knftables.InetFamily, tableName)
	tb := newTable(fake, maglevSlots, (&fakeConntrack{}).forget, nil)
	l := web()
	l.Backends[2].Weight = 2
	set(t, tb, State{LoadBalancers: []LoadBalancer{l}})
	if diff := cmp.Diff(wantSlots(maglevSlots, l.Backends...), slots(t, fake, "web", maglev.TableSize)); diff != "" {
		t.Errorf("slots (-want +got):\n%s", diff)
	}
	wantRule := fmt.Sprintf("jhash ip saddr . th sport mod %d seed 0x76697064 map @lb-web-maglev", maglev.TableSize)
	if rule := fake.Table.Chains["lb-web"].Rules[0].Rule; !strings.Contains(rule, wantRule) {
		t.Errorf("rule %q does not contain %q", rule, wantRule)
	}
	wantType := fmt.Sprintf("numgen inc mod %d : ip daddr . th dport", maglev.TableSize)
	if got := fake.Table.Maps["lb-web-maglev"].TypeOf; got != wantType {
		t.Errorf("map typeof %q, want %q", got, wantType)
	}
}

// TestSetSameOnEveryNode checks that two nodes given the same load
// balancers, listed in different orders, write the same table.
func TestSetSameOnEveryNode(t *testing.T) {
	web2 := web()
	web2.ID = "web2"
	web2.Port = 8080
	web2.Backends[1].Weight = 2
	a := State{LoadBalancers: []LoadBalancer{web(), web2}}
	b := State{LoadBalancers: []LoadBalancer{web2, web()}}
	for i := range b.LoadBalancers {
		slices.Reverse(b.LoadBalancers[i].Backends)
	}
	tbA, fakeA, _ := newFakeTable(t)
	tbB, fakeB, _ := newFakeTable(t)
	set(t, tbA, a)
	set(t, tbB, b)
	if diff := cmp.Diff(fakeA.Dump(), fakeB.Dump()); diff != "" {
		t.Errorf("node B's table differs from node A's (-A +B):\n%s", diff)
	}
}

// TestSetWritesOnlyChanges checks that a Set after a successful one writes
// the difference, and that the result equals writing the new state whole.
func TestSetWritesOnlyChanges(t *testing.T) {
	base := State{LoadBalancers: []LoadBalancer{web()}, Filters: []PortFilter{{Address: vip4, Ports: []uint16{22}}}}
	oneLess := State{LoadBalancers: []LoadBalancer{web()}, Filters: base.Filters}
	oneLess.LoadBalancers[0].Backends = web().Backends[:2]
	other := web()
	other.ID, other.Port, other.Protocol = "other", 53, lb.UDP
	added := State{LoadBalancers: []LoadBalancer{web(), other}}
	moved := State{LoadBalancers: []LoadBalancer{web()}}
	moved.LoadBalancers[0].Address = netip.MustParseAddr("192.0.2.11")
	swapped := State{LoadBalancers: []LoadBalancer{web(), other}}
	swapped.LoadBalancers[0].Port, swapped.LoadBalancers[0].Protocol = other.Port, other.Protocol
	swapped.LoadBalancers[1].Port, swapped.LoadBalancers[1].Protocol = web().Port, web().Protocol

	tests := []struct {
		name   string
		from   State
		to     State
		verify func(t *testing.T, tx string)
	}{{
		name: "backend removed: only its slots",
		from: base, to: oneLess,
		verify: func(t *testing.T, tx string) {
			before, after := wantSlots(testSlots, base.LoadBalancers[0].Backends...), wantSlots(testSlots, oneLess.LoadBalancers[0].Backends...)
			var changed int
			for i := range before {
				if before[i] != after[i] {
					changed++
				}
			}
			lines := strings.Split(strings.TrimSpace(tx), "\n")
			if len(lines) != 2*changed {
				t.Errorf("%d operations, want a delete and an add for each of %d changed slots", len(lines), changed)
			}
			for _, l := range lines {
				if !strings.HasPrefix(l, "delete element inet vipd lb-web-maglev {") && !strings.HasPrefix(l, "add element inet vipd lb-web-maglev {") {
					t.Errorf("unexpected operation %q", l)
				}
			}
		},
	}, {
		name: "load balancer added",
		from: base, to: added,
		verify: func(t *testing.T, tx string) {
			if strings.Contains(tx, "table") || strings.Contains(tx, "lb-web ") || strings.Contains(tx, "lb-web-maglev") {
				t.Errorf("transaction touches the table or lb-web:\n%.2000s", tx)
			}
			if !strings.Contains(tx, "add chain inet vipd lb-other") {
				t.Errorf("transaction does not add lb-other:\n%.2000s", tx)
			}
		},
	}, {
		name: "address changed: verdict map and sets only",
		from: base, to: moved,
		verify: func(t *testing.T, tx string) {
			want := normalize([]string{
				"delete element inet vipd allowed4 { 192.0.2.10 . tcp . 22 }",
				"delete element inet vipd allowed4 { 192.0.2.10 . udp . 22 }",
				"delete element inet vipd allowed4 { 192.0.2.10 . tcp . 80 }",
				"delete element inet vipd filtered4 { 192.0.2.10 }",
				"delete element inet vipd masquerade4 { 192.0.2.10 . tcp . 80 }",
				"delete element inet vipd services4 { 192.0.2.10 . tcp . 80 }",
				"flush chain inet vipd lb-web",
				`add rule inet vipd lb-web meta l4proto tcp dnat ip to jhash ip saddr . th sport mod 11 seed 0x76697064 map @lb-web-maglev comment "192.0.2.11:80 tcp nat"`,
				"add rule inet vipd lb-web drop",
				"add element inet vipd masquerade4 { 192.0.2.11 . tcp . 80 }",
				"add element inet vipd services4 { 192.0.2.11 . tcp . 80 : goto lb-web }",
			})
			if diff := cmp.Diff(want, normalize(strings.Split(strings.TrimSpace(tx), "\n"))); diff != "" {
				t.Errorf("transaction (-want +got):\n%s", diff)
			}
		},
	}, {
		name: "listeners swapped: verdict map values deleted before they are re-added",
		from: added, to: swapped,
		verify: func(t *testing.T, tx string) {
			for _, pair := range [][2]string{
				{"delete element inet vipd services4 { 192.0.2.10 . tcp . 80 }", "add element inet vipd services4 { 192.0.2.10 . tcp . 80 : goto lb-other }"},
				{"delete element inet vipd services4 { 192.0.2.10 . udp . 53 }", "add element inet vipd services4 { 192.0.2.10 . udp . 53 : goto lb-web }"},
			} {
				del, add := strings.Index(tx, pair[0]+"\n"), strings.Index(tx, pair[1]+"\n")
				if del < 0 || add < del {
					t.Errorf("transaction lacks %q before %q:\n%.3000s", pair[0], pair[1], tx)
				}
			}
		},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tb, fake, _ := newFakeTable(t)
			set(t, tb, tc.from)
			set(t, tb, tc.to)
			tc.verify(t, fake.LastTransaction.String())

			fresh, freshFake, _ := newFakeTable(t)
			set(t, fresh, tc.to)
			if diff := cmp.Diff(dump(freshFake), dump(fake)); diff != "" {
				t.Errorf("changes written give another table than a fresh Set (-fresh +changed):\n%s", diff)
			}
			for id := range fresh.written.lbs {
				if diff := cmp.Diff(slots(t, freshFake, id, testSlots.size), slots(t, fake, id, testSlots.size)); diff != "" {
					t.Errorf("lb %s: slots differ from a fresh Set (-fresh +changed):\n%s", id, diff)
				}
			}
		})
	}
}

// TestSetRewritesWhole checks the cases that need the table rebuilt: the
// first Set (clearing what a crashed vipd left), a load balancer that
// goes away or changes family, and any Set after a failed one.
func TestSetRewritesWhole(t *testing.T) {
	rewrites := func(t *testing.T, fake *knftables.Fake) {
		t.Helper()
		if tx := fake.LastTransaction.String(); !strings.HasPrefix(tx, "add table inet vipd\ndelete table inet vipd\n") {
			t.Errorf("transaction does not rewrite the table:\n%.500s", tx)
		}
	}
	t.Run("leftover table", func(t *testing.T) {
		tb, fake, _ := newFakeTable(t)
		tx := fake.NewTransaction()
		tx.Add(&knftables.Table{})
		tx.Add(&knftables.Chain{Name: "junk"})
		if err := fake.Run(context.Background(), tx); err != nil {
			t.Fatal(err)
		}
		set(t, tb, State{})
		rewrites(t, fake)
		if diff := cmp.Diff(expect(), dump(fake)); diff != "" {
			t.Errorf("table (-want +got):\n%s", diff)
		}
	})
	t.Run("load balancer back while its objects wait", func(t *testing.T) {
		tb, fake, _ := newFakeTable(t)
		other := web()
		other.ID, other.Port = "other", 81
		set(t, tb, State{LoadBalancers: []LoadBalancer{web(), other}})
		set(t, tb, State{LoadBalancers: []LoadBalancer{other}})
		set(t, tb, State{LoadBalancers: []LoadBalancer{web(), other}})
		rewrites(t, fake)
	})
	t.Run("family changed", func(t *testing.T) {
		tb, fake, _ := newFakeTable(t)
		set(t, tb, State{LoadBalancers: []LoadBalancer{web()}})
		v6 := web()
		v6.Address, v6.Backends = vip6, []Backend{backend("[2001:db8:1::1]:8080")}
		set(t, tb, State{LoadBalancers: []LoadBalancer{v6}})
		rewrites(t, fake)
		if got := fake.Table.Maps["lb-web-maglev"].TypeOf; !strings.Contains(got, "ip6 daddr") {
			t.Errorf("Maglev map is %q, want an ip6 one", got)
		}
	})
	t.Run("after a failure", func(t *testing.T) {
		fake := knftables.NewFake(knftables.InetFamily, tableName)
		nft := &failingNFT{Interface: fake}
		tb := newTable(nft, testSlots, (&fakeConntrack{}).forget, nil)
		set(t, tb, State{LoadBalancers: []LoadBalancer{web()}})
		nft.fail = true
		if err := tb.Set(context.Background(), State{}); err == nil || !strings.Contains(err.Error(), "injected failure") {
			t.Fatalf("Set with nft failing: %v, want the failure", err)
		}
		nft.fail = false
		set(t, tb, State{LoadBalancers: []LoadBalancer{web()}})
		rewrites(t, fake)
	})
}

// TestSetRemovesLoadBalancerCheaply: removing one load balancer of many
// touches only its own objects (rewriting the table cost 1.4-1.8 s with
// 33 load balancers), and a Set at least retireAfter later deletes them.
func TestSetRemovesLoadBalancerCheaply(t *testing.T) {
	tb, fake, _ := newFakeTable(t)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tb.now = func() time.Time { return now }
	var all []LoadBalancer
	for i := range 5 {
		l := web()
		l.ID, l.Port = fmt.Sprintf("lb%d", i), uint16(80+i)
		all = append(all, l)
	}
	set(t, tb, State{LoadBalancers: all})
	set(t, tb, State{LoadBalancers: all[1:]})
	want := normalize([]string{
		"delete element inet vipd masquerade4 { 192.0.2.10 . tcp . 80 }",
		"delete element inet vipd services4 { 192.0.2.10 . tcp . 80 }",
		"flush chain inet vipd lb-lb0",
		"flush map inet vipd lb-lb0-maglev",
	})
	if diff := cmp.Diff(want, normalize(strings.Split(strings.TrimSpace(fake.LastTransaction.String()), "\n"))); diff != "" {
		t.Errorf("removal transaction (-want +got):\n%s", diff)
	}
	if c := fake.Table.Chains["lb-lb0"]; c == nil || len(c.Rules) != 0 {
		t.Errorf("lb-lb0's chain after removal: %+v, want it there and empty", c)
	}

	// Too soon: a change leaves the emptied objects alone.
	now = now.Add(retireAfter / 2)
	set(t, tb, State{LoadBalancers: all[2:]})
	if fake.Table.Chains["lb-lb0"] == nil || strings.Contains(fake.LastTransaction.String(), "delete chain") {
		t.Errorf("objects deleted before retireAfter:\n%s", fake.LastTransaction)
	}
	// Later, the next Set deletes both load balancers' objects whose time
	// has come: lb0's only.
	now = now.Add(retireAfter / 2)
	set(t, tb, State{LoadBalancers: all[2:]})
	if fake.Table.Chains["lb-lb0"] != nil || fake.Table.Maps["lb-lb0-maglev"] != nil {
		t.Errorf("lb-lb0's chain or map is still there:\n%s", fake.LastTransaction)
	}
	if fake.Table.Chains["lb-lb1"] == nil {
		t.Errorf("lb-lb1's objects deleted too soon")
	}
	now = now.Add(retireAfter)
	set(t, tb, State{LoadBalancers: all[2:]})
	fresh, freshFake, _ := newFakeTable(t)
	set(t, fresh, State{LoadBalancers: all[2:]})
	if diff := cmp.Diff(dump(freshFake), dump(fake)); diff != "" {
		t.Errorf("after removals, the table differs from a fresh Set (-fresh +got):\n%s", diff)
	}
}

func TestSetRepeatWritesNothing(t *testing.T) {
	tb, fake, _ := newFakeTable(t)
	s := State{LoadBalancers: []LoadBalancer{web()}, Filters: []PortFilter{{Address: vip4, Ports: []uint16{22}}}}
	set(t, tb, s)
	last := fake.LastTransaction
	set(t, tb, s)
	if fake.LastTransaction != last {
		t.Errorf("repeat ran a transaction:\n%.1000s", fake.LastTransaction)
	}
}

func TestDelete(t *testing.T) {
	tb, fake, _ := newFakeTable(t)
	if err := tb.Delete(context.Background()); err != nil {
		t.Fatalf("Delete without a table: %v", err)
	}
	set(t, tb, State{LoadBalancers: []LoadBalancer{web()}})
	if err := tb.Delete(context.Background()); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if fake.Table != nil {
		t.Errorf("table still there after Delete:\n%s", fake.Dump())
	}
	set(t, tb, State{LoadBalancers: []LoadBalancer{web()}})
	if diff := cmp.Diff(wantSlots(testSlots, web().Backends...), slots(t, fake, "web", testSlots.size)); diff != "" {
		t.Errorf("Set after Delete: slots (-want +got):\n%s", diff)
	}
}

func TestSetForgetsDepartedBackends(t *testing.T) {
	vipPort := netip.AddrPortFrom(vip4, 80)
	flowOf := func(b string) flow { return newFlow(lb.TCP, vipPort, netip.MustParseAddrPort(b)) }
	drained := web()
	drained.Backends[1].Weight = 0
	oneLess := web()
	oneLess.Backends = slices.Delete(oneLess.Backends, 1, 2)

	tb, _, ct := newFakeTable(t)
	set(t, tb, State{LoadBalancers: []LoadBalancer{web()}})
	if got := ct.take(); got != nil {
		t.Errorf("first Set forgot %v, want nothing", got)
	}
	set(t, tb, State{LoadBalancers: []LoadBalancer{drained}})
	if got := ct.take(); got != nil {
		t.Errorf("draining forgot %v, want nothing: drained backends keep their flows", got)
	}
	set(t, tb, State{LoadBalancers: []LoadBalancer{oneLess}})
	if diff := cmp.Diff([]flow{flowOf("10.0.0.2:8080")}, ct.take(), cmp.AllowUnexported(flow{}), cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
		t.Errorf("removing a backend forgot (-want +got):\n%s", diff)
	}

	// A failed deletion is retried by the next Set, even a repeat.
	ct.failed = context.DeadlineExceeded
	if err := tb.Set(context.Background(), State{}); err == nil {
		t.Fatal("Set with conntrack failing: no error")
	}
	first := ct.take()
	set(t, tb, State{})
	if diff := cmp.Diff(first, ct.take(), cmp.AllowUnexported(flow{}), cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
		t.Errorf("retry forgot another set of flows (-first +retry):\n%s", diff)
	}
	if want := []flow{flowOf("10.0.0.1:8080"), flowOf("10.0.0.3:8080")}; !slices.Equal(first, want) {
		t.Errorf("deleting the load balancer forgot %v, want %v", first, want)
	}
	set(t, tb, State{})
	if got := ct.take(); got != nil {
		t.Errorf("after a successful retry, Set forgot %v again", got)
	}
}

func TestSetRejectsInvalid(t *testing.T) {
	mutate := func(f func(l *LoadBalancer)) State {
		l := web()
		f(&l)
		return State{LoadBalancers: []LoadBalancer{l}}
	}
	tests := []struct {
		name  string
		state State
		want  []string // substrings of the error
	}{
		{"bad id", mutate(func(l *LoadBalancer) { l.ID = "a b" }), []string{`dataplane: lb a b: id "a b"`}},
		{"no address", mutate(func(l *LoadBalancer) { l.Address = netip.Addr{}; l.Backends = nil }), []string{"lb web: address: missing"}},
		{"mapped address", mutate(func(l *LoadBalancer) { l.Address = netip.MustParseAddr("::ffff:192.0.2.10") }), []string{"IPv4-mapped; use 192.0.2.10"}},
		{"port 0", mutate(func(l *LoadBalancer) { l.Port = 0 }), []string{"lb web: port 0"}},
		{"protocol", mutate(func(l *LoadBalancer) { l.Protocol = "sctp" }), []string{`lb web: protocol "sctp"`}},
		{"mode", mutate(func(l *LoadBalancer) { l.Mode = "dsr" }), []string{`lb web: mode "dsr"`}},
		{"masquerade in local mode", mutate(func(l *LoadBalancer) {
			l.Mode = lb.ModeLocal
			l.Backends = []Backend{backend("192.0.2.10:8080")}
		}), []string{"lb web: masquerade: only for mode nat"}},
		{"local backend elsewhere", mutate(func(l *LoadBalancer) { l.Mode, l.Masquerade = lb.ModeLocal, false }),
			[]string{"backend 10.0.0.1:8080: mode local sends to the load balancer's own address 192.0.2.10"}},
		{"backend family", mutate(func(l *LoadBalancer) { l.Backends[0] = backend("[2001:db8::1]:80") }),
			[]string{"lb web: backend [2001:db8::1]:80: not in the address family of 192.0.2.10"}},
		{"backend port 0", mutate(func(l *LoadBalancer) { l.Backends[0] = backend("10.0.0.1:0") }), []string{"backend 10.0.0.1:0: port 0"}},
		{"backend twice", mutate(func(l *LoadBalancer) { l.Backends[1] = l.Backends[0] }), []string{"backend 10.0.0.1:8080: listed twice"}},
		{"several problems, all reported", mutate(func(l *LoadBalancer) { l.Port, l.Protocol = 0, "x" }),
			[]string{"lb web: port 0", `lb web: protocol "x"`}},
		{"id twice", State{LoadBalancers: []LoadBalancer{web(), func() LoadBalancer { l := web(); l.Port = 81; return l }()}},
			[]string{"lb web: id used twice"}},
		{"same listener", State{LoadBalancers: []LoadBalancer{web(), func() LoadBalancer { l := web(); l.ID = "b"; return l }()}},
			[]string{"lb b: 192.0.2.10:80 tcp is also lb web"}},
		{"filter address", State{Filters: []PortFilter{{Address: netip.IPv4Unspecified()}}}, []string{"filter 0.0.0.0: address: 0.0.0.0 is unspecified"}},
		{"filter twice", State{Filters: []PortFilter{{Address: vip4}, {Address: vip4, Ports: []uint16{1}}}}, []string{"filter 192.0.2.10: address filtered twice"}},
		{"filter port 0", State{Filters: []PortFilter{{Address: vip4, Ports: []uint16{0}}}}, []string{"filter 192.0.2.10: port 0"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tb, fake, _ := newFakeTable(t)
			err := tb.Set(context.Background(), tc.state)
			if err == nil {
				t.Fatal("Set accepted an invalid state")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if fake.LastTransaction != nil {
				t.Errorf("an invalid state ran a transaction")
			}
		})
	}
}

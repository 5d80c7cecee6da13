package dataplane

import (
	"context"
	"fmt"
	"net/netip"
	"testing"

	"github.com/vipd/vipd/internal/lb"
	"github.com/vipd/vipd/internal/testnet"
	"github.com/vipd/vipd/internal/testnet/worldtest"
)

// benchState returns n nat-mode load balancers of three backends each;
// shift changes one backend of the first.
func benchState(n int, shift bool) State {
	var s State
	for i := range n {
		l := LoadBalancer{
			ID: fmt.Sprintf("lb%03d", i), Address: netip.AddrFrom4([4]byte{198, 51, byte(i / 250), byte(i%250 + 1)}),
			Port: 80, Protocol: lb.TCP, Mode: lb.ModeNAT, Masquerade: true,
		}
		for j := range 3 {
			l.Backends = append(l.Backends, Backend{Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, byte(i), byte(j + 1)}), 8080), Weight: 1})
		}
		if shift && i == 0 {
			l.Backends[0].Addr = netip.AddrPortFrom(netip.MustParseAddr("10.2.0.1"), 8080)
		}
		s.LoadBalancers = append(s.LoadBalancers, l)
	}
	return s
}

// BenchmarkSetNFT measures Set against real nft in a namespace: a whole
// rewrite (the first Set), the removal of one load balancer, and a change
// of one backend of one load balancer.
func BenchmarkSetNFT(b *testing.B) {
	w := worldtest.New(b, testnet.Spec{Nodes: []testnet.NodeSpec{{Name: "n", Address: netip.MustParseAddr("10.255.255.11")}}})
	h := &w.Node("n").Host
	var tb *Table
	if err := h.InNamespace(func() (err error) { tb, err = New(nil); return err }); err != nil {
		b.Fatal(err)
	}
	set := func(s State) {
		if err := h.InNamespace(func() error { return tb.Set(context.Background(), s) }); err != nil {
			b.Fatal(err)
		}
	}
	for _, n := range []int{10, 100} {
		b.Run(fmt.Sprintf("rewrite/%d", n), func(b *testing.B) {
			s := benchState(n, false)
			for b.Loop() {
				b.StopTimer()
				if err := h.InNamespace(func() error { return tb.Delete(context.Background()) }); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				set(s)
			}
		})
		b.Run(fmt.Sprintf("remove-one/%d", n), func(b *testing.B) {
			all := benchState(n, false)
			fewer := State{LoadBalancers: all.LoadBalancers[1:]}
			for b.Loop() {
				b.StopTimer()
				set(all) // untimed: the removed one coming back rewrites the table
				b.StartTimer()
				set(fewer)
			}
		})
		b.Run(fmt.Sprintf("one-backend/%d", n), func(b *testing.B) {
			states := [2]State{benchState(n, false), benchState(n, true)}
			set(states[0])
			i := 0
			for b.Loop() {
				i++
				set(states[i%2])
			}
		})
	}
	// One load balancer of 100 backends losing and regaining one: the
	// Maglev table's build plus the nft transaction of the slots that
	// moved (about 1/100 of them).
	b.Run("backend-of-100", func(b *testing.B) {
		full := wideState(100)
		less := wideState(100)
		less.LoadBalancers[0].Backends = less.LoadBalancers[0].Backends[1:]
		states := [2]State{full, less}
		set(full)
		i := 0
		for b.Loop() {
			i++
			set(states[i%2])
		}
	})
}

// wideState is one nat-mode load balancer with n backends.
func wideState(n int) State {
	l := LoadBalancer{ID: "wide", Address: netip.MustParseAddr("198.51.100.200"), Port: 80, Protocol: lb.TCP, Mode: lb.ModeNAT, Masquerade: true}
	for j := range n {
		l.Backends = append(l.Backends, Backend{Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 3, byte(j / 250), byte(j%250 + 1)}), 8080), Weight: 1})
	}
	return State{LoadBalancers: []LoadBalancer{l}}
}

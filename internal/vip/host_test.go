package vip

import (
	"net/netip"
	"testing"
)

func TestForeignAddrs(t *testing.T) {
	n := newTestNS(t)
	l := newFakeLedger()
	b := New(l, testLogger(t), WithHandle(n.h))
	veth := n.addVeth(t)
	n.addByHand(t, "lo", "192.0.2.50/32")
	n.addByHand(t, veth, "192.0.2.60/24")
	n.addByHand(t, veth, "2001:db8::60/64")
	setT(t, b, addr(t, "192.0.2.1", "lo"))

	got, err := b.ForeignAddrs()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"192.0.2.50": "lo", "192.0.2.60": veth, "2001:db8::60": veth, "127.0.0.1": "lo"}
	for a, ifname := range want {
		if got[netip.MustParseAddr(a)] != ifname {
			t.Errorf("ForeignAddrs()[%s] = %q, want %q (all: %v)", a, got[netip.MustParseAddr(a)], ifname, got)
		}
	}
	if name, ok := got[netip.MustParseAddr("192.0.2.1")]; ok {
		t.Errorf("vipd's own 192.0.2.1 reported as foreign (on %s)", name)
	}
}

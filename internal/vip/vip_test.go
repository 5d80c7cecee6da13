package vip

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"golang.org/x/sys/unix"

	"github.com/vipd/vipd/internal/store"
)

func setT(t *testing.T, b *Binder, desired ...Address) {
	t.Helper()
	if err := b.Set(context.Background(), desired); err != nil {
		t.Fatalf("Set(%v): %v", desired, err)
	}
}

func checkBound(t *testing.T, b *Binder, want ...Address) {
	t.Helper()
	if diff := cmp.Diff(want, b.Bound(), cmpAddr); diff != "" {
		t.Errorf("Bound() (-want +got):\n%s", diff)
	}
}

func checkRecorded(t *testing.T, l *fakeLedger, want ...Address) {
	t.Helper()
	if diff := cmp.Diff(want, l.recorded(t), cmpAddr); diff != "" {
		t.Errorf("ledger (-want +got):\n%s", diff)
	}
}

func checkPrefixes(t *testing.T, n *testNS, iface string, want ...string) {
	t.Helper()
	if diff := cmp.Diff(want, n.prefixes(t, iface), cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("addresses on %s (-want +got):\n%s", iface, diff)
	}
}

func TestSetBindsHostAddresses(t *testing.T) {
	n := newTestNS(t)
	l := newFakeLedger()
	b := New(l, testLogger(t), WithHandle(n.h))
	v4, v6 := addr(t, "192.0.2.1", "lo"), addr(t, "2001:db8::1", "lo")

	setT(t, b, v6, v4)

	checkPrefixes(t, n, "lo", "192.0.2.1/32", "2001:db8::1/128")
	got := n.addrs(t, "lo")
	for _, a := range []Address{v4, v6} {
		if scope := got[a.Addr].Scope; scope != unix.RT_SCOPE_UNIVERSE {
			t.Errorf("%s has scope %d, want global", a.Addr, scope)
		}
	}
	flags := got[v6.Addr].Flags
	if flags&unix.IFA_F_NODAD == 0 {
		t.Errorf("%s flags %#x lack nodad", v6.Addr, flags)
	}
	if flags&unix.IFA_F_TENTATIVE != 0 {
		t.Errorf("%s flags %#x are tentative", v6.Addr, flags)
	}
	if routes := n.mainRoutes(t); len(routes) != 0 {
		t.Errorf("main table has %v, want no prefix routes for host VIPs", routes)
	}
	checkRecorded(t, l, v4, v6)
	checkBound(t, b, v4, v6)
}

// TestSetRepeatIsNoOp checks that a second Set with the same set writes
// nothing to the ledger and sends no address change to the kernel.
func TestSetRepeatIsNoOp(t *testing.T) {
	n := newTestNS(t)
	l := newFakeLedger()
	b := New(l, testLogger(t), WithHandle(n.h))
	desired := []Address{addr(t, "192.0.2.1", "lo"), addr(t, "2001:db8::1", "lo")}
	setT(t, b, desired...)
	writes := l.writes

	untilMarker, settle := n.watchAddrs(t)
	// The kernel announces a nodad IPv6 address a second time, from a work
	// queue, after the add returned: let the first Set's events die down.
	settle(300*time.Millisecond, 10*time.Second)
	setT(t, b, desired...)
	n.addByHand(t, "lo", "198.51.100.99/32") // a marker: every event before it came from Set
	seen := untilMarker(net.ParseIP("198.51.100.99"))

	if l.writes != writes {
		t.Errorf("repeat Set wrote the ledger %d times", l.writes-writes)
	}
	if len(seen) != 1 {
		t.Errorf("repeat Set changed addresses: events %v before the marker", seen[:len(seen)-1])
	}
	checkBound(t, b, desired...)
}

func TestSetRemovesOnlyUndesired(t *testing.T) {
	n := newTestNS(t)
	l := newFakeLedger()
	b := New(l, testLogger(t), WithHandle(n.h))
	a, c, v6 := addr(t, "192.0.2.1", "lo"), addr(t, "192.0.2.3", "lo"), addr(t, "2001:db8::1", "lo")
	setT(t, b, a, c, v6)

	setT(t, b, a, v6)
	checkPrefixes(t, n, "lo", "192.0.2.1/32", "2001:db8::1/128")
	checkRecorded(t, l, a, v6)
	checkBound(t, b, a, v6)

	setT(t, b)
	checkPrefixes(t, n, "lo")
	checkRecorded(t, l)
	checkBound(t, b)
}

// TestSetLeavesOperatorAddresses checks that addresses vipd did not add
// are never recorded or removed, even when they are desired and then
// leave the desired set.
func TestSetLeavesOperatorAddresses(t *testing.T) {
	n := newTestNS(t)
	l := newFakeLedger()
	b := New(l, testLogger(t), WithHandle(n.h))
	n.addByHand(t, "lo", "192.0.2.50/32")
	n.addByHand(t, "lo", "192.0.2.60/24")
	n.addByHand(t, "lo", "2001:db8::50/64")
	ours := addr(t, "192.0.2.1", "lo")
	operators := []Address{addr(t, "192.0.2.50", "lo"), addr(t, "192.0.2.60", "lo"), addr(t, "2001:db8::50", "lo")}

	setT(t, b, append([]Address{ours}, operators...)...)
	setT(t, b, append([]Address{ours}, operators...)...)
	want := []string{"192.0.2.1/32", "192.0.2.50/32", "192.0.2.60/24", "2001:db8::50/64"}
	checkPrefixes(t, n, "lo", want...)
	checkRecorded(t, l, ours)
	checkBound(t, b, ours)

	setT(t, b)
	checkPrefixes(t, n, "lo", want[1:]...)
	checkRecorded(t, l)
}

// TestSetYieldsToOperatorPrefix covers a recorded IPv6 VIP that the
// operator re-added with another prefix length while it was gone: the
// kernel refuses a second copy, so it is the operator's now.
func TestSetYieldsToOperatorPrefix(t *testing.T) {
	n := newTestNS(t)
	v6 := addr(t, "2001:db8::60", "lo")
	l := newFakeLedger(v6)
	b := New(l, testLogger(t), WithHandle(n.h))
	n.addByHand(t, "lo", "2001:db8::60/64")

	setT(t, b, v6)
	checkRecorded(t, l)
	checkBound(t, b)

	setT(t, b)
	checkPrefixes(t, n, "lo", "2001:db8::60/64")
}

func TestSetReaddsAddressRemovedByHand(t *testing.T) {
	n := newTestNS(t)
	l := newFakeLedger()
	b := New(l, testLogger(t), WithHandle(n.h))
	a := addr(t, "192.0.2.1", "lo")
	setT(t, b, a)

	na := n.addrs(t, "lo")[a.Addr]
	if err := n.h.AddrDel(n.link(t, "lo"), &na); err != nil {
		t.Fatal(err)
	}
	setT(t, b, a)
	checkPrefixes(t, n, "lo", "192.0.2.1/32")
	checkRecorded(t, l, a)
}

// TestSetRecoversAfterCrash uses a real store: a crashed vipd left one
// address added and recorded, and one recorded but never added. A new
// Binder with a new desired set cleans up both and binds the new one.
func TestSetRecoversAfterCrash(t *testing.T) {
	n := newTestNS(t)
	dir := t.TempDir()
	leftV4, leftV6 := addr(t, "192.0.2.7", "lo"), addr(t, "2001:db8::7", "lo")
	neverAdded, fresh := addr(t, "192.0.2.8", "lo"), addr(t, "192.0.2.9", "lo")

	crashed, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := crashed.RecordAddresses(leftV4, leftV6, neverAdded); err != nil {
		t.Fatal(err)
	}
	n.addByHand(t, "lo", "192.0.2.7/32")
	n.addByHand(t, "lo", "2001:db8::7/128")
	n.addByHand(t, "lo", "192.0.2.100/32") // the operator's
	if err := crashed.Close(); err != nil {
		t.Fatal(err)
	}

	st, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	b := New(st, testLogger(t), WithHandle(n.h))
	setT(t, b, fresh)

	checkPrefixes(t, n, "lo", "192.0.2.100/32", "192.0.2.9/32")
	recorded, err := st.AddedAddresses()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]Address{fresh}, recorded, cmpAddr); diff != "" {
		t.Errorf("store after recovery (-want +got):\n%s", diff)
	}
	checkBound(t, b, fresh)
}

// TestSetOnVeth checks a VIP on a link that runs DAD: with nodad it is
// usable at once, where a hand-added address is still tentative.
func TestSetOnVeth(t *testing.T) {
	n := newTestNS(t)
	veth := n.addVeth(t)
	l := newFakeLedger()
	b := New(l, testLogger(t), WithHandle(n.h))
	v4, v6 := addr(t, "192.0.2.1", veth), addr(t, "2001:db8::1", veth)

	setT(t, b, v4, v6)
	n.addByHand(t, veth, "2001:db8::2/128")

	got := n.addrs(t, veth)
	if flags := got[v6.Addr].Flags; flags&unix.IFA_F_TENTATIVE != 0 {
		t.Errorf("VIP %s is tentative (flags %#x)", v6.Addr, flags)
	}
	control := got[addr(t, "2001:db8::2", veth).Addr]
	if control.Flags&unix.IFA_F_TENTATIVE == 0 {
		t.Errorf("hand-added address is not tentative (flags %#x): the check above proves nothing", control.Flags)
	}
	checkPrefixes(t, n, veth, "192.0.2.1/32", "2001:db8::1/128", "2001:db8::2/128")
	checkPrefixes(t, n, "lo")

	setT(t, b)
	checkPrefixes(t, n, veth, "2001:db8::2/128")
}

func TestSetMovesAddressBetweenInterfaces(t *testing.T) {
	n := newTestNS(t)
	veth := n.addVeth(t)
	l := newFakeLedger()
	b := New(l, testLogger(t), WithHandle(n.h))

	setT(t, b, addr(t, "192.0.2.1", "lo"))
	setT(t, b, addr(t, "192.0.2.1", veth))
	checkPrefixes(t, n, "lo")
	checkPrefixes(t, n, veth, "192.0.2.1/32")
	checkRecorded(t, l, addr(t, "192.0.2.1", veth))
}

// TestSetForgetsVanishedInterface checks that a recorded address whose
// interface is gone is forgotten instead of failing every pass.
func TestSetForgetsVanishedInterface(t *testing.T) {
	n := newTestNS(t)
	veth := n.addVeth(t)
	l := newFakeLedger()
	b := New(l, testLogger(t), WithHandle(n.h))
	onVeth := addr(t, "192.0.2.1", veth)
	setT(t, b, onVeth)

	if err := n.h.LinkDel(n.link(t, veth)); err != nil {
		t.Fatal(err)
	}
	setT(t, b)
	checkRecorded(t, l)
	checkBound(t, b)
}

// TestSetContinuesPastFailures checks that one bad address fails alone,
// with an error naming it, while the rest are bound.
func TestSetContinuesPastFailures(t *testing.T) {
	n := newTestNS(t)
	l := newFakeLedger()
	b := New(l, testLogger(t), WithHandle(n.h))
	good := addr(t, "192.0.2.1", "lo")
	desired := []Address{
		addr(t, "192.0.2.2", "vtnone"),
		good,
		addr(t, "::ffff:192.0.2.3", "lo"),
		{Interface: "lo"},
	}

	err := b.Set(context.Background(), desired)
	for _, want := range []string{
		"vip 192.0.2.2 on vtnone: bind: interface not found",
		"vip ::ffff:192.0.2.3 on lo: invalid: IPv4-mapped",
		"vip invalid IP on lo: invalid",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Set error %v, want it to contain %q", err, want)
		}
	}
	checkPrefixes(t, n, "lo", "192.0.2.1/32")
	checkRecorded(t, l, good)
	checkBound(t, b, good)
}

// TestSetNeverAddsUnrecorded checks the record-before-add rule: when the
// ledger cannot record, nothing is added.
func TestSetNeverAddsUnrecorded(t *testing.T) {
	n := newTestNS(t)
	l := newFakeLedger()
	l.recordErr = errInjected
	b := New(l, testLogger(t), WithHandle(n.h))

	err := b.Set(context.Background(), []Address{addr(t, "192.0.2.1", "lo")})
	if !errors.Is(err, errInjected) {
		t.Fatalf("Set error = %v, want the ledger's", err)
	}
	checkPrefixes(t, n, "lo")
	checkBound(t, b)
}

// TestSetStopsOnUnreadableLedger checks that without knowing what is ours,
// Set changes nothing.
func TestSetStopsOnUnreadableLedger(t *testing.T) {
	n := newTestNS(t)
	l := newFakeLedger()
	b := New(l, testLogger(t), WithHandle(n.h))
	a := addr(t, "192.0.2.1", "lo")
	setT(t, b, a)

	l.readErr = errInjected
	if err := b.Set(context.Background(), nil); !errors.Is(err, errInjected) {
		t.Fatalf("Set error = %v, want the ledger's", err)
	}
	checkPrefixes(t, n, "lo", "192.0.2.1/32")
}

func TestSetCancelledKeepsRecords(t *testing.T) {
	n := newTestNS(t)
	l := newFakeLedger()
	b := New(l, testLogger(t), WithHandle(n.h))
	a := addr(t, "192.0.2.1", "lo")
	setT(t, b, a)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := b.Set(ctx, []Address{addr(t, "192.0.2.2", "lo")})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Set error = %v, want context.Canceled", err)
	}
	checkPrefixes(t, n, "lo", "192.0.2.1/32")
	checkRecorded(t, l, a)
	checkBound(t, b, a)
}

// TestBoundDuringSet lets the race detector see Bound read while Set
// writes.
func TestBoundDuringSet(t *testing.T) {
	n := newTestNS(t)
	b := New(newFakeLedger(), nil, WithHandle(n.h))
	a := addr(t, "192.0.2.1", "lo")

	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 20 {
			desired := []Address{a}
			if i%2 == 1 {
				desired = nil
			}
			if err := b.Set(context.Background(), desired); err != nil {
				t.Errorf("Set: %v", err)
				return
			}
		}
	}()
	for range 200 {
		if got := b.Bound(); len(got) > 1 {
			t.Fatalf("Bound() = %v, want at most one address", got)
		}
	}
	<-done
	checkBound(t, b)
}

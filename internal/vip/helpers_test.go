package vip

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// cmpAddr compares address lists: netip.Addr by value, nil equal to empty.
var cmpAddr = cmp.Options{
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	cmpopts.EquateEmpty(),
}

// testNS is a private network namespace, so tests never touch the host's
// interfaces. It is unnamed: it vanishes when its handles close.
type testNS struct {
	ns netns.NsHandle
	h  *netlink.Handle
}

// newTestNS creates a namespace with lo up and a netlink handle in it.
func newTestNS(t *testing.T) *testNS {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace")
	}
	ns := enterAndLeaveNewNS(t)
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		ns.Close()
		t.Fatalf("netlink handle in test namespace: %v", err)
	}
	n := &testNS{ns: ns, h: h}
	t.Cleanup(func() {
		h.Close()
		ns.Close()
	})
	n.linkUp(t, "lo")
	return n
}

// enterAndLeaveNewNS unshares a new network namespace on a locked thread
// and puts the thread back where it was.
func enterAndLeaveNewNS(t *testing.T) netns.NsHandle {
	t.Helper()
	runtime.LockOSThread()
	restored := false
	defer func() {
		if restored { // otherwise the thread is dropped when the test goroutine ends
			runtime.UnlockOSThread()
		}
	}()
	orig, err := netns.Get()
	if err != nil {
		t.Fatalf("current netns: %v", err)
	}
	defer orig.Close()
	ns, err := netns.New()
	if err != nil {
		t.Fatalf("new netns: %v", err)
	}
	if err := netns.Set(orig); err != nil {
		ns.Close()
		t.Fatalf("back to the original netns: %v", err)
	}
	restored = true
	return ns
}

func (n *testNS) link(t *testing.T, name string) netlink.Link {
	t.Helper()
	l, err := n.h.LinkByName(name)
	if err != nil {
		t.Fatalf("link %s: %v", name, err)
	}
	return l
}

func (n *testNS) linkUp(t *testing.T, name string) {
	t.Helper()
	if err := n.h.LinkSetUp(n.link(t, name)); err != nil {
		t.Fatalf("set %s up: %v", name, err)
	}
}

// addVeth creates an up veth pair and returns the first end's name.
func (n *testNS) addVeth(t *testing.T) string {
	t.Helper()
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "vta"}, PeerName: "vtb"}
	if err := n.h.LinkAdd(veth); err != nil {
		t.Fatalf("add veth: %v", err)
	}
	n.linkUp(t, "vta")
	n.linkUp(t, "vtb")
	return "vta"
}

// addByHand adds an address the way an operator would, without nodad.
func (n *testNS) addByHand(t *testing.T, iface, prefix string) {
	t.Helper()
	na, err := netlink.ParseAddr(prefix)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.h.AddrAdd(n.link(t, iface), na); err != nil {
		t.Fatalf("add %s to %s by hand: %v", prefix, iface, err)
	}
}

// addrs returns the addresses on iface, keyed by IP, skipping link-local
// and loopback ones the kernel adds by itself.
func (n *testNS) addrs(t *testing.T, iface string) map[netip.Addr]netlink.Addr {
	t.Helper()
	list, err := n.h.AddrList(n.link(t, iface), netlink.FAMILY_ALL)
	if err != nil {
		t.Fatalf("list addresses on %s: %v", iface, err)
	}
	out := make(map[netip.Addr]netlink.Addr)
	for _, a := range list {
		ip, _ := netip.AddrFromSlice(a.IP)
		if ip.IsLoopback() || ip.IsLinkLocalUnicast() {
			continue
		}
		out[ip] = a
	}
	return out
}

// prefixes lists iface's addresses as "ip/len" strings, sorted.
func (n *testNS) prefixes(t *testing.T, iface string) []string {
	t.Helper()
	var out []string
	for _, a := range n.addrs(t, iface) {
		out = append(out, a.IPNet.String())
	}
	slices.Sort(out)
	return out
}

// mainRoutes returns the destinations in the main routing table.
func (n *testNS) mainRoutes(t *testing.T) []string {
	t.Helper()
	routes, err := n.h.RouteListFiltered(netlink.FAMILY_ALL,
		&netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil {
		t.Fatalf("list routes: %v", err)
	}
	var out []string
	for _, r := range routes {
		if r.Dst != nil && !r.Dst.IP.IsLinkLocalUnicast() {
			out = append(out, r.Dst.String())
		}
	}
	return out
}

// watchAddrs records address events in the namespace. untilMarker waits
// until an event for marker arrives and returns the IPs of all events seen
// up to and including it. settle discards events until none has come for
// quiet (or max has passed).
func (n *testNS) watchAddrs(t *testing.T) (untilMarker func(marker net.IP) []net.IP, settle func(quiet, max time.Duration)) {
	t.Helper()
	ch := make(chan netlink.AddrUpdate, 256)
	done := make(chan struct{})
	ns := n.ns
	if err := netlink.AddrSubscribeWithOptions(ch, done, netlink.AddrSubscribeOptions{Namespace: &ns}); err != nil {
		t.Fatalf("subscribe to address events: %v", err)
	}
	t.Cleanup(func() {
		close(done)
		for range ch { // the subscription closes ch once its socket is shut
		}
	})
	untilMarker = func(marker net.IP) []net.IP {
		var seen []net.IP
		deadline := time.After(10 * time.Second)
		for {
			select {
			case u, ok := <-ch:
				if !ok {
					t.Fatalf("address subscription ended early; saw %v", seen)
				}
				seen = append(seen, u.LinkAddress.IP)
				if u.LinkAddress.IP.Equal(marker) {
					return seen
				}
			case <-deadline:
				t.Fatalf("no event for marker %s within 10s; saw %v", marker, seen)
			}
		}
	}
	settle = func(quiet, max time.Duration) {
		deadline := time.After(max)
		for {
			select {
			case <-ch:
			case <-time.After(quiet):
				return
			case <-deadline:
				t.Fatalf("address events did not stop within %v", max)
			}
		}
	}
	return untilMarker, settle
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func addr(t testing.TB, ip, iface string) Address {
	t.Helper()
	a, err := netip.ParseAddr(ip)
	if err != nil {
		t.Fatal(err)
	}
	return Address{Addr: a, Interface: iface}
}

// fakeLedger is an in-memory Ledger that counts writes and can fail.
type fakeLedger struct {
	mu        sync.Mutex
	addrs     map[Address]struct{}
	writes    int
	readErr   error
	recordErr error
}

func newFakeLedger(recorded ...Address) *fakeLedger {
	l := &fakeLedger{addrs: make(map[Address]struct{})}
	for _, a := range recorded {
		l.addrs[a] = struct{}{}
	}
	return l
}

func (l *fakeLedger) AddedAddresses() ([]Address, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.readErr != nil {
		return nil, l.readErr
	}
	out := make([]Address, 0, len(l.addrs))
	for a := range l.addrs {
		out = append(out, a)
	}
	sortAddresses(out)
	return out, nil
}

func (l *fakeLedger) RecordAddresses(addrs ...Address) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.recordErr != nil {
		return l.recordErr
	}
	l.writes++
	for _, a := range addrs {
		l.addrs[a] = struct{}{}
	}
	return nil
}

func (l *fakeLedger) ForgetAddresses(addrs ...Address) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.writes++
	for _, a := range addrs {
		delete(l.addrs, a)
	}
	return nil
}

func (l *fakeLedger) recorded(t *testing.T) []Address {
	t.Helper()
	out, err := l.AddedAddresses()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

var errInjected = errors.New("injected failure")

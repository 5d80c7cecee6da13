package bgp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/osrg/gobgp/v4/pkg/apiutil"

	"github.com/vipd/vipd/internal/config"
)

var (
	allowedV4 = netip.MustParsePrefix("192.0.2.16/31")
	allowedV6 = netip.MustParsePrefix("2001:db8:1::/127")
	vip4      = netip.MustParsePrefix("192.0.2.16/32")
	vip4b     = netip.MustParsePrefix("192.0.2.17/32")
	vip6      = netip.MustParsePrefix("2001:db8:1::/128")
)

// loopback addresses of the two speakers in session tests
var (
	receiverAddr = netip.MustParseAddr("127.0.0.1")
	senderAddr   = netip.MustParseAddr("127.0.0.2")
)

const (
	senderASN   = 4200000000
	receiverASN = 65001
)

func TestSetRoutesOutsideRunning(t *testing.T) {
	s := New(Global{ASN: 65000, RouterID: netip.MustParseAddr("192.0.2.1"), ListenPort: -1}, nil)
	if err := s.SetRoutes(context.Background(), nil); !errors.Is(err, ErrNotRunning) {
		t.Errorf("SetRoutes before Run = %v, want ErrNotRunning", err)
	}
	if err := s.SetPeers(context.Background(), nil); !errors.Is(err, ErrNotRunning) {
		t.Errorf("SetPeers before Run = %v, want ErrNotRunning", err)
	}
}

func TestRunRejectsBadGlobal(t *testing.T) {
	for name, g := range map[string]Global{
		"no asn":           {RouterID: netip.MustParseAddr("192.0.2.1"), ListenPort: -1},
		"ipv6 router id":   {ASN: 1, RouterID: netip.MustParseAddr("2001:db8::1"), ListenPort: -1},
		"missing router":   {ASN: 1, ListenPort: -1},
		"listen port high": {ASN: 1, RouterID: netip.MustParseAddr("192.0.2.1"), ListenPort: 70000},
	} {
		t.Run(name, func(t *testing.T) {
			err := New(g, nil).Run(context.Background(), func() { t.Error("ready called") })
			if err == nil {
				t.Error("Run succeeded")
			}
		})
	}
}

// The export guard must keep every bad prefix out of GoBGP: not just out of
// the UPDATEs, out of its RIB.
func TestSetRoutesGuardKeepsBadPrefixesOutOfGoBGP(t *testing.T) {
	s := startSpeaker(t, Global{
		ASN: 65000, RouterID: netip.MustParseAddr("192.0.2.1"), ListenPort: -1,
		AllowedPrefixes: []netip.Prefix{allowedV4, allowedV6},
	}, nil)
	bad := map[string]error{
		"192.0.2.18/32":         ErrOutsideAllowed,
		"198.51.100.1/32":       ErrOutsideAllowed,
		"2001:db8:2::1/128":     ErrOutsideAllowed,
		"192.0.2.16/31":         ErrNotHostRoute,
		"2001:db8:1::/127":      ErrNotHostRoute,
		"0.0.0.0/0":             ErrNotHostRoute,
		"::ffff:192.0.2.16/128": ErrInvalidPrefix,
	}
	routes := []Route{{Prefix: vip4, MED: 10}, {Prefix: vip6, MED: 10}}
	for p := range bad {
		routes = append(routes, Route{Prefix: netip.MustParsePrefix(p)})
	}
	routes = append(routes, Route{}) // the zero prefix

	err := s.SetRoutes(context.Background(), routes)
	if err == nil {
		t.Fatal("SetRoutes accepted bad prefixes")
	}
	for p, reason := range bad {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error does not name %s: %v", p, err)
		}
		if !errors.Is(err, reason) {
			t.Errorf("error is not %v: %v", reason, err)
		}
	}
	want := []netip.Prefix{vip4, vip6}
	if diff := cmp.Diff(want, ribPrefixes(t, s.Speaker), cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("GoBGP RIB (-want +got):\n%s", diff)
	}

	refused := map[netip.Prefix]string{}
	for _, r := range s.Status().Routes {
		refused[r.Prefix] = r.Refused
	}
	if refused[vip4] != "" || refused[netip.MustParsePrefix("192.0.2.18/32")] != ErrOutsideAllowed.Error() ||
		refused[netip.MustParsePrefix("192.0.2.16/31")] != ErrNotHostRoute.Error() {
		t.Errorf("status refusals = %v", refused)
	}

	if err := s.SetRoutes(context.Background(), nil); err != nil {
		t.Fatalf("SetRoutes(nil): %v", err)
	}
	if got := ribPrefixes(t, s.Speaker); len(got) != 0 {
		t.Errorf("RIB after withdrawing all = %v", got)
	}
}

// sessionPair runs a receiver (listening on 127.0.0.1) and a sender (dialing
// out from 127.0.0.2), each peered with the other.
func sessionPair(t *testing.T, senderPeer config.Peer) (sender, receiver *runningSpeaker) {
	t.Helper()
	port := freePort(t)
	receiver = startRouter(t, Global{ASN: receiverASN, RouterID: netip.MustParseAddr("10.0.0.1"), ListenPort: int32(port)}, []string{receiverAddr.String()})
	sender = startSpeaker(t, Global{
		ASN: senderASN, RouterID: netip.MustParseAddr("10.0.0.2"), ListenPort: -1,
		AllowedPrefixes: []netip.Prefix{allowedV4, allowedV6},
	}, nil)
	recvPeer := config.Peer{Name: "sender", Address: senderAddr, ASN: senderASN, Password: senderPeer.Password, HoldTime: 9 * time.Second}
	if err := receiver.SetPeers(context.Background(), []config.Peer{recvPeer}); err != nil {
		t.Fatalf("receiver SetPeers: %v", err)
	}
	senderPeer.Address = receiverAddr
	senderPeer.ASN = receiverASN
	senderPeer.Port = port
	senderPeer.SourceAddress = senderAddr
	if err := sender.SetPeers(context.Background(), []config.Peer{senderPeer}); err != nil {
		t.Fatalf("sender SetPeers: %v", err)
	}
	return sender, receiver
}

func waitEstablished(t *testing.T, s *Speaker, peer netip.Addr) PeerStatus {
	t.Helper()
	var st PeerStatus
	waitFor(t, 60*time.Second, "session to "+peer.String(), func() (bool, string) {
		st, _ = peerStatus(s, peer)
		return st.State == "Established", string(st.State) + " " + st.LastError
	})
	return st
}

// waitAdjIn waits until the receiver's Adj-RIB-In from the sender matches
// want (prefix -> pathSummary).
func waitAdjIn(t *testing.T, receiver *Speaker, want map[netip.Prefix]string) {
	t.Helper()
	waitFor(t, 30*time.Second, "routes at the receiver", func() (bool, string) {
		got := map[netip.Prefix]string{}
		for p, path := range adjIn(t, receiver, senderAddr) {
			got[p] = pathSummary(path)
		}
		diff := cmp.Diff(want, got)
		return diff == "", diff
	})
}

func TestSessionAnnounceChangeWithdraw(t *testing.T) {
	nh6 := netip.MustParseAddr("2001:db8:ff::2")
	peer := config.Peer{Name: "receiver", Password: "s3cret-pw", HoldTime: 9 * time.Second, IPv6NextHop: nh6}
	sender, receiver := sessionPair(t, peer)
	established := waitEstablished(t, sender.Speaker, receiverAddr)
	waitEstablished(t, receiver.Speaker, senderAddr)

	routes := []Route{
		{Prefix: vip4, MED: 100, Communities: []config.Community{64532<<16 | 100}, LargeCommunities: []config.LargeCommunity{{Global: senderASN, Local1: 1, Local2: 2}}},
		{Prefix: vip6, MED: 100, Prepend: 2},
	}
	if err := sender.SetRoutes(context.Background(), routes); err != nil {
		t.Fatalf("SetRoutes: %v", err)
	}
	waitAdjIn(t, receiver.Speaker, map[netip.Prefix]string{
		vip4: "nh=127.0.0.2 med=100 aspath=4200000000 comms=64532:100 large=4200000000:1:2",
		vip6: "nh=2001:db8:ff::2 med=100 aspath=4200000000 4200000000 4200000000 comms= large=",
	})
	waitFor(t, 10*time.Second, "status to list the receiver under both routes", func() (bool, string) {
		st := sender.Status()
		ok := len(st.Routes) == 2 && slices.Equal(st.Routes[0].Peers, []string{"receiver"}) && slices.Equal(st.Routes[1].Peers, []string{"receiver"})
		return ok, cmp.Diff(nil, st)
	})

	// Repeat: a no-op. Changed MED: re-announced in place, no reset.
	if err := sender.SetRoutes(context.Background(), routes); err != nil {
		t.Fatalf("repeated SetRoutes: %v", err)
	}
	routes[0].MED = 200
	if err := sender.SetRoutes(context.Background(), routes); err != nil {
		t.Fatalf("SetRoutes with new MED: %v", err)
	}
	waitAdjIn(t, receiver.Speaker, map[netip.Prefix]string{
		vip4: "nh=127.0.0.2 med=200 aspath=4200000000 comms=64532:100 large=4200000000:1:2",
		vip6: "nh=2001:db8:ff::2 med=100 aspath=4200000000 4200000000 4200000000 comms= large=",
	})

	// Unchanged session settings (new name, new IPv6 next hop): no reset,
	// and the IPv6 route is re-sent with the new next hop.
	peer2 := peer
	peer2.Name, peer2.IPv6NextHop = "renamed", netip.MustParseAddr("2001:db8:ff::3")
	peer2.Address, peer2.ASN, peer2.Port, peer2.SourceAddress = receiverAddr, receiverASN, sender.peers[receiverAddr].cfg.Port, senderAddr
	if err := sender.SetPeers(context.Background(), []config.Peer{peer2}); err != nil {
		t.Fatalf("SetPeers with new name and next hop: %v", err)
	}
	waitAdjIn(t, receiver.Speaker, map[netip.Prefix]string{
		vip4: "nh=127.0.0.2 med=200 aspath=4200000000 comms=64532:100 large=4200000000:1:2",
		vip6: "nh=2001:db8:ff::3 med=100 aspath=4200000000 4200000000 4200000000 comms= large=",
	})
	st, _ := peerStatus(sender.Speaker, receiverAddr)
	if st.State != "Established" || !st.Since.Equal(established.Since) || st.Name != "renamed" {
		t.Errorf("after SetPeers with an unchanged session: %+v, want Established since %v named renamed", st, established.Since)
	}

	// Withdraw one, then all.
	if err := sender.SetRoutes(context.Background(), routes[1:]); err != nil {
		t.Fatalf("SetRoutes withdrawing vip4: %v", err)
	}
	waitAdjIn(t, receiver.Speaker, map[netip.Prefix]string{
		vip6: "nh=2001:db8:ff::3 med=100 aspath=4200000000 4200000000 4200000000 comms= large=",
	})
	if err := sender.SetRoutes(context.Background(), nil); err != nil {
		t.Fatalf("SetRoutes(nil): %v", err)
	}
	waitAdjIn(t, receiver.Speaker, map[netip.Prefix]string{})

	if strings.Contains(sender.logs.String(), "s3cret-pw") || strings.Contains(receiver.logs.String(), "s3cret-pw") {
		t.Error("a password appears in the log")
	}
}

// Shutdown withdraws and closes the session with a Cease.
func TestShutdownSendsCease(t *testing.T) {
	sender, receiver := sessionPair(t, config.Peer{Name: "receiver", HoldTime: 9 * time.Second, IPv6NextHop: netip.MustParseAddr("2001:db8:ff::2")})
	waitEstablished(t, receiver.Speaker, senderAddr)
	if err := sender.SetRoutes(context.Background(), []Route{{Prefix: vip4}}); err != nil {
		t.Fatal(err)
	}
	waitAdjIn(t, receiver.Speaker, map[netip.Prefix]string{vip4: "nh=127.0.0.2 med=0 aspath=4200000000 comms= large="})

	sender.stop(t)
	waitFor(t, 10*time.Second, "the receiver to see a Cease", func() (bool, string) {
		st, _ := peerStatus(receiver.Speaker, senderAddr)
		return st.State != "Established" && strings.Contains(st.LastError, "NOTIFICATION received") && strings.Contains(st.LastError, "cease"), string(st.State) + " " + st.LastError
	})
	if st := sender.Status(); len(st.Routes) != 0 || len(st.Peers) != 1 || st.Peers[0].State != "Idle" {
		t.Errorf("sender status after stop = %+v", st)
	}
}

func TestMD5MismatchNeverEstablishes(t *testing.T) {
	port := freePort(t)
	receiver := startRouter(t, Global{ASN: receiverASN, RouterID: netip.MustParseAddr("10.0.0.1"), ListenPort: int32(port)}, []string{receiverAddr.String()})
	sender := startSpeaker(t, Global{ASN: senderASN, RouterID: netip.MustParseAddr("10.0.0.2"), ListenPort: -1}, nil)
	if err := receiver.SetPeers(context.Background(), []config.Peer{{Address: senderAddr, ASN: senderASN, Password: "right-pw-5678"}}); err != nil {
		t.Fatal(err)
	}
	peer := config.Peer{Address: receiverAddr, ASN: receiverASN, Port: port, SourceAddress: senderAddr, Password: "wr0ng-pw-1234"}
	if err := sender.SetPeers(context.Background(), []config.Peer{peer}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "LastError to explain the MD5 mismatch", func() (bool, string) {
		st, _ := peerStatus(sender.Speaker, receiverAddr)
		if st.State == "Established" {
			t.Fatal("session with a wrong MD5 password established")
		}
		return strings.Contains(st.LastError, "MD5 password mismatch"), string(st.State) + " " + st.LastError
	})
	for _, pw := range []string{"wr0ng-pw-1234", "right-pw-5678"} {
		if strings.Contains(sender.logs.String(), pw) || strings.Contains(receiver.logs.String(), pw) {
			t.Errorf("password %q appears in the log", pw)
		}
	}
}

// GoBGP's export policy refuses a prefix even if a bug let it past the
// export guard into GoBGP.
func TestExportPolicyIsSecondGuard(t *testing.T) {
	sender, receiver := sessionPair(t, config.Peer{Name: "receiver", IPv6NextHop: netip.MustParseAddr("2001:db8:ff::2")})
	waitEstablished(t, receiver.Speaker, senderAddr)

	var paths []*apiutil.Path
	for _, p := range []string{"192.0.2.18/32", "192.0.2.16/31", "2001:db8:2::1/128"} {
		path, err := announcePath(admitted{route: Route{Prefix: netip.MustParsePrefix(p)}})
		if err != nil {
			t.Fatal(err)
		}
		paths = append(paths, path)
	}
	addPaths := func(paths ...*apiutil.Path) {
		t.Helper()
		sender.applyMu.Lock()
		_, err := sender.gobgp.AddPath(apiutil.AddPathRequest{Paths: paths})
		sender.applyMu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
	}
	admittedPath := func(p netip.Prefix) *apiutil.Path {
		t.Helper()
		a, err := admit(sender.global.AllowedPrefixes, Route{Prefix: p})
		if err != nil {
			t.Fatal(err)
		}
		path, err := announcePath(a)
		if err != nil {
			t.Fatal(err)
		}
		return path
	}
	addPaths(append(paths, admittedPath(vip4))...)
	// A fence: GoBGP sends a path added later after whatever it sent for
	// the paths before, on the same session, so once the fence is in, any
	// stray is too.
	addPaths(admittedPath(vip4b))
	waitFor(t, 30*time.Second, "the fence path at the receiver", func() (bool, string) {
		got := adjIn(t, receiver.Speaker, senderAddr)
		return got[vip4b] != nil, fmt.Sprint(len(got), " paths")
	})
	got := map[netip.Prefix]string{}
	for p, path := range adjIn(t, receiver.Speaker, senderAddr) {
		got[p] = pathSummary(path)
	}
	want := map[netip.Prefix]string{
		vip4:  "nh=127.0.0.2 med=0 aspath=4200000000 comms= large=",
		vip4b: "nh=127.0.0.2 med=0 aspath=4200000000 comms= large=",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("paths at the receiver (-want +got):\n%s", diff)
	}
}

// Without an IPv6 next hop a peer gets no IPv6 routes and status says why;
// once the host gets an address, the routes follow without a session reset.
func TestIPv6NextHopAppearsLater(t *testing.T) {
	sender, receiver := sessionPair(t, config.Peer{Name: "receiver"})
	established := waitEstablished(t, sender.Speaker, receiverAddr)
	waitEstablished(t, receiver.Speaker, senderAddr)
	if established.IPv6NextHop.IsValid() {
		t.Skipf("this host has a global IPv6 address on lo (%v)", established.IPv6NextHop)
	}
	if !strings.Contains(established.IPv6Reason, "set ipv6_next_hop") {
		t.Errorf("IPv6Reason = %q", established.IPv6Reason)
	}
	if err := sender.SetRoutes(context.Background(), []Route{{Prefix: vip4}, {Prefix: vip6}}); err != nil {
		t.Fatal(err)
	}
	waitAdjIn(t, receiver.Speaker, map[netip.Prefix]string{vip4: "nh=127.0.0.2 med=0 aspath=4200000000 comms= large="})
	waitFor(t, 10*time.Second, "status: vip4 sent, vip6 not", func() (bool, string) {
		r := sender.Status().Routes
		return len(r) == 2 && len(r[0].Peers) == 1 && len(r[1].Peers) == 0, cmp.Diff(nil, r)
	})

	nh := netip.MustParseAddr("2001:db8:ff::7")
	sender.applyMu.Lock()
	sender.resolve = func(peer, source netip.Addr) (netip.Addr, error) { return nh, nil }
	sender.applyMu.Unlock()
	if err := sender.refreshNextHops(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitAdjIn(t, receiver.Speaker, map[netip.Prefix]string{
		vip4: "nh=127.0.0.2 med=0 aspath=4200000000 comms= large=",
		vip6: "nh=2001:db8:ff::7 med=0 aspath=4200000000 comms= large=",
	})
	st, _ := peerStatus(sender.Speaker, receiverAddr)
	if st.IPv6NextHop != nh || st.IPv6Reason != "" || !st.Since.Equal(established.Since) {
		t.Errorf("after the next hop appeared: %+v", st)
	}
}

// Adding, changing and removing other peers leaves an unchanged session
// alone; a peer nobody listens for says so.
func TestSetPeersLeavesOtherSessionsAlone(t *testing.T) {
	sender, receiver := sessionPair(t, config.Peer{Name: "receiver", HoldTime: 9 * time.Second})
	established := waitEstablished(t, sender.Speaker, receiverAddr)
	waitEstablished(t, receiver.Speaker, senderAddr)
	kept := sender.peers[receiverAddr].cfg

	deaf := config.Peer{Name: "deaf", Address: netip.MustParseAddr("127.0.0.3"), ASN: 65002, Port: freePort(t)}
	if err := sender.SetPeers(context.Background(), []config.Peer{kept, deaf}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "LastError of a peer with nothing listening", func() (bool, string) {
		st, _ := peerStatus(sender.Speaker, deaf.Address)
		return strings.Contains(st.LastError, "refused"), string(st.State) + " " + st.LastError
	})
	deaf.ASN = 65003
	if err := sender.SetPeers(context.Background(), []config.Peer{kept, deaf}); err != nil {
		t.Fatal(err)
	}
	if st, _ := peerStatus(sender.Speaker, deaf.Address); st.ASN != 65003 || st.State == "Established" {
		t.Errorf("re-created peer: %+v", st)
	}
	if err := sender.SetPeers(context.Background(), []config.Peer{kept}); err != nil {
		t.Fatal(err)
	}
	st := sender.Status()
	if len(st.Peers) != 1 || st.Peers[0].State != "Established" || !st.Peers[0].Since.Equal(established.Since) {
		t.Errorf("after changes to another peer: %+v, want the receiver untouched since %v", st.Peers, established.Since)
	}
	if r, _ := peerStatus(receiver.Speaker, senderAddr); r.State != "Established" {
		t.Errorf("receiver side: %+v", r)
	}

	// Removing the peer closes its session with a Cease.
	if err := sender.SetPeers(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the receiver to see a Cease", func() (bool, string) {
		r, _ := peerStatus(receiver.Speaker, senderAddr)
		return r.State != "Established" && strings.Contains(r.LastError, "cease"), string(r.State) + " " + r.LastError
	})
}

package bgp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/osrg/gobgp/v4/pkg/packet/bgp"

	"github.com/vipd/vipd/internal/config"
)

// leakRoutes is how many routes the router in TestRelayDiscardsUpdates
// sends: enough for many UPDATE messages.
const leakRoutes = 2000

// TestRelayDiscardsUpdates: a peer that sends routes to a relayed speaker
// leaves nothing in GoBGP's Adj-RIB-In, keeps its session, is counted in
// status, and the counts fall back when it withdraws them. The "router"
// is a second speaker that listens (so GoBGP talks to it directly) and
// announces a /16's worth of host routes.
func TestRelayDiscardsUpdates(t *testing.T) {
	leaked := netip.MustParsePrefix("100.64.0.0/16")
	port := freePort(t)
	router := startRouter(t, Global{ASN: receiverASN, RouterID: netip.MustParseAddr("10.0.0.1"), ListenPort: int32(port),
		AllowedPrefixes: []netip.Prefix{leaked}}, []string{receiverAddr.String()})
	vipd := startSpeaker(t, Global{ASN: senderASN, RouterID: netip.MustParseAddr("10.0.0.2"), ListenPort: -1,
		AllowedPrefixes: []netip.Prefix{allowedV4}}, nil)
	if err := router.SetPeers(t.Context(), []config.Peer{{Name: "vipd", Address: senderAddr, ASN: senderASN,
		HoldTime: 9 * time.Second, Families: []config.Family{config.IPv4}}}); err != nil {
		t.Fatal(err)
	}
	if err := vipd.SetPeers(t.Context(), []config.Peer{{Name: "router", Address: receiverAddr, ASN: receiverASN, Port: port,
		SourceAddress: senderAddr, HoldTime: 9 * time.Second, Families: []config.Family{config.IPv4}}}); err != nil {
		t.Fatal(err)
	}
	if err := vipd.SetRoutes(t.Context(), []Route{{Prefix: vip4}}); err != nil {
		t.Fatal(err)
	}
	since := waitEstablished(t, vipd.Speaker, receiverAddr).Since
	// The loopback hop is signed: a local process that reaches GoBGP from
	// the peer's alias without the relays' key gets no connection.
	alias := relayAlias(t, vipd.Speaker, receiverAddr)
	d := net.Dialer{Timeout: 2 * time.Second, LocalAddr: &net.TCPAddr{IP: alias.AsSlice()}}
	if conn, err := d.DialContext(t.Context(), "tcp", vipd.relays.listener.String()); err == nil {
		conn.Close()
		t.Errorf("an unsigned connection from alias %s reached GoBGP's internal listener", alias)
	}
	// vipd's route arrives with the relay's local address as next hop.
	waitAdjIn(t, router.Speaker, map[netip.Prefix]string{vip4: "nh=127.0.0.2 med=0 aspath=4200000000 comms= large="})

	leak(t, router, vipd, leaked)

	if err := router.SetRoutes(t.Context(), nil); err != nil {
		t.Fatal(err)
	}
	waitReceived(t, vipd.Speaker, 0)
	if st, _ := peerStatus(vipd.Speaker, receiverAddr); st.State != StateEstablished || !st.Since.Equal(since) {
		t.Errorf("session %s since %v, want Established since %v", st.State, st.Since, since)
	}
	waitAdjIn(t, router.Speaker, map[netip.Prefix]string{vip4: "nh=127.0.0.2 med=0 aspath=4200000000 comms= large="})
}

// TestRelayResetPeer: ResetPeer by the peer's address resets the session
// behind the relay, which then comes back.
func TestRelayResetPeer(t *testing.T) {
	sender, receiver := sessionPair(t, config.Peer{Name: "receiver", HoldTime: 9 * time.Second})
	before := waitEstablished(t, sender.Speaker, receiverAddr)
	if err := sender.ResetPeer(t.Context(), receiverAddr, "test reset"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the receiver to see the session go", func() (bool, string) {
		st, _ := peerStatus(receiver.Speaker, senderAddr)
		return st.State != StateEstablished, string(st.State)
	})
	after := waitEstablished(t, sender.Speaker, receiverAddr)
	if !after.Since.After(before.Since) {
		t.Errorf("session established since %v, before the reset (%v)", after.Since, before.Since)
	}
}

// leak has router send vipd leakRoutes host routes of prefix and checks
// that vipd counts and discards them all: GoBGP keeps none.
func leak(t *testing.T, router, vipd *runningSpeaker, prefix netip.Prefix) {
	t.Helper()
	var routes []Route
	addr := prefix.Addr()
	for range leakRoutes {
		addr = addr.Next()
		routes = append(routes, Route{Prefix: netip.PrefixFrom(addr, 32)})
	}
	if err := router.SetRoutes(t.Context(), routes); err != nil {
		t.Fatal(err)
	}
	st := waitReceived(t, vipd.Speaker, leakRoutes)
	if st.DiscardedUpdates == 0 {
		t.Errorf("no discarded UPDATE counted: %+v", st)
	}
	if got := adjIn(t, vipd.Speaker, relayAlias(t, vipd.Speaker, receiverAddr)); len(got) != 0 {
		t.Errorf("GoBGP holds %d received paths, want none", len(got))
	}
}

func waitReceived(t *testing.T, s *Speaker, n uint64) PeerStatus {
	t.Helper()
	var st PeerStatus
	waitFor(t, 30*time.Second, fmt.Sprintf("%d received prefixes", n), func() (bool, string) {
		st, _ = peerStatus(s, receiverAddr)
		return st.ReceivedPrefixes == n && st.State == StateEstablished, fmt.Sprintf("%s %d", st.State, st.ReceivedPrefixes)
	})
	return st
}

func relayAlias(t *testing.T, s *Speaker, peer netip.Addr) netip.Addr {
	t.Helper()
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	a := s.neighbor(peer)
	if a == peer {
		t.Fatalf("peer %s is not relayed", peer)
	}
	return a
}

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (a, b *net.TCPConn) {
	t.Helper()
	l, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	a, err = net.DialTCP("tcp", nil, l.Addr().(*net.TCPAddr))
	if err != nil {
		t.Fatal(err)
	}
	b, err = l.AcceptTCP()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// TestFromRouter: of the router's messages GoBGP gets all but the UPDATEs,
// End-of-RIB included, and a KEEPALIVE in place of UPDATEs once a second.
func TestFromRouter(t *testing.T) {
	routerSide, relayIn := tcpPair(t)
	relayOut, gobgpSide := tcpPair(t)
	r := &relay{peer: config.Peer{Name: "r1", Address: receiverAddr}, counters: &relayCounters{}}
	done := make(chan error, 1)
	go func() { done <- r.fromRouter(relayIn, relayOut) }()

	open := openMessage(t)
	eor := wire(t, bgp.NewEndOfRib(bgp.RF_IPv4_UC))
	send := func(msgs ...[]byte) {
		t.Helper()
		if _, err := routerSide.Write(bytes.Join(msgs, nil)); err != nil {
			t.Fatal(err)
		}
	}
	send(open, update4(t, nil, []string{"100.64.0.1/32", "100.64.0.2/32"}), update4(t, []string{"100.64.0.1/32"}, nil), eor)
	time.Sleep(keepaliveGap + 100*time.Millisecond)
	send(update4(t, nil, []string{"100.64.0.3/32"}), keepaliveMessage)
	routerSide.Close()
	if err := <-done; !errors.Is(err, io.EOF) {
		t.Errorf("fromRouter = %v, want EOF", err)
	}
	relayOut.Close()
	got, err := io.ReadAll(gobgpSide)
	if err != nil {
		t.Fatal(err)
	}
	if want := bytes.Join([][]byte{open, eor, keepaliveMessage, keepaliveMessage}, nil); !bytes.Equal(got, want) {
		t.Errorf("GoBGP got %x\nwant %x", got, want)
	}
	if p, u := r.counters.prefixes.Load(), r.counters.updates.Load(); p != 2 || u != 3 {
		t.Errorf("counted %d prefixes in %d UPDATEs, want 2 in 3", p, u)
	}
}

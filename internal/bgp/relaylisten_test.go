package bgp

import (
	"bytes"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/osrg/gobgp/v4/pkg/packet/bgp"

	"github.com/vipd/vipd/internal/config"
)

// TestRelayInbound: with listen_port set, a router that connects to vipd
// (vipd cannot reach it: its port is closed) gets a session through the
// relay, signed with TCP-MD5 on the listener, with the address it
// connected to as the next hop; the routes it sends are discarded, not
// kept by GoBGP.
func TestRelayInbound(t *testing.T) {
	const password = "inbound-secret"
	leaked := netip.MustParsePrefix("100.64.0.0/16")
	vipdPort, closedPort := freePort(t), freePort(t)
	vipd := startSpeaker(t, Global{ASN: senderASN, RouterID: netip.MustParseAddr("10.0.0.2"), ListenPort: int32(vipdPort),
		AllowedPrefixes: []netip.Prefix{allowedV4}}, []string{senderAddr.String()})
	router := startRouter(t, Global{ASN: receiverASN, RouterID: netip.MustParseAddr("10.0.0.1"), ListenPort: -1,
		AllowedPrefixes: []netip.Prefix{leaked}}, nil)
	if err := vipd.SetPeers(t.Context(), []config.Peer{{Name: "router", Address: receiverAddr, ASN: receiverASN, Port: closedPort,
		Password: config.Secret(password), HoldTime: 9 * time.Second, Families: []config.Family{config.IPv4}}}); err != nil {
		t.Fatal(err)
	}
	if err := vipd.SetRoutes(t.Context(), []Route{{Prefix: vip4}}); err != nil {
		t.Fatal(err)
	}
	// A router without the key gets no session.
	if err := router.SetPeers(t.Context(), []config.Peer{{Name: "vipd", Address: senderAddr, ASN: senderASN, Port: vipdPort,
		SourceAddress: receiverAddr, HoldTime: 9 * time.Second, Families: []config.Family{config.IPv4}}}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(4 * time.Second)
	if st, _ := peerStatus(vipd.Speaker, receiverAddr); st.State == StateEstablished {
		t.Fatal("a router without the TCP-MD5 key got a session")
	}
	if err := router.SetPeers(t.Context(), []config.Peer{{Name: "vipd", Address: senderAddr, ASN: senderASN, Port: vipdPort,
		Password: config.Secret(password), SourceAddress: receiverAddr, HoldTime: 9 * time.Second,
		Families: []config.Family{config.IPv4}}}); err != nil {
		t.Fatal(err)
	}
	up := waitEstablished(t, vipd.Speaker, receiverAddr)
	since := up.Since
	if c := up.Connection; c == nil || !c.Inbound || c.Local != netip.AddrPortFrom(senderAddr, vipdPort) || c.Remote.Addr() != receiverAddr {
		t.Errorf("status connection %+v, want the router's, from %s to %s:%d", c, receiverAddr, senderAddr, vipdPort)
	}
	waitAdjIn(t, router.Speaker, map[netip.Prefix]string{vip4: "nh=127.0.0.2 med=0 aspath=4200000000 comms= large="})

	leak(t, router, vipd, leaked)
	if st, _ := peerStatus(vipd.Speaker, receiverAddr); !st.Since.Equal(since) {
		t.Errorf("session re-established at %v, want the one since %v", st.Since, since)
	}
}

// TestRelayCollision: when vipd's connection and the router's cross
// (RFC 4271 §6.8), the one opened by the side with the higher BGP
// Identifier stays and the other is closed with Cease 7 (RFC 4486); once
// the session is established, a further connection from the router is
// closed and the session stays. The test plays the router over raw TCP.
func TestRelayCollision(t *testing.T) {
	for _, tc := range []struct {
		name       string
		routerID   string // vipd's is 10.0.0.2
		routerWins bool
	}{
		{"vipd higher", "10.0.0.1", false},
		{"router higher", "10.0.0.3", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vipdPort := freePort(t)
			l, err := net.ListenTCP("tcp", &net.TCPAddr{IP: receiverAddr.AsSlice()})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			vipd := startSpeaker(t, Global{ASN: senderASN, RouterID: netip.MustParseAddr("10.0.0.2"), ListenPort: int32(vipdPort),
				AllowedPrefixes: []netip.Prefix{allowedV4}}, []string{senderAddr.String()})
			if err := vipd.SetPeers(t.Context(), []config.Peer{{Name: "router", Address: receiverAddr, ASN: receiverASN,
				Port: uint16(l.Addr().(*net.TCPAddr).Port), HoldTime: 9 * time.Second, Families: []config.Family{config.IPv4}}}); err != nil {
				t.Fatal(err)
			}
			_ = l.SetDeadline(time.Now().Add(30 * time.Second))
			outbound, err := l.AcceptTCP()
			if err != nil {
				t.Fatalf("vipd did not connect: %v", err)
			}
			defer outbound.Close()
			expectMessage(t, outbound, bgp.BGP_MSG_OPEN)

			inbound := dialFrom(t, receiverAddr, netip.AddrPortFrom(senderAddr, vipdPort))
			defer inbound.Close()
			open := routerOpen(t, tc.routerID)
			send(t, inbound, open)

			kept, closed := outbound, inbound
			if tc.routerWins {
				kept, closed = inbound, outbound
			}
			expectCease(t, closed)
			if tc.routerWins {
				expectMessage(t, kept, bgp.BGP_MSG_OPEN) // GoBGP's, on the router's connection
			} else {
				send(t, kept, open)
			}
			send(t, kept, keepaliveMessage)
			expectMessage(t, kept, bgp.BGP_MSG_KEEPALIVE)
			up := waitEstablished(t, vipd.Speaker, receiverAddr)
			since := up.Since
			if c := up.Connection; c == nil || c.Inbound != tc.routerWins {
				t.Errorf("status connection %+v, want inbound %v", c, tc.routerWins)
			}

			late := dialFrom(t, receiverAddr, netip.AddrPortFrom(senderAddr, vipdPort))
			defer late.Close()
			send(t, late, open)
			expectCease(t, late)
			send(t, kept, keepaliveMessage)
			if st, _ := peerStatus(vipd.Speaker, receiverAddr); st.State != StateEstablished || !st.Since.Equal(since) {
				t.Errorf("after a late connection: %s since %v, want Established since %v", st.State, st.Since, since)
			}
		})
	}
}

// routerOpen is the OPEN of the test's router: AS receiverASN, hold time
// 9 s, IPv4 unicast.
func routerOpen(t *testing.T, id string) []byte {
	t.Helper()
	caps := []bgp.ParameterCapabilityInterface{bgp.NewCapMultiProtocol(bgp.RF_IPv4_UC), bgp.NewCapFourOctetASNumber(receiverASN)}
	m, err := bgp.NewBGPOpenMessage(receiverASN, 9, netip.MustParseAddr(id), []bgp.OptionParameterInterface{bgp.NewOptionParameterCapability(caps)})
	if err != nil {
		t.Fatal(err)
	}
	return wire(t, m)
}

func dialFrom(t *testing.T, local netip.Addr, to netip.AddrPort) *net.TCPConn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: local.AsSlice()}}
	c, err := d.DialContext(t.Context(), "tcp", to.String())
	if err != nil {
		t.Fatal(err)
	}
	return c.(*net.TCPConn)
}

func send(t *testing.T, c *net.TCPConn, msg []byte) {
	t.Helper()
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
}

// expectMessage reads messages from c until one of type typ arrives,
// within 30 s; KEEPALIVEs before it are skipped.
func expectMessage(t *testing.T, c *net.TCPConn, typ uint8) []byte {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	buf := make([]byte, maxExtendedLen)
	for {
		msg, err := readMessage(c, buf)
		if err != nil {
			t.Fatalf("waiting for a message of type %d from %s: %v", typ, c.LocalAddr(), err)
		}
		if msg[18] == typ {
			return bytes.Clone(msg)
		}
		if msg[18] != msgKeepalive {
			t.Fatalf("got message type %d, want %d: %x", msg[18], typ, msg)
		}
	}
}

// expectCease reads a Cease NOTIFICATION with subcode Connection Collision
// Resolution from c, then its close.
func expectCease(t *testing.T, c *net.TCPConn) {
	t.Helper()
	got := expectMessage(t, c, bgp.BGP_MSG_NOTIFICATION)
	if !bytes.Equal(got, ceaseCollision) {
		t.Errorf("NOTIFICATION %x, want %x", got, ceaseCollision)
	}
	if n, err := io.Copy(io.Discard, c); err != nil || n != 0 {
		t.Errorf("after the NOTIFICATION: %d more bytes, %v; want the close", n, err)
	}
}

func TestSessionTTL(t *testing.T) {
	const local = 65000
	for _, tc := range []struct {
		peer config.Peer
		want int
	}{
		{config.Peer{ASN: 65001}, 1},
		{config.Peer{ASN: 65001, Multihop: true}, 255},
		{config.Peer{ASN: 65001, TTL: 3}, 3},
		{config.Peer{ASN: local}, 0},
		{config.Peer{ASN: local, Multihop: true}, 255},
		{config.Peer{ASN: local, TTL: 2}, 2},
	} {
		if got := sessionTTL(tc.peer, local); got != tc.want {
			t.Errorf("sessionTTL(%+v) = %d, want %d", tc.peer, got, tc.want)
		}
	}
}

// TestListenerClosedOnStop: a stopped speaker frees listen_port, so a
// speaker started again at once (a reload that restarts it) can listen.
func TestListenerClosedOnStop(t *testing.T) {
	port := freePort(t)
	g := Global{ASN: senderASN, RouterID: netip.MustParseAddr("10.0.0.2"), ListenPort: int32(port), AllowedPrefixes: []netip.Prefix{allowedV4}}
	first := startSpeaker(t, g, []string{senderAddr.String()})
	first.stop(t)
	startSpeaker(t, g, []string{senderAddr.String()})
	c := dialFrom(t, receiverAddr, netip.AddrPortFrom(senderAddr, port))
	c.Close()
}

// TestRelayInboundIPv6: a router connects over IPv6, with TCP-MD5, to the
// IPv6 listener; the session comes up through the relay.
func TestRelayInboundIPv6(t *testing.T) {
	const password = "inbound6"
	loop6 := netip.IPv6Loopback()
	vipdPort, closedPort := freePort(t), freePort(t)
	vipd := startSpeaker(t, Global{ASN: senderASN, RouterID: netip.MustParseAddr("10.0.0.2"), ListenPort: int32(vipdPort),
		AllowedPrefixes: []netip.Prefix{allowedV4}}, []string{loop6.String()})
	router := startRouter(t, Global{ASN: receiverASN, RouterID: netip.MustParseAddr("10.0.0.1"), ListenPort: -1}, nil)
	if err := vipd.SetPeers(t.Context(), []config.Peer{{Name: "router", Address: loop6, ASN: receiverASN, Port: closedPort,
		Password: config.Secret(password), HoldTime: 9 * time.Second}}); err != nil {
		t.Fatal(err)
	}
	if err := router.SetPeers(t.Context(), []config.Peer{{Name: "vipd", Address: loop6, ASN: senderASN, Port: vipdPort,
		Password: config.Secret(password), HoldTime: 9 * time.Second}}); err != nil {
		t.Fatal(err)
	}
	up := waitEstablished(t, vipd.Speaker, loop6)
	if c := up.Connection; c == nil || !c.Inbound || c.Local != netip.AddrPortFrom(loop6, vipdPort) {
		t.Errorf("status connection %+v, want the router's to [::1]:%d", c, vipdPort)
	}
}

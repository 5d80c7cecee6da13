package bgp

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"

	"github.com/vipd/vipd/internal/config"
)

func TestStatePeerLifecycle(t *testing.T) {
	st := newState()
	p := config.Peer{Address: peerA, ASN: 65535, Password: "x", IPv6NextHop: netip.MustParseAddr("2001:db8::1")}
	st.setPeer(p, p.IPv6NextHop, "")

	if _, ok := st.peerState(peerB, bgp.BGP_FSM_ACTIVE, time.Now(), "", nil); ok {
		t.Error("event for an unknown peer recorded")
	}
	if c, ok := st.connectFailed(peerA, "dial tcp 1.2.3.4:0->10.255.255.1:179: i/o timeout"); !ok || !strings.Contains(c.lastError, "MD5 password mismatch") {
		t.Errorf("connect failure: %+v %v", c, ok)
	}
	if _, ok := st.connectFailed(peerA, "dial tcp 1.2.3.4:0->10.255.255.1:179: i/o timeout"); ok {
		t.Error("a repeated connect failure reported as a change")
	}

	up := time.Now()
	c, ok := st.peerState(peerA, bgp.BGP_FSM_ESTABLISHED, up, "", []bgp.Family{bgp.RF_IPv4_UC})
	if !ok || c.from != "Idle" || c.to != "Established" {
		t.Errorf("established: %+v %v", c, ok)
	}
	snap := st.snapshot().Peers[0]
	if snap.LastError != "" || !snap.Since.Equal(up) || snap.Name != "10.255.255.1" {
		t.Errorf("after Established: %+v", snap)
	}
	if !strings.Contains(snap.IPv6Reason, "did not negotiate ipv6") {
		t.Errorf("IPv6Reason = %q, want the peer's missing ipv6 capability", snap.IPv6Reason)
	}

	why := describeDisconnect(api.PeerState_DISCONNECT_REASON_HOLD_TIMER_EXPIRED, "hold-timer-expired")
	if c, ok := st.peerState(peerA, bgp.BGP_FSM_IDLE, time.Now(), why, nil); !ok || c.lastError != why {
		t.Errorf("down: %+v %v", c, ok)
	}
	if got := st.established(); len(got) != 0 {
		t.Errorf("established() = %v after the session went down", got)
	}
	st.removePeer(peerA)
	if got := st.snapshot().Peers; len(got) != 0 {
		t.Errorf("peers after remove = %v", got)
	}
}

func TestStateSnapshotRoutes(t *testing.T) {
	st := newState()
	st.setRoutes([]RouteStatus{{Route: Route{Prefix: vip6}}, {Route: Route{Prefix: vip4, Communities: []config.Community{1}}}})
	st.setAdjOut(map[netip.Prefix][]string{vip4: {"r1", "r2"}})
	snap := st.snapshot()
	if len(snap.Routes) != 2 || snap.Routes[0].Prefix != vip4 || len(snap.Routes[0].Peers) != 2 || len(snap.Routes[1].Peers) != 0 {
		t.Fatalf("routes = %+v", snap.Routes)
	}
	snap.Routes[0].Peers[0] = "changed"
	snap.Routes[0].Communities[0] = 99
	again := st.snapshot()
	if again.Routes[0].Peers[0] != "r1" || again.Routes[0].Communities[0] != 1 {
		t.Error("snapshot shares memory with the state")
	}
}

func TestNegotiatedFamilies(t *testing.T) {
	v4 := bgp.NewCapMultiProtocol(bgp.RF_IPv4_UC)
	v6 := bgp.NewCapMultiProtocol(bgp.RF_IPv6_UC)
	local := []bgp.ParameterCapabilityInterface{v4, v6}
	if got := negotiatedFamilies(local, []bgp.ParameterCapabilityInterface{v4}); len(got) != 1 || got[0] != bgp.RF_IPv4_UC {
		t.Errorf("v4-only peer: %v", got)
	}
	if got := negotiatedFamilies(local, nil); len(got) != 1 || got[0] != bgp.RF_IPv4_UC {
		t.Errorf("peer without MP capabilities: %v, want IPv4 unicast", got)
	}
	if got := negotiatedFamilies(local, []bgp.ParameterCapabilityInterface{v6, v4}); len(got) != 2 {
		t.Errorf("dual-stack peer: %v", got)
	}
}

func TestDescribeDisconnect(t *testing.T) {
	for reason, want := range map[api.PeerState_DisconnectReason]string{
		api.PeerState_DISCONNECT_REASON_UNSPECIFIED:           "",
		api.PeerState_DISCONNECT_REASON_IDLE_TIMER_EXPIRED:    "",
		api.PeerState_DISCONNECT_REASON_DECONFIGURED:          "",
		api.PeerState_DISCONNECT_REASON_NOTIFICATION_RECEIVED: "NOTIFICATION received from the peer: code 2(open) subcode 2(bad peer as)",
		api.PeerState_DISCONNECT_REASON_READ_FAILED:           "the peer closed the connection or it broke (read failed)",
	} {
		if got := describeDisconnect(reason, "notification-received code 2(open) subcode 2(bad peer as)"); got != want {
			t.Errorf("%v: got %q, want %q", reason, got, want)
		}
	}
}

package bgp

import (
	"context"

	"net/netip"
	"testing"
	"time"

	"github.com/osrg/gobgp/v4/api"

	"github.com/vipd/vipd/internal/config"
)

// RFC 4724 3: the Restart State bit of the capability's flags (GoBGP
// reports the four flag bits on their own) and a family's Forwarding State
// bit.
const (
	flagRestartState   = 0x08
	flagForwardingKept = 0x80
)

func TestAPIPeerGracefulRestart(t *testing.T) {
	for _, tc := range []struct {
		name                        string
		gracefulRestart, restarting bool
		wantGR, wantLocalRestarting bool
	}{
		{"off", false, false, false, false},
		{"normal start", true, false, true, false},
		{"restart after a graceful stop", true, true, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := apiPeer(basePeer(peerA), tc.gracefulRestart, tc.restarting)
			gr := got.GracefulRestart
			if (gr != nil && gr.Enabled) != tc.wantGR {
				t.Fatalf("graceful restart = %+v, want enabled %v", gr, tc.wantGR)
			}
			for _, a := range got.AfiSafis {
				if mp := a.MpGracefulRestart; (mp != nil && mp.Config.Enabled) != tc.wantGR {
					t.Errorf("family %v: graceful restart = %+v, want enabled %v", a.Config.Family, mp, tc.wantGR)
				}
			}
			if !tc.wantGR {
				return
			}
			if gr.LocalRestarting != tc.wantLocalRestarting {
				t.Errorf("LocalRestarting = %v, want %v", gr.LocalRestarting, tc.wantLocalRestarting)
			}
			// 0 would mean GoBGP's 360 s, longer than the routers keep
			// our routes.
			if gr.RestartTime != 120 || gr.DeferralTime == 0 || gr.DeferralTime > gr.RestartTime {
				t.Errorf("restart time %d s, deferral %d s; want 120 and a deferral within it", gr.RestartTime, gr.DeferralTime)
			}
		})
	}
}

// grPair runs a receiver and a sender over loopback, both offering
// graceful restart, the sender with restarting as given. before runs on
// the sender after it starts and before it gets its peers; extra peers
// are added to the sender after the receiver.
func grPair(t *testing.T, restarting bool, before func(*Speaker), extra ...config.Peer) (sender, receiver *runningSpeaker) {
	t.Helper()
	port := freePort(t)
	receiver = startRouter(t, Global{ASN: receiverASN, RouterID: netip.MustParseAddr("10.0.0.1"), ListenPort: int32(port),
		GracefulRestart: true}, []string{receiverAddr.String()})
	sender = startSpeaker(t, Global{
		ASN: senderASN, RouterID: netip.MustParseAddr("10.0.0.2"), ListenPort: -1,
		AllowedPrefixes: []netip.Prefix{allowedV4}, GracefulRestart: true, Restarting: restarting,
	}, nil)
	recvPeer := config.Peer{Name: "sender", Address: senderAddr, ASN: senderASN, HoldTime: 9 * time.Second, Families: []config.Family{config.IPv4}}
	if err := receiver.SetPeers(context.Background(), []config.Peer{recvPeer}); err != nil {
		t.Fatalf("receiver SetPeers: %v", err)
	}
	if before != nil {
		before(sender.Speaker)
	}
	// The route is in place before any session, as after a restart.
	if err := sender.SetRoutes(context.Background(), []Route{{Prefix: vip4}}); err != nil {
		t.Fatal(err)
	}
	peers := append([]config.Peer{{Name: "receiver", Address: receiverAddr, ASN: receiverASN, Port: port,
		SourceAddress: senderAddr, HoldTime: 9 * time.Second, Families: []config.Family{config.IPv4}}}, extra...)
	if err := sender.SetPeers(context.Background(), peers); err != nil {
		t.Fatalf("sender SetPeers: %v", err)
	}
	return sender, receiver
}

// remoteGR returns the graceful-restart capability of the OPEN that s
// received from peer.
func remoteGR(t *testing.T, s *Speaker, peer netip.Addr) *api.GracefulRestartCapability {
	t.Helper()
	s.applyMu.Lock()
	bs := s.gobgp
	s.applyMu.Unlock()
	var gr *api.GracefulRestartCapability
	err := bs.ListPeer(context.Background(), &api.ListPeerRequest{Address: peer.String()}, func(p *api.Peer) {
		for _, c := range p.GetState().GetRemoteCap() {
			if g := c.GetGracefulRestart(); g != nil {
				gr = g
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if gr == nil {
		t.Fatalf("%s sent no graceful-restart capability", peer)
	}
	return gr
}

// The Restart State and Forwarding State bits go out only on a start that
// follows a graceful stop, and only to peers added within RestartTime; the
// route reaches the peer either way.
func TestRestartStateInOpen(t *testing.T) {
	endWindow := func(s *Speaker) {
		s.applyMu.Lock()
		s.restartUntil = time.Now()
		s.applyMu.Unlock()
	}
	for _, tc := range []struct {
		name       string
		restarting bool
		before     func(*Speaker)
		want       bool
	}{
		{"normal start", false, nil, false},
		{"restart", true, nil, true},
		{"restart, peer added after RestartTime", true, endWindow, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, receiver := grPair(t, tc.restarting, tc.before)
			waitEstablished(t, receiver.Speaker, senderAddr)
			waitAdjIn(t, receiver.Speaker, map[netip.Prefix]string{vip4: "nh=127.0.0.2 med=0 aspath=4200000000 comms= large="})
			gr := remoteGR(t, receiver.Speaker, senderAddr)
			if got := gr.Flags&flagRestartState != 0; got != tc.want {
				t.Errorf("Restart State bit %v, want %v (flags %#x)", got, tc.want, gr.Flags)
			}
			if len(gr.Tuples) != 1 {
				t.Fatalf("families in the capability: %v, want ipv4 only", gr.Tuples)
			}
			if got := gr.Tuples[0].Flags&flagForwardingKept != 0; got != tc.want {
				t.Errorf("Forwarding State bit %v, want %v (flags %#x)", got, tc.want, gr.Tuples[0].Flags)
			}
			if gr.Time != uint32(RestartTime/time.Second) {
				t.Errorf("restart time %d s, want %v", gr.Time, RestartTime)
			}
		})
	}
}

// A restarting GoBGP holds its routes back until every peer's End-of-RIB.
// A peer that never comes up must not hold them back for long from one
// that did: selectionDeferral ends the wait.
func TestRestartDoesNotWaitForADeadPeer(t *testing.T) {
	dead := config.Peer{Name: "dead", Address: netip.MustParseAddr("127.0.0.3"), ASN: receiverASN, Port: 9,
		SourceAddress: senderAddr, HoldTime: 9 * time.Second, Families: []config.Family{config.IPv4}}
	sender, receiver := grPair(t, true, nil, dead)
	up := waitEstablished(t, sender.Speaker, receiverAddr)
	waitAdjIn(t, receiver.Speaker, map[netip.Prefix]string{vip4: "nh=127.0.0.2 med=0 aspath=4200000000 comms= large="})
	// Delays on a busy machine only lengthen this; a route that came
	// sooner would mean GoBGP did not defer, and this test tests nothing.
	if took := time.Since(up.Since); took < selectionDeferral-time.Second {
		t.Errorf("route arrived %v after the session came up, want about %v (the deferral)", took, selectionDeferral)
	}
	if st, _ := peerStatus(sender.Speaker, dead.Address); st.State == "Established" {
		t.Fatalf("peer %s is up: %+v", dead.Address, st)
	}
}

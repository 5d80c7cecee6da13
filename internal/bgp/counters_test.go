package bgp

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/osrg/gobgp/v4/pkg/packet/bgp"

	"github.com/vipd/vipd/internal/config"
)

func TestStateCountsStateChanges(t *testing.T) {
	st := newState()
	st.setPeer(config.Peer{Address: peerA, ASN: 65535}, netip.Addr{}, "")
	changes := func() uint64 { return st.snapshot().Peers[0].StateChanges }

	steps := []struct {
		name string
		do   func()
		want uint64
	}{
		{"a new peer starts at zero", func() {}, 0},
		{"to Active", func() { st.peerState(peerA, bgp.BGP_FSM_ACTIVE, time.Now(), "", nil) }, 1},
		{"a repeat is no change", func() { st.peerState(peerA, bgp.BGP_FSM_ACTIVE, time.Now(), "", nil) }, 1},
		{"to Established", func() { st.peerState(peerA, bgp.BGP_FSM_ESTABLISHED, time.Now(), "", nil) }, 2},
		{"re-created while up", func() { st.resetPeer(peerA) }, 3},
		{"re-created while idle", func() { st.resetPeer(peerA) }, 3},
		{"to Connect", func() { st.peerState(peerA, bgp.BGP_FSM_CONNECT, time.Now(), "", nil) }, 4},
		{"speaker stopped", func() { st.stopped(time.Now()) }, 5},
		{"stopped again", func() { st.stopped(time.Now()) }, 5},
		{"reconfigured", func() { st.setPeer(config.Peer{Address: peerA, ASN: 65535, Name: "x"}, netip.Addr{}, "") }, 5},
	}
	for _, step := range steps {
		step.do()
		if got := changes(); got != step.want {
			t.Fatalf("%s: StateChanges = %d, want %d", step.name, got, step.want)
		}
	}
}

func TestStateCountsUpdatesAcrossIncarnations(t *testing.T) {
	st := newState()
	st.setPeer(config.Peer{Address: peerA, ASN: 65535}, netip.Addr{}, "")
	sent := func() uint64 { return st.snapshot().Peers[0].UpdatesSent }
	read := func(n uint64) {
		st.setUpdatesSent(st.updateGenerations(), map[netip.Addr]uint64{peerA: n, peerB: 99}, nil)
	}

	read(5)
	read(7)
	if got := sent(); got != 7 {
		t.Fatalf("UpdatesSent = %d, want GoBGP's 7", got)
	}

	// A read taken before a re-creation and stored after it is stale.
	stale := st.updateGenerations()
	st.resetPeer(peerA)
	st.setUpdatesSent(stale, map[netip.Addr]uint64{peerA: 9}, nil)
	if got := sent(); got != 7 {
		t.Fatalf("UpdatesSent = %d after a stale read, want 7", got)
	}
	read(2)
	if got := sent(); got != 9 {
		t.Fatalf("UpdatesSent = %d, want 7 from before the re-creation + 2", got)
	}

	// GoBGP's counter restarting before resetPeer ran: still monotonic.
	read(1)
	if got := sent(); got != 10 {
		t.Fatalf("UpdatesSent = %d after GoBGP's counter restarted, want 9 + 1", got)
	}
	st.resetPeer(peerA)
	if got := sent(); got != 10 {
		t.Fatalf("UpdatesSent = %d after resetPeer, want 10", got)
	}
}

// The counters come from a real session: state changes from GoBGP's events,
// UPDATEs sent from GoBGP's message counters, read in the background.
func TestSessionCounters(t *testing.T) {
	peer := config.Peer{Name: "receiver", HoldTime: 9 * time.Second, IPv6NextHop: netip.MustParseAddr("2001:db8:ff::2")}
	sender, receiver := sessionPair(t, peer)
	up := waitEstablished(t, sender.Speaker, receiverAddr)
	waitEstablished(t, receiver.Speaker, senderAddr)
	if up.StateChanges == 0 {
		t.Errorf("StateChanges = 0 once established: %+v", up)
	}

	wait := 6 * counterRefreshInterval
	routes := []Route{{Prefix: vip4, MED: 100}}
	if err := sender.SetRoutes(context.Background(), routes); err != nil {
		t.Fatalf("SetRoutes: %v", err)
	}
	waitAdjIn(t, receiver.Speaker, map[netip.Prefix]string{vip4: "nh=127.0.0.2 med=100 aspath=4200000000 comms= large="})
	var first uint64
	waitFor(t, wait, "UpdatesSent to count the announcement", func() (bool, string) {
		st, _ := peerStatus(sender.Speaker, receiverAddr)
		first = st.UpdatesSent
		return first > 0, "0 updates"
	})

	routes[0].MED = 200
	if err := sender.SetRoutes(context.Background(), routes); err != nil {
		t.Fatalf("SetRoutes with a new MED: %v", err)
	}
	waitFor(t, wait, "UpdatesSent to count the changed route", func() (bool, string) {
		st, _ := peerStatus(sender.Speaker, receiverAddr)
		return st.UpdatesSent > first, fmt.Sprintf("%d updates, want more than %d", st.UpdatesSent, first)
	})

	receiver.stop(t)
	waitFor(t, 60*time.Second, "the session to go down", func() (bool, string) {
		st, _ := peerStatus(sender.Speaker, receiverAddr)
		return st.State != "Established" && st.StateChanges > up.StateChanges, string(st.State)
	})
}

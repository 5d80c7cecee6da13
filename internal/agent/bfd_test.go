package agent

import (
	"net/netip"
	"testing"
	"time"

	"github.com/vipd/vipd/internal/bfd"
	"github.com/vipd/vipd/internal/bgp"
	"github.com/vipd/vipd/internal/config"
)

func TestEstablishedBefore(t *testing.T) {
	r1, r2 := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	t0 := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	peers := []bgp.PeerStatus{
		{Address: r1, State: "Established", Since: t0},
		{Address: r2, State: "Active", Since: t0},
	}
	for _, tc := range []struct {
		name string
		addr netip.Addr
		at   time.Time
		want bool
	}{
		{"session up before the failure", r1, t0.Add(time.Second), true},
		{"session came up after the failure (stale BFD state)", r1, t0.Add(-time.Second), false},
		{"session not established", r2, t0.Add(time.Second), false},
		{"unknown peer", netip.MustParseAddr("10.0.0.9"), t0.Add(time.Second), false},
	} {
		ev := bfd.Event{Key: bfd.Key{Remote: tc.addr}, From: bfd.Up, To: bfd.Down, At: tc.at}
		if got := establishedBefore(peers, tc.addr, ev); got != tc.want {
			t.Errorf("%s: establishedBefore = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestBFDPeers(t *testing.T) {
	src := netip.MustParseAddr("10.0.0.11")
	peers := []config.Peer{
		{Address: netip.MustParseAddr("10.0.0.1"), SourceAddress: src,
			BFD: config.BFD{Enabled: true, Multihop: true, MinTx: time.Second, MinRx: 2 * time.Second, Multiplier: 5, MinTTL: 64}},
		{Address: netip.MustParseAddr("10.0.0.2")},
	}
	got := bfdPeers(peers)
	want := bfd.Peer{Local: src, Remote: peers[0].Address, Multihop: true, MinTx: time.Second, MinRx: 2 * time.Second, Multiplier: 5, MinTTL: 64}
	if len(got) != 1 || got[0] != want {
		t.Errorf("bfdPeers = %+v, want only %+v", got, want)
	}
}

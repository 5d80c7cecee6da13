package bgp

import (
	"context"
	"net/netip"
	"time"

	"github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/server"
)

// counterRefreshInterval is how often the per-peer message counters are
// read from GoBGP: often enough for a scrape, rarely enough to cost nothing.
const counterRefreshInterval = 5 * time.Second

// peerCounters is what GoBGP counts for one peer.
type peerCounters struct {
	established bool
	sent        uint64 // UPDATE messages written to the socket
	received    uint64 // paths held in its Adj-RIB-In
}

// readCounters reads every peer's counters from GoBGP.
func readCounters(ctx context.Context, bs *server.BgpServer) (map[netip.Addr]peerCounters, error) {
	out := make(map[netip.Addr]peerCounters)
	err := bs.ListPeer(ctx, &api.ListPeerRequest{}, func(p *api.Peer) {
		addr, err := netip.ParseAddr(p.GetConf().GetNeighborAddress())
		if err != nil {
			return
		}
		c := peerCounters{
			established: p.GetState().GetSessionState() == api.PeerState_SESSION_STATE_ESTABLISHED,
			sent:        p.GetState().GetMessages().GetSent().GetUpdate(),
		}
		for _, af := range p.GetAfiSafis() {
			c.received += af.GetState().GetReceived()
		}
		out[addr] = c
	})
	return out, err
}

// refreshCounters reads every peer's UPDATE-sent counter and the size of
// its Adj-RIB-In from GoBGP into the status view.
func (s *Speaker) refreshCounters(ctx context.Context, bs *server.BgpServer) {
	generations := s.state.updateGenerations()
	counters, err := readCounters(ctx, bs)
	if err != nil {
		s.log.Debug("reading peer counters failed", "event", "peer_counters", "err", err)
		return
	}
	sent := make(map[netip.Addr]uint64, len(counters))
	received := make(map[netip.Addr]uint64, len(counters))
	for addr, c := range counters {
		sent[addr], received[addr] = c.sent, c.received
	}
	s.state.setUpdatesSent(generations, sent, received)
}

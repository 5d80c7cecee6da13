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

// refreshCounters reads every peer's UPDATE-sent counter and the size of
// its Adj-RIB-In from GoBGP into the status view.
func (s *Speaker) refreshCounters(ctx context.Context, bs *server.BgpServer) {
	generations := s.state.updateGenerations()
	sent := make(map[netip.Addr]uint64, len(generations))
	received := make(map[netip.Addr]uint64, len(generations))
	err := bs.ListPeer(ctx, &api.ListPeerRequest{}, func(p *api.Peer) {
		addr, err := netip.ParseAddr(p.GetConf().GetNeighborAddress())
		if err != nil {
			return
		}
		sent[addr] = p.GetState().GetMessages().GetSent().GetUpdate()
		for _, af := range p.GetAfiSafis() {
			received[addr] += af.GetState().GetReceived()
		}
	})
	if err != nil {
		s.log.Debug("reading peer counters failed", "event", "peer_counters", "err", err)
		return
	}
	s.state.setUpdatesSent(generations, sent, received)
}

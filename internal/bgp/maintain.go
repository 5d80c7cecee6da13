package bgp

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"
)

const (
	// nextHopRefreshInterval is how often host-chosen IPv6 next hops are
	// re-resolved.
	nextHopRefreshInterval = 30 * time.Second
	// minAdjOutGap is the least time between two reads of the Adj-RIB-Outs;
	// a slow read (many routes) stretches the gap to ten times its duration
	// so that GoBGP's main loop stays mostly free.
	minAdjOutGap = 200 * time.Millisecond
)

// maintain keeps the status view's Adj-RIB-Out data current (on every kick,
// rate limited), re-resolves IPv6 next hops and re-reads the peers' message
// counters periodically. It returns when ctx ends.
//
// Reading an Adj-RIB-Out holds GoBGP's main loop (about 15 ms per 1,000
// routes and peer here), which delays SetRoutes meanwhile; the rate limit
// keeps that under a tenth of the time.
func (s *Speaker) maintain(ctx context.Context, bs *server.BgpServer) {
	ticker := time.NewTicker(nextHopRefreshInterval)
	defer ticker.Stop()
	counters := time.NewTicker(counterRefreshInterval)
	defer counters.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			if err := s.refreshNextHops(ctx); err != nil {
				s.log.Warn("ipv6 next hop refresh failed", "event", "peer_next_hop", "err", err)
			}
		case <-counters.C:
			s.refreshCounters(ctx, bs)
		case <-s.kick:
			took := s.refreshAdjOut(bs)
			wait(ctx, max(minAdjOutGap, 10*took))
		}
	}
}

// refreshAdjOut reads which routes each established peer's Adj-RIB-Out
// holds and stores it in the status view.
func (s *Speaker) refreshAdjOut(bs *server.BgpServer) time.Duration {
	start := time.Now()
	targets := s.state.established()
	slices.SortFunc(targets, func(a, b peerTarget) int { return strings.Compare(a.name, b.name) })
	adjOut := make(map[netip.Prefix][]string)
	for _, t := range targets {
		for _, f := range t.families {
			if f != bgp.RF_IPv4_UC && f != bgp.RF_IPv6_UC {
				continue
			}
			req := apiutil.ListPathRequest{TableType: api.TableType_TABLE_TYPE_ADJ_OUT, Name: t.neighbor.String(), Family: f}
			err := bs.ListPath(req, func(nlri bgp.NLRI, _ []*apiutil.Path) {
				if p, ok := nlriPrefix(nlri); ok {
					adjOut[p] = append(adjOut[p], t.name)
				}
			})
			if err != nil {
				s.log.Debug("reading adj-rib-out failed", "event", "adj_rib_out", "peer", t.name, "address", t.addr, "err", err)
			}
		}
	}
	s.state.setAdjOut(adjOut)
	return time.Since(start)
}

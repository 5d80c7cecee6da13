package testnet

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// frrWellKnown maps the names FRR prints for well-known communities to
// their values, so both router kinds report numbers.
var frrWellKnown = map[string]string{
	"gracefulShutdown": "65535:0",
	"acceptOwn":        "65535:1",
	"llgrStale":        "65535:6",
	"noLlgr":           "65535:7",
	"blackhole":        "65535:666",
	"noExport":         "65535:65281",
	"noAdvertise":      "65535:65282",
	"localAs":          "65535:65283",
	"noPeer":           "65535:65284",
}

// frrRoute is the part of `show bgp <afi> unicast <prefix> json` we read.
type frrRoute struct {
	Prefix string `json:"prefix"`
	Paths  []struct {
		ASPath struct {
			Segments []struct {
				List []uint32 `json:"list"`
			} `json:"segments"`
		} `json:"aspath"`
		MED            uint32                  `json:"metric"`
		LocalPref      uint32                  `json:"locPrf"`
		Community      *frrStrList             `json:"community"`
		LargeCommunity *frrStrList             `json:"largeCommunity"`
		Nexthops       []frrNexthop            `json:"nexthops"`
		Peer           struct{ PeerID string } `json:"peer"`
		Bestpath       *struct{ Overall bool } `json:"bestpath"`
	} `json:"paths"`
}

type frrStrList struct {
	List []string `json:"list"`
}

type frrNexthop struct {
	IP    string `json:"ip"`
	Scope string `json:"scope"` // IPv6: "global" or "link-local"
}

// parseFRRRoutes reads `show bgp ... PREFIX json`; an empty object means
// FRR has no path for prefix.
func parseFRRRoutes(data []byte, prefix netip.Prefix) ([]RouteInfo, error) {
	var route frrRoute
	if err := json.Unmarshal(data, &route); err != nil {
		return nil, fmt.Errorf("parse vtysh json: %w", err)
	}
	if route.Prefix == "" {
		return nil, nil
	}
	if got, err := netip.ParsePrefix(route.Prefix); err != nil || got != prefix {
		return nil, fmt.Errorf("asked for %s, vtysh answered for %q", prefix, route.Prefix)
	}
	var routes []RouteInfo
	for _, p := range route.Paths {
		r := RouteInfo{MED: p.MED, LocalPref: p.LocalPref, Best: p.Bestpath != nil && p.Bestpath.Overall}
		var err error
		if r.FromPeer, err = netip.ParseAddr(p.Peer.PeerID); err != nil {
			return nil, fmt.Errorf("path peer: %w", err)
		}
		if r.NextHop, err = frrNextHop(p.Nexthops); err != nil {
			return nil, fmt.Errorf("path from %s: %w", r.FromPeer, err)
		}
		for _, seg := range p.ASPath.Segments {
			r.ASPath = append(r.ASPath, seg.List...)
		}
		if p.Community != nil {
			for _, c := range p.Community.List {
				if v, ok := frrWellKnown[c]; ok {
					c = v
				}
				r.Communities = append(r.Communities, c)
			}
		}
		if p.LargeCommunity != nil {
			r.LargeCommunities = slices.Clone(p.LargeCommunity.List)
		}
		routes = append(routes, r)
	}
	return routes, nil
}

// frrNextHop picks the BGP next hop: the first global one.
func frrNextHop(hops []frrNexthop) (netip.Addr, error) {
	for _, h := range hops {
		if h.Scope == "" || h.Scope == "global" {
			return netip.ParseAddr(h.IP)
		}
	}
	return netip.Addr{}, fmt.Errorf("no global next hop in %v", hops)
}

// frrNeighbor is the part of `show bgp neighbors json` we read.
type frrNeighbor struct {
	State            string `json:"bgpState"`
	EstablishedEpoch int64  `json:"bgpTimerUpEstablishedEpoch"`
	LastReset        string `json:"lastResetDueTo"`
}

// parseFRRNeighbors reads `show bgp neighbors json`, keyed by address.
func parseFRRNeighbors(data []byte) ([]Session, error) {
	var neighbors map[string]frrNeighbor
	if err := json.Unmarshal(data, &neighbors); err != nil {
		return nil, fmt.Errorf("parse vtysh json: %w", err)
	}
	var sessions []Session
	for addr, n := range neighbors {
		a, err := netip.ParseAddr(addr)
		if err != nil {
			return nil, fmt.Errorf("neighbor %q: %w", addr, err)
		}
		s := Session{Neighbor: a, State: n.State}
		if s.State != Established {
			s.Info = n.LastReset // FRR keeps the old reason once up again
		} else if n.EstablishedEpoch > 0 {
			s.Since = time.Unix(n.EstablishedEpoch, 0)
		}
		sessions = append(sessions, s)
	}
	slices.SortFunc(sessions, func(x, y Session) int { return x.Neighbor.Compare(y.Neighbor) })
	return sessions, nil
}

package bgp

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/osrg/gobgp/v4/api"

	"github.com/vipd/vipd/internal/config"
)

const (
	// connectRetry is how often GoBGP retries a failed connection; its
	// default (120 s) would delay recovery after a router restart.
	connectRetry = 5 * time.Second
	// holdTimeNone stands in for hold_time 0. GoBGP's API turns a hold time
	// of 0 into its 90 s default, so vipd offers the largest hold time
	// instead: the negotiated value is then the peer's, and a peer
	// configured with 0 gets a session without keepalives.
	holdTimeNone = 65535
	// resetHoldDown is how long GoBGP waits after ResetPeer before it
	// reconnects: the hold-down that keeps a flapping path (as BFD sees
	// it) from flapping the session as fast. GoBGP's default is 30 s.
	resetHoldDown = 5 * time.Second
	// RestartTime is how long a router keeps our routes after a graceful
	// stop (the RFC 4724 Restart Time vipd advertises). A start later than
	// that finds them flushed, so it is no longer a restart.
	RestartTime = 120 * time.Second
	// selectionDeferral bounds how long a restarting vipd holds back its
	// routes and End-of-RIB from a peer while it waits for every peer's
	// End-of-RIB (RFC 4724 4.1, selection_deferral_time). vipd learns no
	// routes, so waiting buys it nothing; the timer only matters when a
	// peer is down or never sends End-of-RIB, and until it fires the live
	// peers get no updates, withdrawals included. GoBGP turns 0 into 360 s.
	selectionDeferral = 5 * time.Second
)

// indexPeers keys peers by address; a repeated address is an error and its
// first entry wins.
func indexPeers(peers []config.Peer) (map[netip.Addr]config.Peer, []error) {
	out := make(map[netip.Addr]config.Peer, len(peers))
	var errs []error
	for _, p := range peers {
		if !p.Address.IsValid() {
			errs = append(errs, fmt.Errorf("peer %q: no address", p.Name))
			continue
		}
		if _, dup := out[p.Address]; dup {
			errs = append(errs, fmt.Errorf("peer %s: listed twice", p.Address))
			continue
		}
		out[p.Address] = p
	}
	return out, errs
}

// peerPlan is what SetPeers does to go from the current peers to the
// desired ones. Each list is sorted.
type peerPlan struct {
	add      []netip.Addr // new
	remove   []netip.Addr // gone
	recreate []netip.Addr // session settings changed: delete and add
	keep     []netip.Addr // session untouched (name, next hop or BFD may change)
}

func diffPeers(current, desired map[netip.Addr]config.Peer) peerPlan {
	var plan peerPlan
	for addr, want := range desired {
		have, ok := current[addr]
		switch {
		case !ok:
			plan.add = append(plan.add, addr)
		case sameSession(have, want):
			plan.keep = append(plan.keep, addr)
		default:
			plan.recreate = append(plan.recreate, addr)
		}
	}
	for addr := range current {
		if _, ok := desired[addr]; !ok {
			plan.remove = append(plan.remove, addr)
		}
	}
	for _, l := range [][]netip.Addr{plan.add, plan.remove, plan.recreate, plan.keep} {
		slices.SortFunc(l, netip.Addr.Compare)
	}
	return plan
}

// sameSession reports whether two configs of one peer need the same BGP
// session. Name, IPv6 next hop and BFD are not part of it: changing them
// must not reset the session.
func sameSession(a, b config.Peer) bool {
	return a.Address == b.Address && a.ASN == b.ASN &&
		peerPort(a) == peerPort(b) &&
		a.Password.Reveal() == b.Password.Reveal() &&
		a.Multihop == b.Multihop && a.TTL == b.TTL &&
		a.SourceAddress == b.SourceAddress &&
		a.HoldTime == b.HoldTime &&
		slices.Equal(peerFamilies(a), peerFamilies(b))
}

// apiPeer is GoBGP's configuration for p. Graceful restart is off unless
// asked for: vipd wants a dead node's routes gone, not kept as stale.
//
// restarting (only with gracefulRestart) says this start follows a
// graceful stop: the OPEN then carries the Restart State bit and, per
// family, Forwarding State preserved (true: the addresses and rules stayed
// on the node). Without the latter the router drops our stale routes the
// moment the new session is up, and adds them back only when our UPDATE
// comes. GoBGP then holds our routes back until every peer's End-of-RIB
// (or selectionDeferral), and sends them before its own End-of-RIB, which
// ends the router's restart.
func apiPeer(p config.Peer, gracefulRestart, restarting bool) *api.Peer {
	hold := uint64(p.HoldTime / time.Second)
	if hold == 0 {
		hold = holdTimeNone
	}
	peer := &api.Peer{
		Conf: &api.PeerConf{
			NeighborAddress: p.Address.String(),
			PeerAsn:         p.ASN,
			AuthPassword:    p.Password.Reveal(),
			Description:     peerName(p),
		},
		Timers: &api.Timers{Config: &api.TimersConfig{
			ConnectRetry:           uint64(connectRetry / time.Second),
			IdleHoldTimeAfterReset: uint64(resetHoldDown / time.Second),
			HoldTime:               hold,
			KeepaliveInterval:      max(hold/3, 1),
		}},
		Transport: &api.Transport{RemotePort: uint32(peerPort(p))},
	}
	if p.SourceAddress.IsValid() {
		peer.Transport.LocalAddress = p.SourceAddress.String()
	}
	switch {
	case p.TTL > 0:
		peer.EbgpMultihop = &api.EbgpMultihop{Enabled: true, MultihopTtl: uint32(p.TTL)}
	case p.Multihop:
		peer.EbgpMultihop = &api.EbgpMultihop{Enabled: true, MultihopTtl: 255}
	}
	for _, f := range peerFamilies(p) {
		family := ipv4Unicast()
		if f == config.IPv6 {
			family = ipv6Unicast()
		}
		afiSafi := &api.AfiSafi{Config: &api.AfiSafiConfig{Family: family, Enabled: true}}
		if gracefulRestart {
			afiSafi.MpGracefulRestart = &api.MpGracefulRestart{Config: &api.MpGracefulRestartConfig{Enabled: true}}
		}
		peer.AfiSafis = append(peer.AfiSafis, afiSafi)
	}
	if gracefulRestart {
		peer.GracefulRestart = &api.GracefulRestart{
			Enabled:         true,
			RestartTime:     uint32(RestartTime / time.Second),
			DeferralTime:    uint32(selectionDeferral / time.Second),
			LocalRestarting: restarting,
		}
	}
	return peer
}

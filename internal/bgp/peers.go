package bgp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/osrg/gobgp/v4/api"

	"github.com/vipd/vipd/internal/config"
)

// appliedPeer is a peer as GoBGP has it.
type appliedPeer struct {
	cfg     config.Peer
	nextHop ipv6Route
	// nextHop4 is the IPv4 next hop the policy sets for a relayed peer:
	// the local address of the relay's connection; zero (IPv4 routes
	// refused) until the relay first connects.
	nextHop4 netip.Addr
}

// ipv6Route is how IPv6 routes go to one peer: with nextHop, or not at all
// for the reason given.
type ipv6Route struct {
	nextHop netip.Addr
	reason  string
}

// SetPeers makes GoBGP's peers match peers, keyed by address: it adds new
// peers, deletes removed ones and re-creates those whose session settings
// changed. A peer whose session settings are unchanged keeps its session;
// a changed name or IPv6 next hop is applied without a reset. It carries on
// past failures and returns them all.
func (s *Speaker) SetPeers(ctx context.Context, peers []config.Peer) error {
	desired, errs := indexPeers(peers)

	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	if s.gobgp == nil {
		return ErrNotRunning
	}
	current := make(map[netip.Addr]config.Peer, len(s.peers))
	for addr, p := range s.peers {
		current[addr] = p.cfg
	}
	plan := diffPeers(current, desired)
	errs = append(errs, s.deletePeers(ctx, plan, current, desired)...)
	errs = append(errs, s.allocAliases(plan.add)...)

	// The policy must hold the IPv6 next hops of new peers before their
	// sessions come up, and changed ones before routes are re-sent.
	toAdd := slices.Concat(plan.add, plan.recreate)
	hops, changed := s.nextHopChanges(plan.keep, toAdd, desired)
	policyErr := s.installPolicies(ctx, hops, externalPeers(s.global.ASN, desired), s.prepends)
	if policyErr != nil {
		errs = append(errs, policyErr)
		changed = nil
		for addr := range hops {
			// Not in the policy: the next SetPeers must see a change.
			hops[addr] = ipv6Route{reason: "IPv6 next hop not applied: " + policyErr.Error()}
		}
	}
	for _, addr := range plan.keep {
		p := appliedPeer{cfg: desired[addr], nextHop: s.peers[addr].nextHop, nextHop4: s.peers[addr].nextHop4}
		if nh, ok := hops[addr]; ok && policyErr == nil {
			p.nextHop = nh
		}
		s.peers[addr] = p
		s.state.setPeer(p.cfg, p.nextHop.nextHop, p.nextHop.reason)
	}
	for _, addr := range toAdd {
		if err := s.addPeer(ctx, desired[addr], hops[addr]); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, s.resendIPv6(ctx, changed)...)
	signal(s.kick)
	return errors.Join(errs...)
}

// ResetPeer closes the session with the peer at addr now, with a Cease
// (administrative reset) carrying reason; GoBGP reconnects after
// resetHoldDown. BFD calls it when it sees the path to the peer fail.
func (s *Speaker) ResetPeer(ctx context.Context, addr netip.Addr, reason string) error {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	if s.gobgp == nil {
		return ErrNotRunning
	}
	p, ok := s.peers[addr]
	if !ok {
		return fmt.Errorf("peer %s: not configured", addr)
	}
	if err := s.gobgp.ResetPeer(ctx, &api.ResetPeerRequest{Address: s.neighbor(addr).String(), Communication: reason}); err != nil {
		return fmt.Errorf("peer %s: reset: %w", peerName(p.cfg), err)
	}
	s.log.Warn("bgp session reset", "event", "peer_reset", "peer", peerName(p.cfg), "address", addr, "reason", reason)
	return nil
}

// deletePeers deletes the peers the plan removes or re-creates.
func (s *Speaker) deletePeers(ctx context.Context, plan peerPlan, current, desired map[netip.Addr]config.Peer) []error {
	var errs []error
	for _, addr := range plan.remove {
		if err := s.deletePeer(ctx, addr); err != nil {
			errs = append(errs, err)
			continue
		}
		s.state.removePeer(addr)
		if s.relays != nil {
			s.relays.remove(addr)
		}
		s.log.Info("bgp peer removed", "event", "peer_removed", "peer", peerName(current[addr]), "address", addr)
	}
	for _, addr := range plan.recreate {
		if err := s.deletePeer(ctx, addr); err != nil {
			errs = append(errs, err)
			continue
		}
		s.log.Info("bgp peer session settings changed, re-creating it", "event", "peer_recreated", "peer", peerName(desired[addr]), "address", addr)
	}
	return errs
}

// allocAliases gives new peers the loopback alias GoBGP will know them by;
// the policy needs it before they are added.
func (s *Speaker) allocAliases(peers []netip.Addr) []error {
	if s.relays == nil {
		return nil
	}
	var errs []error
	for _, addr := range peers {
		if _, err := s.relays.alias(addr); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// nextHopChanges returns the IPv6 next hops of the peers to add and of the
// kept peers whose next hop changed, and lists the latter.
func (s *Speaker) nextHopChanges(keep, add []netip.Addr, desired map[netip.Addr]config.Peer) (map[netip.Addr]ipv6Route, []netip.Addr) {
	hops := make(map[netip.Addr]ipv6Route, len(add))
	var changed []netip.Addr
	for _, addr := range keep {
		if nh := s.ipv6Route(desired[addr]); nh != s.peers[addr].nextHop {
			hops[addr] = nh
			changed = append(changed, addr)
		}
	}
	for _, addr := range add {
		hops[addr] = s.ipv6Route(desired[addr])
	}
	return hops, changed
}

// ipv6Route decides how IPv6 routes go to p.
func (s *Speaker) ipv6Route(p config.Peer) ipv6Route {
	nh, reason := ipv6NextHop(p, s.resolve)
	return ipv6Route{nextHop: nh, reason: reason}
}

// externalPeers lists the eBGP peers of peers: those in another AS.
func externalPeers(localASN uint32, peers map[netip.Addr]config.Peer) []netip.Addr {
	var out []netip.Addr
	for addr, p := range peers {
		if p.ASN != localASN {
			out = append(out, addr)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// installPolicies installs the routing policy for the applied peers, with
// the next hops in extra replacing or adding to theirs, external as the
// eBGP peers and prepends as the routes to prepend. On success it records
// external and prepends as installed.
func (s *Speaker) installPolicies(ctx context.Context, extra map[netip.Addr]ipv6Route,
	external []netip.Addr, prepends map[int][]netip.Prefix,
) error {
	var rules, rules4 []nextHopRule
	add := func(addr netip.Addr, r ipv6Route) {
		if r.nextHop.IsValid() {
			rules = append(rules, nextHopRule{peer: s.neighbor(addr), nextHop: r.nextHop})
		}
	}
	for addr, p := range s.peers {
		if _, replaced := extra[addr]; !replaced {
			add(addr, p.nextHop)
		}
		if s.relays != nil {
			rules4 = append(rules4, nextHopRule{peer: s.neighbor(addr), nextHop: p.nextHop4})
		}
	}
	for addr, r := range extra {
		add(addr, r)
	}
	neighbors := make([]netip.Addr, 0, len(external))
	for _, addr := range external {
		neighbors = append(neighbors, s.neighbor(addr))
	}
	in := policyInput{asn: s.global.ASN, allowed: s.global.AllowedPrefixes, nextHops: rules, nextHops4: rules4,
		external: neighbors, prepends: prepends}
	if err := installPolicies(ctx, s.gobgp, in); err != nil {
		return err
	}
	s.external, s.prepends = external, prepends
	return nil
}

func (s *Speaker) addPeer(ctx context.Context, p config.Peer, nh ipv6Route) error {
	restarting := s.global.GracefulRestart && s.restarting(time.Now())
	peer := apiPeer(p, s.global.GracefulRestart, restarting)
	if s.relays != nil {
		if err := s.relays.setListenerKey(p.Address, p.Password.Reveal()); err != nil {
			return fmt.Errorf("peer %s: tcp-md5: %w", peerName(p), err)
		}
		// The state must map the alias before GoBGP reports on it.
		alias := s.neighbor(p.Address)
		peer = relayedPeer(peer, alias, s.relays.key)
		s.state.setRelay(p.Address, alias, s.relays.counter(p.Address))
	}
	if err := s.gobgp.AddPeer(ctx, &api.AddPeerRequest{Peer: peer}); err != nil {
		return fmt.Errorf("peer %s: add: %w", peerName(p), err)
	}
	s.peers[p.Address] = appliedPeer{cfg: p, nextHop: nh}
	s.state.setPeer(p, nh.nextHop, nh.reason)
	s.state.resetPeer(p.Address)
	if s.relays != nil {
		s.relays.start(s, p)
	}
	s.log.Info("bgp peer configured", "event", "peer_added", "peer", peerName(p), "address", p.Address, "reason", nh.reason,
		"restarting", restarting)
	return nil
}

// deletePeer removes a peer from GoBGP, which closes its session with a
// Cease NOTIFICATION.
func (s *Speaker) deletePeer(ctx context.Context, addr netip.Addr) error {
	name := peerName(s.peers[addr].cfg)
	if err := s.gobgp.DeletePeer(ctx, &api.DeletePeerRequest{Address: s.neighbor(addr).String()}); err != nil {
		return fmt.Errorf("peer %s: delete: %w", name, err)
	}
	delete(s.peers, addr)
	return nil
}

// resendIPv6 re-sends the routes of peers whose IPv6 next hop changed (an
// outbound soft reset: the session stays up). The policy must already hold
// the new next hops.
func (s *Speaker) resendIPv6(ctx context.Context, peers []netip.Addr) []error {
	errs := s.resend(ctx, peers, "new IPv6 next hop")
	for _, addr := range peers {
		p := s.peers[addr]
		s.log.Info("bgp peer ipv6 next hop changed", "event", "peer_next_hop", "peer", peerName(p.cfg), "address", p.cfg.Address,
			"next_hop", p.nextHop.nextHop, "reason", p.nextHop.reason)
	}
	return errs
}

// resend re-sends every route to the configured ones of peers through the
// installed policy (an outbound soft reset: the sessions stay up).
func (s *Speaker) resend(ctx context.Context, peers []netip.Addr, why string) []error {
	var errs []error
	for _, addr := range peers {
		p, ok := s.peers[addr]
		if !ok {
			continue
		}
		req := &api.ResetPeerRequest{Address: s.neighbor(addr).String(), Soft: true, Direction: api.ResetPeerRequest_DIRECTION_OUT}
		if err := s.gobgp.ResetPeer(ctx, req); err != nil {
			errs = append(errs, fmt.Errorf("peer %s: re-send routes for %s: %w", peerName(p.cfg), why, err))
		}
	}
	return errs
}

// refreshNextHops re-resolves the IPv6 next hops the host chose (addresses
// come and go) and applies changes without resetting sessions.
func (s *Speaker) refreshNextHops(ctx context.Context) error {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	if s.gobgp == nil {
		return nil
	}
	changed := make(map[netip.Addr]ipv6Route)
	for addr, p := range s.peers {
		if nh := s.ipv6Route(p.cfg); nh != p.nextHop {
			changed[addr] = nh
		}
	}
	if len(changed) == 0 {
		return nil
	}
	if err := s.installPolicies(ctx, changed, s.external, s.prepends); err != nil {
		return err
	}
	addrs := make([]netip.Addr, 0, len(changed))
	for addr, nh := range changed {
		p := s.peers[addr]
		p.nextHop = nh
		s.peers[addr] = p
		s.state.setPeer(p.cfg, nh.nextHop, nh.reason)
		addrs = append(addrs, addr)
	}
	defer signal(s.kick)
	return errors.Join(s.resendIPv6(ctx, addrs)...)
}

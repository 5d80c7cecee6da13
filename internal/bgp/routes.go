package bgp

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"time"

	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

const (
	// pathBatch is how many paths go to GoBGP per call.
	pathBatch = 1000
	// withdrawSentTimeout bounds SetRoutes's wait for its withdrawals to be
	// written to the peers.
	withdrawSentTimeout = time.Second
	withdrawSentPoll    = 2 * time.Millisecond
)

// SetRoutes makes the announced routes match routes, keyed by prefix: it
// announces new routes, re-announces routes whose attributes changed (in
// place, without a withdrawal) and withdraws the rest. A repeat is a no-op;
// an empty set withdraws everything. Routes the export guard refuses are not
// sent: the error names each of them, and the valid routes are applied
// anyway.
//
// Withdrawals go first, and SetRoutes returns only once every established
// peer that takes their family has sent an UPDATE since (or after
// withdrawSentTimeout), so the caller may then remove what the routes led
// to: an address, load-balancing rules.
func (s *Speaker) SetRoutes(ctx context.Context, routes []Route) error {
	desired, views, errs := admitRoutes(s.global.AllowedPrefixes, routes)
	for _, err := range errs {
		s.log.Warn("route refused", "event", "route_refused", "err", err)
	}

	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	if s.gobgp == nil {
		return ErrNotRunning
	}
	// Prepends live in the export policy (policy.go), installed before
	// the routes so that new ones go out through it.
	if prepends := prependsOf(desired); !samePrepends(prepends, s.prepends) {
		if err := s.installPolicies(ctx, nil, s.external, prepends); err != nil {
			return errors.Join(slices.Concat(errs, []error{fmt.Errorf("routes not applied: %w", err)})...)
		}
	}
	resend := prependChanged(s.routes, desired)
	announce, withdraw := diffRoutes(s.routes, desired)
	withdrawErrs := s.withdrawAndWait(ctx, withdraw)
	announceErrs := s.announce(ctx, announce)
	var resendErrs []error
	if resend {
		// A route whose prepend alone changed is the same GoBGP path, which
		// GoBGP does not send again: re-send to the eBGP peers.
		resendErrs = s.resend(ctx, s.external, "new AS-path prepends")
	}
	s.state.setRoutes(views)
	signal(s.kick)

	if len(announce) > 0 || len(withdraw) > 0 {
		s.log.Info("routes applied", "event", "routes_applied",
			"announced", len(announce)-len(announceErrs), "withdrawn", len(withdraw)-len(withdrawErrs), "refused", len(errs))
	}
	return errors.Join(slices.Concat(errs, announceErrs, withdrawErrs, resendErrs)...)
}

// admitRoutes runs the export guard on every route. It returns the admitted
// routes by prefix, the status of every route, and an error per refused or
// repeated route.
func admitRoutes(allowed []netip.Prefix, routes []Route) (map[netip.Prefix]admitted, []RouteStatus, []error) {
	desired := make(map[netip.Prefix]admitted, len(routes))
	views := make([]RouteStatus, 0, len(routes))
	seen := make(map[netip.Prefix]bool, len(routes))
	var errs []error
	for _, r := range routes {
		if seen[r.Prefix] {
			errs = append(errs, fmt.Errorf("route %s: listed twice", r.Prefix))
			continue
		}
		seen[r.Prefix] = true
		r.Communities = slices.Clone(r.Communities)
		r.LargeCommunities = slices.Clone(r.LargeCommunities)
		a, err := admit(allowed, r)
		if err != nil {
			errs = append(errs, fmt.Errorf("route refused: %w", err))
			views = append(views, RouteStatus{Route: r, Refused: refusalReason(err)})
			continue
		}
		desired[r.Prefix] = a
		views = append(views, RouteStatus{Route: r})
	}
	return desired, views, errs
}

func samePrepends(a, b map[int][]netip.Prefix) bool {
	return maps.EqualFunc(a, b, slices.Equal)
}

// prependChanged reports whether a route both sets hold asks for another
// prepend count: only a re-send gets that to the eBGP peers.
func prependChanged(current, desired map[netip.Prefix]admitted) bool {
	for p, want := range desired {
		if have, ok := current[p]; ok && have.route.Prepend != want.route.Prepend {
			return true
		}
	}
	return false
}

// diffRoutes returns the routes to announce (new or changed) and those to
// withdraw, each sorted by prefix.
func diffRoutes(current, desired map[netip.Prefix]admitted) (announce, withdraw []admitted) {
	for p, want := range desired {
		if have, ok := current[p]; !ok || !sameAttributes(have.route, want.route) {
			announce = append(announce, want)
		}
	}
	for p, have := range current {
		if _, ok := desired[p]; !ok {
			withdraw = append(withdraw, have)
		}
	}
	byPrefix := func(a, b admitted) int { return comparePrefix(a.route.Prefix, b.route.Prefix) }
	slices.SortFunc(announce, byPrefix)
	slices.SortFunc(withdraw, byPrefix)
	return announce, withdraw
}

// announce hands routes to GoBGP, recording each one that succeeded.
func (s *Speaker) announce(ctx context.Context, routes []admitted) []error {
	return s.inBatches(ctx, routes, announcePath,
		func(paths []*apiutil.Path) error {
			_, err := s.gobgp.AddPath(apiutil.AddPathRequest{Paths: paths})
			return err
		},
		func(a admitted) {
			s.routes[a.route.Prefix] = a
			s.log.Debug("route announced", "event", "route_announced", "prefix", a.route.Prefix)
		})
}

// withdraw withdraws routes by NLRI, recording each one that succeeded.
func (s *Speaker) withdraw(ctx context.Context, routes []admitted) []error {
	return s.inBatches(ctx, routes, withdrawPath,
		func(paths []*apiutil.Path) error {
			return s.gobgp.DeletePath(apiutil.DeletePathRequest{Paths: paths})
		},
		func(a admitted) {
			delete(s.routes, a.route.Prefix)
			s.log.Debug("route withdrawn", "event", "route_withdrawn", "prefix", a.route.Prefix)
		})
}

// withdrawAndWait withdraws routes and waits until each peer that had to
// hear of it has written an UPDATE since: GoBGP counts a message as sent
// once it is written to the socket. A peer that had none of the routes
// sends nothing and costs the wait its bound.
func (s *Speaker) withdrawAndWait(ctx context.Context, routes []admitted) []error {
	if len(routes) == 0 {
		return nil
	}
	families := make(map[bgp.Family]bool)
	for _, a := range routes {
		families[familyOf(a.route.Prefix)] = true
	}
	var peers []netip.Addr
	for f := range families {
		peers = append(peers, s.state.receivers(f)...)
	}
	before := s.updatesSent(ctx)
	errs := s.withdraw(ctx, routes)
	if len(errs) == len(routes) || len(peers) == 0 {
		return errs
	}
	deadline := time.Now().Add(withdrawSentTimeout)
	for {
		now := s.updatesSent(ctx)
		waiting := slices.DeleteFunc(slices.Clone(peers), func(p netip.Addr) bool {
			n, up := now[p]
			return !up || n > before[p] // gone down (nothing to send), or sent
		})
		if len(waiting) == 0 {
			return errs
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			s.log.Debug("withdrawal not seen sent", "event", "route_withdrawn", "peers", waiting)
			return errs
		}
		time.Sleep(withdrawSentPoll)
	}
}

// updatesSent reads the UPDATE messages GoBGP has written to each
// established peer.
func (s *Speaker) updatesSent(ctx context.Context) map[netip.Addr]uint64 {
	counters, err := readCounters(ctx, s.gobgp)
	if err != nil {
		s.log.Debug("reading peer counters failed", "event", "peer_counters", "err", err)
	}
	out := make(map[netip.Addr]uint64, len(counters))
	for addr, c := range counters {
		if c.established {
			out[addr] = c.sent
		}
	}
	return out
}

// Announced reports whether prefix is announced: handed to GoBGP and not
// withdrawn since.
func (s *Speaker) Announced(prefix netip.Prefix) bool {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	_, ok := s.routes[prefix]
	return ok
}

// inBatches builds a path per route and sends them to GoBGP pathBatch at a
// time. GoBGP rejects a whole batch when one path fails, so a failed batch
// is retried path by path to learn which routes really got through; done
// runs for each of those.
func (s *Speaker) inBatches(ctx context.Context, routes []admitted,
	build func(admitted) (*apiutil.Path, error), send func([]*apiutil.Path) error, done func(admitted),
) []error {
	var errs []error
	for start := 0; start < len(routes); start += pathBatch {
		if err := ctx.Err(); err != nil {
			return append(errs, fmt.Errorf("%d routes not applied: %w", len(routes)-start, err))
		}
		chunk := routes[start:min(start+pathBatch, len(routes))]
		paths := make([]*apiutil.Path, 0, len(chunk))
		built := make([]admitted, 0, len(chunk))
		for _, a := range chunk {
			p, err := build(a)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			paths = append(paths, p)
			built = append(built, a)
		}
		if len(paths) == 0 {
			continue
		}
		if send(paths) == nil {
			for _, a := range built {
				done(a)
			}
			continue
		}
		for i, a := range built {
			if err := send(paths[i : i+1]); err != nil {
				errs = append(errs, fmt.Errorf("route %s: %w", a.route.Prefix, err))
				continue
			}
			done(a)
		}
	}
	return errs
}

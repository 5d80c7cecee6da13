// Package bgp is vipd's BGP speaker: an announce-only wrapper around an
// embedded GoBGP v4 server.
//
// The agent hands it the full desired set of peers (SetPeers) and host routes
// (SetRoutes); the speaker diffs them against what it applied before and makes
// GoBGP match. It never imports routes from peers. Every route passes the
// export guard (guard.go) before GoBGP sees it, and GoBGP's export policy
// repeats the check (policy.go).
//
// Peers in the local AS are iBGP peers. Routes carry LOCAL_PREF (GoBGP
// strips it towards eBGP peers) and no AS-path prepends: the export policy
// prepends on eBGP peers only, so a node that peers with a route reflector
// and a provider at once sends each what it expects.
//
// When vipd only dials out, a relay per peer owns the session to the
// router and keeps what the router sends out of GoBGP's memory (relay.go,
// relays.go); GoBGP then knows the peer by a loopback alias.
//
// IPv4 and IPv6 routes travel over one (usually IPv4) session. IPv4 routes
// carry the session's local address as next hop (GoBGP sets it on eBGP and
// iBGP alike for locally originated paths; behind a relay a per-peer policy
// statement sets the relay's local address instead); IPv6 routes need a global
// IPv6 next hop per peer, set by a per-peer statement in GoBGP's export
// policy (nexthop.go, policy.go). A peer without one gets no IPv6 routes, and
// its status says why.
//
// Status is a cheap snapshot kept up to date from GoBGP's peer events, from
// its log records (connection errors only show there) and from background
// reads of each peer's Adj-RIB-Out and message counters (status.go,
// maintain.go, counters.go).
package bgp

import (
	"errors"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/osrg/gobgp/v4/pkg/server"

	"github.com/vipd/vipd/internal/config"
)

// Global is the speaker-wide configuration.
type Global struct {
	ASN             uint32
	RouterID        netip.Addr // must be set, IPv4 (the agent resolves the default)
	ListenPort      int32      // -1: only dial out
	AllowedPrefixes []netip.Prefix
	// GracefulRestart (RFC 4724) offers every peer the capability, and
	// Run's end then stops without withdrawing or a NOTIFICATION, so the
	// routers keep the routes (as stale) until vipd is back.
	GracefulRestart bool
	// Restarting (with GracefulRestart) says this start follows a graceful
	// stop less than RestartTime ago: peers added in the first RestartTime
	// of Run are told so in the OPEN, and keep the routes they hold until
	// vipd's End-of-RIB. A normal start leaves it false.
	Restarting bool
}

// Route is one host route to announce.
type Route struct {
	Prefix           netip.Prefix            `json:"prefix"` // /32 or /128, inside Global.AllowedPrefixes
	MED              uint32                  `json:"med"`
	Prepend          int                     `json:"prepend"`    // extra copies of our AS, on eBGP peers only
	LocalPref        uint32                  `json:"local_pref"` // LOCAL_PREF, sent to iBGP peers only
	Communities      []config.Community      `json:"communities,omitempty"`
	LargeCommunities []config.LargeCommunity `json:"large_communities,omitempty"`
}

// Status is a snapshot of the speaker's peers and routes.
type Status struct {
	Peers  []PeerStatus  `json:"peers"`
	Routes []RouteStatus `json:"routes"`
}

// PeerStatus describes one configured peer.
type PeerStatus struct {
	Name      string          `json:"name"`
	Address   netip.Addr      `json:"address"`
	ASN       uint32          `json:"asn"`
	State     SessionState    `json:"state"`
	Since     time.Time       `json:"since"`
	LastError string          `json:"last_error,omitempty"` // why the session is not up, if known
	Families  []config.Family `json:"families"`
	// IPv6NextHop is the next hop of IPv6 routes sent to this peer.
	IPv6NextHop netip.Addr `json:"ipv6_next_hop,omitzero"`
	// IPv6Reason says why IPv6 routes are not sent to this peer; empty when they are.
	IPv6Reason string `json:"ipv6_reason,omitempty"`
	// StateChanges counts session state changes since the peer was configured.
	StateChanges uint64 `json:"state_changes"`
	// UpdatesSent counts UPDATE messages sent to the peer since it was
	// configured. It is read from GoBGP every few seconds, so it lags.
	UpdatesSent uint64 `json:"updates_sent"`
	// ReceivedPrefixes counts the routes the peer sent in this session
	// that vipd discarded: the prefixes the relay's discarded UPDATEs
	// announced minus those they withdrew, never below 0. A route sent
	// twice counts twice, so it is an upper bound of the routes the peer
	// holds out to vipd; nothing of them stays in memory. (A speaker
	// without relays, in tests, reports the paths GoBGP holds in its
	// Adj-RIB-In.) 0 once the session ends.
	ReceivedPrefixes uint64 `json:"received_prefixes"`
	// DiscardedUpdates counts the UPDATE messages from the peer the relay
	// discarded since the peer was configured.
	DiscardedUpdates uint64 `json:"discarded_updates"`
	// Connection is the TCP connection to the router the relay holds; nil
	// while it holds none.
	Connection *Connection `json:"connection,omitempty"`
}

// Connection is a relay's TCP connection to a router.
type Connection struct {
	Local   netip.AddrPort `json:"local"`
	Remote  netip.AddrPort `json:"remote"`
	Inbound bool           `json:"inbound"` // the router opened it, to listen_port
}

// RouteStatus describes one route handed to SetRoutes.
type RouteStatus struct {
	Route
	Peers   []string `json:"peers"`             // names of peers whose Adj-RIB-Out holds it
	Refused string   `json:"refused,omitempty"` // why the export guard refused it
}

// ErrNotRunning is returned by SetPeers and SetRoutes outside Run.
var ErrNotRunning = errors.New("bgp speaker is not running")

// Speaker is vipd's BGP speaker. Create it with New and start it with Run.
type Speaker struct {
	global  Global
	log     *slog.Logger
	notify  chan struct{} // a peer changed state
	kick    chan struct{} // asks the maintenance loop to re-read Adj-RIB-Outs
	resolve nextHopResolver
	// listenAddresses restricts GoBGP's listener (tests bind to loopback only).
	listenAddresses []string

	// applyMu serialises everything that changes GoBGP: SetPeers, SetRoutes,
	// next-hop refreshes and shutdown.
	applyMu sync.Mutex
	gobgp   *server.BgpServer          // non-nil while running
	peers   map[netip.Addr]appliedPeer // peers GoBGP has
	routes  map[netip.Prefix]admitted  // routes GoBGP has
	// external and prepends are what the installed export policy knows of
	// the eBGP peers and of the routes' prepends (policy.go).
	external []netip.Addr
	prepends map[int][]netip.Prefix
	state    *state // the status view; has its own lock
	// restartUntil ends the window in which added peers are told vipd is
	// restarting (Global.Restarting); zero when it is not.
	restartUntil time.Time
	// relays carry every session (relay.go). Only tests set it nil, for a
	// speaker that plays a router: one that talks to its peers directly
	// and keeps the routes they send.
	relays *relaySet
}

// New returns a speaker for g. It has no side effects; Run starts it.
func New(g Global, log *slog.Logger) *Speaker {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Speaker{
		relays:  newRelaySet(log),
		global:  g,
		log:     log,
		notify:  make(chan struct{}, 1),
		kick:    make(chan struct{}, 1),
		resolve: netlinkNextHop(g.AllowedPrefixes),
		peers:   make(map[netip.Addr]appliedPeer),
		routes:  make(map[netip.Prefix]admitted),
		state:   newState(),
	}
}

// Notify returns a channel that receives a value after a peer changed
// state. It holds one pending value: bursts fold into one.
func (s *Speaker) Notify() <-chan struct{} { return s.notify }

// Status returns a snapshot of peers and routes. It is cheap and safe from
// any goroutine; the peers listed under each route may lag a change by a
// moment (they are read from GoBGP in the background).
func (s *Speaker) Status() Status { return s.state.snapshot() }

// restarting reports whether a peer added now is told that vipd is
// restarting. Past RestartTime the routers have dropped our routes anyway,
// and a peer added by a later reload never had them. Call with applyMu held.
func (s *Speaker) restarting(now time.Time) bool {
	return now.Before(s.restartUntil)
}

// signal does a non-blocking send on a 1-slot channel.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

package bgp

import (
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/osrg/gobgp/v4/pkg/packet/bgp"

	"github.com/vipd/vipd/internal/config"
)

// state is the status view: what Status returns. GoBGP callbacks write to
// it, so every method only takes the lock briefly and never calls out.
type state struct {
	mu     sync.Mutex
	peers  map[netip.Addr]*peerView
	routes []RouteStatus             // desired routes, sorted, Peers empty
	adjOut map[netip.Prefix][]string // prefix -> names of peers that have it
	// relayed maps a relayed peer's address to its alias and counters,
	// aliases maps back: GoBGP reports on aliases, status shows peers.
	relayed map[netip.Addr]relayView
	aliases map[netip.Addr]netip.Addr
}

// relayView is what the state knows of a peer's relay.
type relayView struct {
	alias    netip.Addr
	counters *relayCounters
}

// peerView is one peer's status and what is needed to explain its errors.
type peerView struct {
	status      PeerStatus
	port        uint16
	hasPassword bool
	negotiated  []bgp.Family // families both sides enabled; set when Established
	updates     updateCount
	received    uint64 // paths in GoBGP's Adj-RIB-In, as last read
}

// updateCount keeps UpdatesSent monotonic while GoBGP's own counter starts
// again from zero whenever the peer is re-created.
type updateCount struct {
	generation uint64 // bumped when GoBGP's peer is re-created
	base       uint64 // updates sent by earlier incarnations of the peer
	read       uint64 // GoBGP's counter for the current one, as last read
}

func (u updateCount) total() uint64 { return u.base + u.read }

// restart starts counting a new incarnation of the peer.
func (u *updateCount) restart() {
	u.generation++
	u.base += u.read
	u.read = 0
}

// set records GoBGP's counter. A value below the last read means GoBGP
// counts a new incarnation that restart has not seen yet.
func (u *updateCount) set(n uint64) {
	if n < u.read {
		u.base += u.read
	}
	u.read = n
}

func newState() *state {
	return &state{peers: make(map[netip.Addr]*peerView), adjOut: make(map[netip.Prefix][]string),
		relayed: make(map[netip.Addr]relayView), aliases: make(map[netip.Addr]netip.Addr)}
}

// setRelay records that GoBGP knows peer by alias, and its relay's counters.
func (st *state) setRelay(peer, alias netip.Addr, c *relayCounters) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if old, ok := st.relayed[peer]; ok {
		delete(st.aliases, old.alias)
	}
	st.relayed[peer] = relayView{alias: alias, counters: c}
	st.aliases[alias] = peer
}

// peerAddr returns the peer address GoBGP's neighbor address stands for.
// Call with mu held.
func (st *state) peerAddr(neighbor netip.Addr) netip.Addr {
	if p, ok := st.aliases[neighbor]; ok {
		return p
	}
	return neighbor
}

// neighbor returns the address GoBGP knows peer by. Call with mu held.
func (st *state) neighbor(peer netip.Addr) netip.Addr {
	if r, ok := st.relayed[peer]; ok {
		return r.alias
	}
	return peer
}

// setPeer records p's configuration, adding it in state Idle if new.
func (st *state) setPeer(p config.Peer, nextHop netip.Addr, reason string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	v, ok := st.peers[p.Address]
	if !ok {
		v = &peerView{status: PeerStatus{State: StateIdle, Since: time.Now()}}
		st.peers[p.Address] = v
	}
	v.status.Name = peerName(p)
	v.status.Address = p.Address
	v.status.ASN = p.ASN
	v.status.Families = peerFamilies(p)
	v.status.IPv6NextHop = nextHop
	v.status.IPv6Reason = reason
	v.port = peerPort(p)
	v.hasPassword = p.Password.Reveal() != ""
}

// resetPeer marks a re-created peer as a new session.
func (st *state) resetPeer(addr netip.Addr) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if v, ok := st.peers[addr]; ok {
		v.setState(StateIdle, time.Now())
		v.negotiated = nil
		v.updates.restart()
	}
}

func (st *state) removePeer(addr netip.Addr) {
	st.mu.Lock()
	defer st.mu.Unlock()
	delete(st.peers, addr)
	if r, ok := st.relayed[addr]; ok {
		delete(st.aliases, r.alias)
		delete(st.relayed, addr)
	}
}

// peerChange is what a peer event changed, for logging.
type peerChange struct {
	addr      netip.Addr // the peer's, not GoBGP's alias
	name      string
	from, to  SessionState
	lastError string
}

// peerState records a session state change; ok is false for unknown peers
// and repeats of the current state.
func (st *state) peerState(addr netip.Addr, to bgp.FSMState, at time.Time, why string, negotiated []bgp.Family) (peerChange, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	v, ok := st.peers[st.peerAddr(addr)]
	if !ok {
		return peerChange{}, false
	}
	from := v.status.State
	name := sessionState(to)
	if from == name {
		return peerChange{}, false
	}
	v.setState(name, at)
	v.negotiated = nil
	if to == bgp.BGP_FSM_ESTABLISHED {
		v.status.LastError = ""
		v.negotiated = negotiated
	} else if why != "" {
		v.status.LastError = why
	}
	return peerChange{addr: v.status.Address, name: v.status.Name, from: from, to: name, lastError: v.status.LastError}, true
}

// connectFailed records a failed TCP connection attempt to addr; ok is true
// when LastError changed.
func (st *state) connectFailed(addr netip.Addr, dialErr string) (peerChange, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	addr = st.peerAddr(addr)
	v, ok := st.peers[addr]
	if !ok || v.status.State == StateEstablished {
		return peerChange{}, false
	}
	msg := describeConnectError(netip.AddrPortFrom(addr, v.port), dialErr, v.hasPassword)
	if msg == v.status.LastError {
		return peerChange{}, false
	}
	v.status.LastError = msg
	return peerChange{addr: addr, name: v.status.Name, from: v.status.State, to: v.status.State, lastError: msg}, true
}

// stopped marks every session down after GoBGP stopped.
func (st *state) stopped(at time.Time) {
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, v := range st.peers {
		v.setState(StateIdle, at)
		v.negotiated = nil
	}
	st.adjOut = make(map[netip.Prefix][]string)
}

// setState moves the session to state name, counting a real change.
func (v *peerView) setState(name SessionState, at time.Time) {
	if v.status.State != name {
		v.status.StateChanges++
	}
	v.status.State = name
	v.status.Since = at
}

// updateGenerations returns each peer's update-counter generation, to hand
// back to setUpdatesSent with counters read from GoBGP meanwhile.
func (st *state) updateGenerations() map[netip.Addr]uint64 {
	st.mu.Lock()
	defer st.mu.Unlock()
	out := make(map[netip.Addr]uint64, len(st.peers))
	for addr, v := range st.peers {
		out[addr] = v.updates.generation
	}
	return out
}

// setUpdatesSent records GoBGP's UPDATE-sent counters. A peer re-created
// since generations were taken is skipped: its counter may be the old
// incarnation's.
func (st *state) setUpdatesSent(generations, sent, received map[netip.Addr]uint64) {
	st.mu.Lock()
	defer st.mu.Unlock()
	for neighbor, n := range sent {
		addr := st.peerAddr(neighbor)
		gen, asked := generations[addr]
		if v, ok := st.peers[addr]; ok && asked && v.updates.generation == gen {
			v.updates.set(n)
			v.received = received[neighbor]
		}
	}
}

// peerTarget is an established peer whose Adj-RIB-Out can be read.
type peerTarget struct {
	addr     netip.Addr
	neighbor netip.Addr // GoBGP's name for it
	name     string
	families []bgp.Family
}

// established lists the established peers.
func (st *state) established() []peerTarget {
	st.mu.Lock()
	defer st.mu.Unlock()
	var out []peerTarget
	for addr, v := range st.peers {
		if v.status.State == StateEstablished {
			out = append(out, peerTarget{addr: addr, neighbor: st.neighbor(addr), name: v.status.Name, families: slices.Clone(v.negotiated)})
		}
	}
	return out
}

// receivers lists the established peers that are sent routes of family f.
func (st *state) receivers(f bgp.Family) []netip.Addr {
	st.mu.Lock()
	defer st.mu.Unlock()
	var out []netip.Addr
	for addr, v := range st.peers {
		if v.status.State != StateEstablished || !slices.Contains(v.negotiated, f) {
			continue
		}
		if f == bgp.RF_IPv6_UC && v.status.IPv6Reason != "" {
			continue // no IPv6 next hop: GoBGP's export policy sends it no IPv6 route
		}
		out = append(out, addr)
	}
	return out
}

// setRoutes records the desired routes (refused ones included).
func (st *state) setRoutes(routes []RouteStatus) {
	slices.SortFunc(routes, func(a, b RouteStatus) int { return comparePrefix(a.Prefix, b.Prefix) })
	st.mu.Lock()
	defer st.mu.Unlock()
	st.routes = routes
}

func (st *state) setAdjOut(adjOut map[netip.Prefix][]string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.adjOut = adjOut
}

// snapshot returns a deep copy of the view.
func (st *state) snapshot() Status {
	st.mu.Lock()
	defer st.mu.Unlock()
	out := Status{Peers: make([]PeerStatus, 0, len(st.peers)), Routes: make([]RouteStatus, 0, len(st.routes))}
	for _, v := range st.peers {
		p := v.status
		p.Families = slices.Clone(p.Families)
		p.UpdatesSent = v.updates.total()
		p.ReceivedPrefixes = v.received
		if r, ok := st.relayed[p.Address]; ok {
			p.ReceivedPrefixes += uint64(max(0, r.counters.prefixes.Load()))
			p.DiscardedUpdates = r.counters.updates.Load()
			if c := r.counters.conn.Load(); c != nil {
				conn := *c
				p.Connection = &conn
			}
		}
		if p.IPv6Reason == "" && p.IPv6NextHop.IsValid() && v.negotiated != nil && !slices.Contains(v.negotiated, bgp.RF_IPv6_UC) {
			p.IPv6Reason = "the peer did not negotiate ipv6 unicast (enable it on the router)"
		}
		out.Peers = append(out.Peers, p)
	}
	slices.SortFunc(out.Peers, func(a, b PeerStatus) int { return a.Address.Compare(b.Address) })
	for _, r := range st.routes {
		r.Communities = slices.Clone(r.Communities)
		r.LargeCommunities = slices.Clone(r.LargeCommunities)
		r.Peers = slices.Clone(st.adjOut[r.Prefix])
		if r.Peers == nil {
			r.Peers = []string{}
		}
		out.Routes = append(out.Routes, r)
	}
	return out
}

// SessionState is a BGP session's state (RFC 4271 §8.2.2), named as BIRD
// and FRR print it. Its values are stable: status and metrics use them.
type SessionState string

const (
	StateIdle        SessionState = "Idle"
	StateConnect     SessionState = "Connect"
	StateActive      SessionState = "Active"
	StateOpenSent    SessionState = "OpenSent"
	StateOpenConfirm SessionState = "OpenConfirm"
	StateEstablished SessionState = "Established"
	StateUnknown     SessionState = "Unknown"
)

func sessionState(s bgp.FSMState) SessionState {
	switch s {
	case bgp.BGP_FSM_IDLE:
		return StateIdle
	case bgp.BGP_FSM_CONNECT:
		return StateConnect
	case bgp.BGP_FSM_ACTIVE:
		return StateActive
	case bgp.BGP_FSM_OPENSENT:
		return StateOpenSent
	case bgp.BGP_FSM_OPENCONFIRM:
		return StateOpenConfirm
	case bgp.BGP_FSM_ESTABLISHED:
		return StateEstablished
	}
	return StateUnknown
}

func peerName(p config.Peer) string {
	if p.Name != "" {
		return p.Name
	}
	return p.Address.String()
}

func peerPort(p config.Peer) uint16 {
	if p.Port == 0 {
		return 179
	}
	return p.Port
}

func peerFamilies(p config.Peer) []config.Family {
	if len(p.Families) == 0 {
		return []config.Family{config.IPv4, config.IPv6}
	}
	return slices.Clone(p.Families)
}

// comparePrefix orders IPv4 before IPv6, then by address and length.
func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

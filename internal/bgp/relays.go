package bgp

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"

	"github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/server"

	"github.com/vipd/vipd/internal/config"
)

// relayNet holds GoBGP's internal listener (its first address) and the
// aliases GoBGP knows relayed peers by. Every 127/8 address is local on
// Linux once lo is up; this block keeps clear of the commonly used
// 127.0.0.x.
var relayNet = netip.MustParsePrefix("127.86.0.0/16")

// relaySet is the speaker's relays (relay.go), one per peer, and, when
// routers may connect to vipd, the listeners on listen_port
// (relaylisten.go).
type relaySet struct {
	listener netip.AddrPort // GoBGP's internal listener
	// key signs the loopback hop with TCP-MD5: any local process can
	// bind a 127/8 address, and one that reached GoBGP from an alias
	// first would hold the peer's session.
	key       string
	log       *slog.Logger
	bs        *server.BgpServer         // set by Run before any peer is added
	aliases   map[netip.Addr]netip.Addr // peer address -> alias
	next      netip.Addr                // the next alias to try
	counters  map[netip.Addr]*relayCounters
	running   map[netip.Addr]context.CancelFunc
	listeners []*net.TCPListener // on listen_port; none when vipd only dials out

	mu sync.Mutex // guards inbound, which the listeners read
	// inbound carries the routers' connections to their relays, per peer
	// address, while vipd listens.
	inbound map[netip.Addr]chan *net.TCPConn

	ctx  context.Context // relays end with it
	stop context.CancelFunc
	wg   sync.WaitGroup
}

func newRelaySet(log *slog.Logger) *relaySet {
	ctx, stop := context.WithCancel(context.Background())
	return &relaySet{
		key:      rand.Text(),
		log:      log,
		aliases:  make(map[netip.Addr]netip.Addr),
		next:     relayNet.Addr().Next().Next(),
		counters: make(map[netip.Addr]*relayCounters),
		running:  make(map[netip.Addr]context.CancelFunc),
		inbound:  make(map[netip.Addr]chan *net.TCPConn),
		ctx:      ctx,
		stop:     stop,
	}
}

// pickListener chooses GoBGP's internal listener: a free port on the
// block's first address. GoBGP cannot listen on port 0 and say which port
// it got, so the port is taken and released here first.
func (rs *relaySet) pickListener() error {
	addr := relayNet.Addr().Next()
	l, err := net.Listen("tcp", netip.AddrPortFrom(addr, 0).String())
	if err != nil {
		return fmt.Errorf("bgp relay: internal listener on %s: %w", addr, err)
	}
	rs.listener = netip.AddrPortFrom(addr, uint16(l.Addr().(*net.TCPAddr).Port))
	return l.Close()
}

// alias returns peer's alias, allocating one for a new peer. Aliases are
// not reused within a run, so that a stopping relay can never reach the
// GoBGP neighbor of another peer.
func (rs *relaySet) alias(peer netip.Addr) (netip.Addr, error) {
	if a, ok := rs.aliases[peer]; ok {
		return a, nil
	}
	if !relayNet.Contains(rs.next) {
		return netip.Addr{}, fmt.Errorf("peer %s: no relay address left in %s", peer, relayNet)
	}
	a := rs.next
	rs.next = a.Next()
	rs.aliases[peer] = a
	return a, nil
}

// start runs a relay for p, replacing a running one. While vipd listens,
// the relay gets p's connections (the listeners need p's key first:
// setListenerKey).
func (rs *relaySet) start(s *Speaker, p config.Peer) {
	var inbound chan *net.TCPConn
	if len(rs.listeners) > 0 {
		rs.mu.Lock()
		inbound = rs.inbound[p.Address]
		if inbound == nil {
			inbound = make(chan *net.TCPConn, 1)
			rs.inbound[p.Address] = inbound
		}
		rs.mu.Unlock()
	}
	if stop, ok := rs.running[p.Address]; ok {
		stop()
	}
	ctx, stop := context.WithCancel(rs.ctx)
	rs.running[p.Address] = stop
	id := s.global.RouterID.As4()
	r := &relay{peer: p, localASN: s.global.ASN, localID: binary.BigEndian.Uint32(id[:]), alias: rs.aliases[p.Address],
		listener: rs.listener, key: rs.key, inbound: inbound, counters: rs.counter(p.Address), hooks: s, log: rs.log}
	rs.wg.Go(func() { r.run(ctx) })
}

// counter returns peer's counters, kept while the peer is configured.
func (rs *relaySet) counter(peer netip.Addr) *relayCounters {
	c, ok := rs.counters[peer]
	if !ok {
		c = &relayCounters{}
		rs.counters[peer] = c
	}
	return c
}

// remove stops peer's relay and forgets it. It does not wait: the relay
// may be waiting for applyMu, which the caller holds.
func (rs *relaySet) remove(peer netip.Addr) {
	if stop, ok := rs.running[peer]; ok {
		stop()
	}
	delete(rs.running, peer)
	delete(rs.aliases, peer)
	delete(rs.counters, peer)
	rs.mu.Lock()
	if ch, ok := rs.inbound[peer]; ok {
		delete(rs.inbound, peer)
		closeWaiting(ch)
	}
	rs.mu.Unlock()
	if len(rs.listeners) > 0 {
		if err := rs.setListenerKey(peer, ""); err != nil {
			rs.log.Warn("bgp listener keeps a removed peer's TCP-MD5 key", "event", "listen_error", "address", peer, "err", err)
		}
	}
}

// close stops the listeners and every relay, and waits for them.
func (rs *relaySet) close() {
	rs.stop()
	rs.closeListeners()
	rs.wg.Wait()
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for _, ch := range rs.inbound {
		closeWaiting(ch)
	}
}

// closeWaiting closes a connection left in ch.
func closeWaiting(ch chan *net.TCPConn) {
	select {
	case c := <-ch:
		c.Close()
	default:
	}
}

// neighbor is the address GoBGP knows the peer at addr by.
func (s *Speaker) neighbor(addr netip.Addr) netip.Addr {
	if s.relays == nil {
		return addr
	}
	if a, ok := s.relays.aliases[addr]; ok {
		return a
	}
	return addr
}

// relayedPeer turns GoBGP's configuration of a peer into that of its
// relayed alias: a passive neighbor on loopback. TCP-MD5, TTL and source
// address belong to the relay's connection to the router; the loopback
// hop has the relays' own key.
func relayedPeer(peer *api.Peer, alias netip.Addr, key string) *api.Peer {
	peer.Conf.NeighborAddress = alias.String()
	peer.Conf.AuthPassword = key
	peer.EbgpMultihop = nil
	peer.Transport = &api.Transport{PassiveMode: true}
	return peer
}

// gobgpState implements relayHooks.
func (s *Speaker) gobgpState(ctx context.Context, alias netip.Addr) api.PeerState_SessionState {
	state := api.PeerState_SESSION_STATE_UNSPECIFIED
	err := s.relays.bs.ListPeer(ctx, &api.ListPeerRequest{Address: alias.String()}, func(p *api.Peer) {
		state = p.GetState().GetSessionState()
	})
	if err != nil {
		return api.PeerState_SESSION_STATE_UNSPECIFIED
	}
	return state
}

// connected implements relayHooks: the session's local address becomes the
// IPv4 next hop of routes sent to the peer, as it was when GoBGP held the
// session itself. The policy changes before GoBGP sees the session.
func (s *Speaker) connected(ctx context.Context, peer, local netip.Addr) error {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	p, ok := s.peers[peer]
	if !ok || s.gobgp == nil {
		return errors.New("peer removed")
	}
	if !local.Is4() {
		local = netip.Addr{} // an IPv6 session: no IPv4 next hop, no IPv4 routes
	}
	if p.nextHop4 == local {
		return nil
	}
	p.nextHop4 = local
	s.peers[peer] = p
	if err := s.installPolicies(ctx, nil, s.external, s.prepends); err != nil {
		p.nextHop4 = netip.Addr{}
		s.peers[peer] = p
		return fmt.Errorf("set IPv4 next hop %s: %w", local, err)
	}
	s.log.Info("bgp peer ipv4 next hop set", "event", "peer_next_hop", "peer", peerName(p.cfg), "address", peer, "next_hop", local)
	return nil
}

// stopRelays ends every relay and listener and waits for them. Call it
// without applyMu.
func (s *Speaker) stopRelays() {
	if s.relays != nil {
		s.relays.close()
	}
}

var _ relayHooks = (*Speaker)(nil)

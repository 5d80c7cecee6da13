package bgp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"golang.org/x/sys/unix"
)

// With listen_port set, routers may also connect to vipd. The relays own
// the listening sockets on that port, so that a router's connection, like
// one vipd opens, reaches GoBGP only through its peer's relay; GoBGP
// itself listens on loopback alone.

// acceptBackoff is the pause after a failed accept (out of descriptors).
const acceptBackoff = 100 * time.Millisecond

// listen opens the listening sockets on port, at addrs (default: every
// IPv4 and every IPv6 address), and starts accepting on them.
func (rs *relaySet) listen(addrs []string, port int32) error {
	if port == 0 {
		port = bgp.BGP_PORT
	}
	everywhere := len(addrs) == 0
	if everywhere {
		addrs = []string{"0.0.0.0", "::"}
	}
	lc := net.ListenConfig{KeepAlive: -1, Control: listenerOptions}
	// TCP-MD5 does not work on MPTCP sockets, which Go's listeners are by
	// default.
	lc.SetMultipathTCP(false)
	for _, a := range addrs {
		addr, err := netip.ParseAddr(a)
		if err != nil {
			return fmt.Errorf("bgp: listen address %q: %w", a, err)
		}
		network := "tcp4"
		if addr.Is6() {
			network = "tcp6" // IPv6 only: IPv4 has its own socket
		}
		l, err := lc.Listen(rs.ctx, network, netip.AddrPortFrom(addr, uint16(port)).String())
		if everywhere && addr.Is6() && errors.Is(err, unix.EAFNOSUPPORT) {
			rs.log.Warn("bgp: IPv6 is off on this host: listening on IPv4 only", "event", "listen_error", "err", err)
			continue
		}
		if err != nil {
			rs.closeListeners()
			return fmt.Errorf("bgp: listen_port %d: %w", port, err)
		}
		rs.listeners = append(rs.listeners, l.(*net.TCPListener))
	}
	for _, l := range rs.listeners {
		rs.wg.Go(func() { rs.accept(l) })
	}
	return nil
}

// listenerOptions sets TTL 255 on a listener, as GoBGP did: its SYN-ACKs
// then pass a router's TTL security check; each session's own TTL is set
// once its peer is known (admit).
func listenerOptions(network, _ string, c syscall.RawConn) error {
	var opErr error
	err := c.Control(func(fd uintptr) { opErr = setTTL(int(fd), network == "tcp4", 255) })
	return errors.Join(err, opErr)
}

// accept hands each connection l accepts to its peer's relay until l is
// closed.
func (rs *relaySet) accept(l *net.TCPListener) {
	for {
		c, err := l.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			rs.log.Warn("bgp listener cannot accept", "event", "listen_error", "listener", l.Addr(), "err", err)
			wait(rs.ctx, acceptBackoff)
			continue
		}
		rs.deliver(c)
	}
}

// deliver passes c to the relay of the peer it comes from. Connections
// from elsewhere are closed, as GoBGP closed them.
func (rs *relaySet) deliver(c *net.TCPConn) {
	from := addrOf(c.RemoteAddr())
	rs.mu.Lock()
	defer rs.mu.Unlock() // remove must not miss c in the channel
	ch, ok := rs.inbound[from]
	if !ok {
		rs.log.Debug("bgp connection from an address that is not a peer closed", "event", "listen_refused", "from", c.RemoteAddr())
		c.Close()
		return
	}
	select {
	case ch <- c:
	default: // the relay has one waiting already
		c.Close()
	}
}

// setListenerKey sets peer's TCP-MD5 key on the listener of its family,
// or removes it when password is empty, so that the kernel accepts the
// router's signed SYNs (and refuses unsigned ones).
func (rs *relaySet) setListenerKey(peer netip.Addr, password string) error {
	for _, l := range rs.listeners {
		if addrOf(l.Addr()).Is4() != peer.Is4() {
			continue
		}
		raw, err := l.SyscallConn()
		if err != nil {
			return err
		}
		var opErr error
		err = raw.Control(func(fd uintptr) {
			opErr = setMD5(int(fd), peer, password)
			if password == "" && errors.Is(opErr, unix.ENOENT) {
				opErr = nil // there was no key
			}
		})
		if err := errors.Join(err, opErr); err != nil {
			return fmt.Errorf("peer %s: listener %s: %w", peer, l.Addr(), err)
		}
	}
	return nil
}

// closeListeners stops accepting. Connections not yet taken by a relay
// are closed by the relay set's close.
func (rs *relaySet) closeListeners() {
	for _, l := range rs.listeners {
		l.Close()
	}
}

// admit checks a connection the router made, as GoBGP did: it must reach
// the peer's source_address when one is set. It then sets the session's
// TTL. It returns nil, having closed c, when c is not admitted.
func (r *relay) admit(c *net.TCPConn) *routerConn {
	local := addrOf(c.LocalAddr())
	if src := r.peer.SourceAddress; src.IsValid() && local != src {
		r.log.Info("bgp connection from the router to another address than source_address closed", "event", "relay_inbound_closed",
			"peer", peerName(r.peer), "address", r.peer.Address, "local", local, "source_address", src)
		c.Close()
		return nil
	}
	if ttl := sessionTTL(r.peer, r.localASN); ttl > 0 {
		raw, err := c.SyscallConn()
		if err == nil {
			var opErr error
			err = raw.Control(func(fd uintptr) { opErr = setTTL(int(fd), local.Is4(), ttl) })
			err = errors.Join(err, opErr)
		}
		if err != nil {
			r.log.Warn("bgp connection from the router closed", "event", "relay_inbound_closed",
				"peer", peerName(r.peer), "address", r.peer.Address, "err", err)
			c.Close()
			return nil
		}
	}
	return &routerConn{TCPConn: c, inbound: true}
}

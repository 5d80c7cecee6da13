package bgp

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/osrg/gobgp/v4/api"
	"github.com/vipd/vipd/internal/config"
)

// GoBGP stores every path a peer sends in its Adj-RIB-In before the import
// policy runs, and has no option to skip it: a router that leaks a full
// table would grow vipd's memory by about 0.6 KB a route, although vipd
// rejects them all. So vipd does not let GoBGP talk to the router: a relay
// per peer owns the TCP session to the router (MD5, TTL and source address
// as GoBGP would have set them) and joins it to GoBGP over loopback, where
// GoBGP knows the peer by an alias address. It forwards every message but
// the router's UPDATEs, which it counts and discards (End-of-RIB markers
// pass: graceful restart needs them), so vipd's memory no longer depends
// on what the router sends.

const (
	// keepaliveGap is the least time between two KEEPALIVEs the relay sends
	// GoBGP in place of discarded UPDATEs: a router busy sending UPDATEs
	// sends no KEEPALIVE, and GoBGP's hold timer must not expire.
	keepaliveGap = time.Second
	// drainTimeout bounds reading from the router after GoBGP closed its
	// side, so that GoBGP's last NOTIFICATION reaches it before the close.
	drainTimeout = 2 * time.Second
	// gobgpPoll is how often a relay asks GoBGP whether the peer waits for
	// a connection.
	gobgpPoll = 250 * time.Millisecond
	// sessionGap is the least time between the end of a session and the
	// next connection to the router; GoBGP's own hold-down (5 s) is longer.
	sessionGap = time.Second
	// inboundWait bounds how long a router's connection waits for GoBGP
	// to get ready for it (its hold-down after a session is 5 s).
	inboundWait = 15 * time.Second
	// openTimeout bounds waiting for the OPEN on a router's connection that
	// collides with vipd's.
	openTimeout = 5 * time.Second
	// maxColliding bounds the router's connections a session examines at
	// once; more are closed unread, so a flood of them costs little.
	maxColliding = 4
)

// relayCounters is what a relay counts for status and metrics. It is read
// from any goroutine.
type relayCounters struct {
	// prefixes is the prefixes the router's discarded UPDATEs announced
	// minus those they withdrew, never below 0, in the current session.
	prefixes atomic.Int64
	// updates counts the UPDATEs discarded since the peer was configured.
	updates atomic.Uint64
	// conn is the connection to the router while the relay holds one.
	conn atomic.Pointer[Connection]
}

// add records one discarded UPDATE; only the relay's session goroutine
// calls it. Withdrawals come first, as in the message.
func (c *relayCounters) add(n prefixCounts) {
	c.updates.Add(1)
	c.prefixes.Store(max(0, c.prefixes.Load()-int64(n.withdrawn)) + int64(n.announced))
}

// relayHooks is what a relay needs from the speaker.
type relayHooks interface {
	// gobgpState reports the session state of GoBGP's neighbor alias.
	gobgpState(ctx context.Context, alias netip.Addr) api.PeerState_SessionState
	// connected is called with the local address of a new connection to
	// the router, before GoBGP sees the session (it sets the IPv4 next hop).
	connected(ctx context.Context, peer, local netip.Addr) error
	// connectFailed reports a failed connection attempt to the router.
	connectFailed(peer netip.Addr, dialErr string)
}

// relay joins one peer's router to GoBGP.
type relay struct {
	peer     config.Peer
	localASN uint32
	localID  uint32         // vipd's BGP Identifier, for collisions
	alias    netip.Addr     // the address GoBGP knows the peer by
	listener netip.AddrPort // GoBGP's internal listener
	key      string         // TCP-MD5 of the hop to it
	// inbound delivers the router's connections to vipd's listener; nil
	// when vipd only dials out.
	inbound  <-chan *net.TCPConn
	counters *relayCounters
	hooks    relayHooks
	log      *slog.Logger
}

// routerConn is one TCP connection to the router.
type routerConn struct {
	*net.TCPConn
	inbound bool   // the router opened it
	opened  []byte // the router's OPEN, already read off the connection
}

// run connects the router and GoBGP whenever GoBGP waits for the peer,
// one session at a time, until ctx ends. It paces its attempts as GoBGP's
// own connect loop did: the first 1.5-2 s after the peer became ready (so
// that, as before, the agent's first routes are in GoBGP before a session
// comes up: a restarting vipd's End-of-RIB must not precede them), later
// ones connectRetry apart. A connection the router makes meanwhile is
// taken at once.
func (r *relay) run(ctx context.Context) {
	delay := firstDialGap()
	var next *routerConn // the router's connection that won a collision
	for {
		router, dialed := r.connect(ctx, delay, next)
		if ctx.Err() != nil {
			return
		}
		if router == nil {
			if dialed {
				delay = retryGap()
			}
			continue
		}
		delay = firstDialGap()
		var err error
		next, err = r.session(ctx, router)
		if err != nil && ctx.Err() == nil {
			r.log.Warn("bgp relay session failed", "event", "relay_error", "peer", peerName(r.peer), "address", r.peer.Address, "err", err)
			delay = retryGap()
		}
		r.counters.prefixes.Store(0) // the router's routes went with the session
		if next == nil {
			// GoBGP may not have noticed the end yet and still look ready.
			wait(ctx, sessionGap)
		}
	}
}

// connect returns the next connection to the router once GoBGP waits for
// one: held, or one the router made meanwhile, or else one dialled after
// delay. It returns nil when ctx ends or the attempt failed; dialed says
// an attempt was made (and reported).
func (r *relay) connect(ctx context.Context, delay time.Duration, held *routerConn) (conn *routerConn, dialed bool) {
	if held = r.waitForGoBGP(ctx, held); held != nil || ctx.Err() != nil {
		return held, false
	}
	return r.dial(ctx, delay)
}

// dial opens a connection to the router after delay. A connection the
// router makes before or while the attempt is under way is taken instead:
// it is as good, and further along.
func (r *relay) dial(ctx context.Context, delay time.Duration) (conn *routerConn, dialed bool) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		conn *net.TCPConn
		err  error
	}
	done := make(chan result, 1)
	go func() {
		wait(ctx, delay)
		if err := ctx.Err(); err != nil {
			done <- result{err: err}
			return
		}
		c, err := dialRouter(ctx, r.peer, r.localASN)
		done <- result{c, err}
	}()
	for {
		select {
		case res := <-done:
			if res.err != nil {
				if ctx.Err() != nil {
					return nil, false
				}
				r.hooks.connectFailed(r.peer.Address, res.err.Error())
				return nil, true
			}
			return &routerConn{TCPConn: res.conn}, true
		case c := <-r.inbound:
			rc := r.admit(c)
			if rc == nil {
				continue
			}
			cancel()
			if res := <-done; res.conn != nil {
				res.conn.Close()
			}
			return rc, false
		}
	}
}

// waitForGoBGP returns once GoBGP's neighbor waits for a connection, or
// ctx ends: after a reset or a session's end GoBGP holds the peer down a
// few seconds, and a connection made then would only reach the router to
// be closed. It returns held, or the newest connection the router made
// meanwhile; one that waited inboundWait is closed.
func (r *relay) waitForGoBGP(ctx context.Context, held *routerConn) *routerConn {
	t := time.NewTicker(gobgpPoll)
	defer t.Stop()
	since := time.Now()
	for r.hooks.gobgpState(ctx, r.alias) != api.PeerState_SESSION_STATE_ACTIVE {
		if held != nil && time.Since(since) > inboundWait {
			r.log.Info("bgp relay closed the router's connection: GoBGP did not get ready for it", "event", "relay_inbound_closed",
				"peer", peerName(r.peer), "address", r.peer.Address, "waited", inboundWait)
			held.Close()
			held = nil
		}
		select {
		case <-ctx.Done():
		case c := <-r.inbound:
			if rc := r.admit(c); rc != nil {
				if held != nil {
					held.Close()
				}
				held, since = rc, time.Now()
			}
			continue
		case <-t.C:
			continue
		}
		break
	}
	if ctx.Err() != nil && held != nil {
		held.Close()
		return nil
	}
	return held
}

// session carries one session between router and GoBGP until either side
// closes it or ctx ends; it closes router. When a connection the router
// made meanwhile wins a collision (collide), session ends and returns it.
func (r *relay) session(ctx context.Context, router *routerConn) (next *routerConn, err error) {
	defer router.Close()
	if err := r.hooks.connected(ctx, r.peer.Address, addrOf(router.LocalAddr())); err != nil {
		return nil, fmt.Errorf("peer %s: %w", peerName(r.peer), err)
	}
	internal, err := dialGoBGP(ctx, r.alias, r.listener, r.key)
	if err != nil {
		return nil, fmt.Errorf("peer %s: connect to GoBGP at %s from %s: %w", peerName(r.peer), r.listener, r.alias, err)
	}
	defer internal.Close()
	r.log.Debug("bgp relay connected", "event", "relay_up", "peer", peerName(r.peer), "address", r.peer.Address,
		"local", router.LocalAddr(), "alias", r.alias, "inbound", router.inbound)
	r.counters.conn.Store(&Connection{Local: addrPortOf(router.LocalAddr()), Remote: addrPortOf(router.RemoteAddr()), Inbound: router.inbound})
	defer r.counters.conn.Store(nil)

	ended, end := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	won := make(chan *routerConn, 1)
	colliding := make(chan struct{}, maxColliding)
	wg.Go(func() {
		for {
			select {
			case <-ended.Done():
			case <-ctx.Done():
				// Ending ctx (vipd stops, the peer is removed) closes both
				// sides, after GoBGP's Cease, sent meanwhile, had time to pass.
				wait(ended, drainTimeout)
			case c := <-r.inbound:
				select {
				case colliding <- struct{}{}:
					wg.Go(func() {
						defer func() { <-colliding }()
						r.collide(ctx, router, c, won)
					})
				default:
					c.Close()
				}
				continue
			case c := <-won:
				next = c
				r.log.Info("bgp connection collision: the router's connection replaces vipd's", "event", "relay_collision",
					"peer", peerName(r.peer), "address", r.peer.Address)
				// GoBGP has sent at most its OPEN and a KEEPALIVE, whole.
				_, _ = router.Write(ceaseCollision)
				internal.Close()
				_ = halfClose(router.TCPConn) // fromRouter reads until the router closes
				<-ended.Done()
			}
			break
		}
		router.Close()
		internal.Close()
	})
	gobgpDone := make(chan struct{})
	wg.Go(func() {
		defer close(gobgpDone)
		toRouter(internal, router.TCPConn)
	})
	in := io.MultiReader(bytes.NewReader(router.opened), router)
	err = r.fromRouter(in, internal)
	if errors.Is(err, errBadMarker) || errors.Is(err, errBadLength) {
		// GoBGP answers the broken header with a NOTIFICATION and closes:
		// let that reach the router.
		t := time.NewTimer(drainTimeout)
		select {
		case <-gobgpDone:
		case <-t.C:
		}
		t.Stop()
	}
	end()
	internal.Close() // GoBGP sees the router's close as before
	wg.Wait()
	if next == nil {
		select {
		case next = <-won: // won as the session ended anyway
		default:
		}
	}
	if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, errDrained) {
		return next, nil
	}
	return next, err
}

// collide resolves a connection c the router made while session's
// connection is under way, as RFC 4271 §6.8 does: c is closed when the
// session is established, or is itself the router's, or when vipd's BGP
// Identifier (then AS, RFC 6286) is the higher; otherwise c is sent on won
// with its OPEN read, to replace vipd's connection.
func (r *relay) collide(ctx context.Context, session *routerConn, c *net.TCPConn, won chan<- *routerConn) {
	rc := r.admit(c)
	if rc == nil {
		return
	}
	refuse := func(why string) {
		r.log.Info("bgp connection collision: the router's new connection is closed", "event", "relay_collision",
			"peer", peerName(r.peer), "address", r.peer.Address, "reason", why)
		_, _ = rc.Write(ceaseCollision)
		closeAfterDrain(rc.TCPConn)
	}
	if r.hooks.gobgpState(ctx, r.alias) == api.PeerState_SESSION_STATE_ESTABLISHED {
		refuse("the session is established")
		return
	}
	if session.inbound {
		refuse("the router's earlier connection is under way")
		return
	}
	open, err := readOpen(rc.TCPConn)
	if err != nil {
		refuse(err.Error())
		return
	}
	id, asn, _ := openIdentity(open[headerLen:])
	if r.localID > id || r.localID == id && r.localASN > asn {
		refuse("vipd's BGP identifier is the higher")
		return
	}
	rc.opened = open
	select {
	case won <- rc:
	default:
		rc.Close() // another connection won first
	}
}

// halfClose ends vipd's side of c and gives the router drainTimeout to end
// its own: closing with unread data would reset the connection, and the
// router could lose the NOTIFICATION sent before.
func halfClose(c *net.TCPConn) error {
	if err := c.CloseWrite(); err != nil {
		return err
	}
	return c.SetReadDeadline(time.Now().Add(drainTimeout))
}

// closeAfterDrain half-closes c and reads what the router still sends
// before closing it.
func closeAfterDrain(c *net.TCPConn) {
	defer c.Close()
	if halfClose(c) == nil {
		_, _ = io.Copy(io.Discard, c)
	}
}

// readOpen reads the first message of a router's connection, which must be
// an OPEN, within openTimeout.
func readOpen(c *net.TCPConn) ([]byte, error) {
	if err := c.SetReadDeadline(time.Now().Add(openTimeout)); err != nil {
		return nil, err
	}
	msg, err := readMessage(c, make([]byte, maxExtendedLen))
	if err != nil {
		return nil, fmt.Errorf("reading its OPEN: %w", err)
	}
	if msg[18] != msgOpen || len(msg) < headerLen+openFixedLen {
		return nil, errors.New("its first message is not an OPEN")
	}
	return bytes.Clone(msg), c.SetReadDeadline(time.Time{})
}

// errDrained means the router had drainTimeout to close after GoBGP did.
var errDrained = errors.New("router did not close in time")

// toRouter copies GoBGP's messages to the router. When GoBGP closes (after
// a NOTIFICATION), it half-closes the router's side (halfClose).
func toRouter(internal, router *net.TCPConn) {
	_, err := io.Copy(router, internal)
	switch {
	case err == nil:
		_ = halfClose(router)
	case errors.Is(err, net.ErrClosed):
		// The relay closed a side itself, and closes the rest.
	default:
		router.Close()
	}
}

// fromRouter forwards the router's messages to GoBGP, discarding UPDATEs
// (see verdict) and sending a KEEPALIVE in their place at most once per
// keepaliveGap. It returns when either side fails.
func (r *relay) fromRouter(router io.Reader, internal *net.TCPConn) error {
	in := bufio.NewReaderSize(router, 64<<10)
	buf := make([]byte, maxExtendedLen)
	extended := false
	lastWrite := time.Now()
	for {
		msg, err := readMessage(in, buf)
		if err != nil {
			if errors.Is(err, errBadMarker) || errors.Is(err, errBadLength) {
				// Not BGP framing: GoBGP gets the header and answers with its
				// NOTIFICATION; nothing after it can be framed.
				_, _ = internal.Write(msg)
				return fmt.Errorf("peer %s: %w", peerName(r.peer), err)
			}
			if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
				return errDrained
			}
			return err
		}
		if msg[18] == msgOpen {
			// GoBGP v4.8.0 always advertises Extended Messages: the
			// router's OPEN decides.
			extended = advertisesExtendedMessage(msg[headerLen:])
		}
		out := msg
		if verdict(msg, extended) == discard {
			r.counters.add(countPrefixes(msg[headerLen:]))
			if time.Since(lastWrite) < keepaliveGap {
				continue
			}
			out = keepaliveMessage
		}
		if _, err := internal.Write(out); err != nil {
			return err
		}
		lastWrite = time.Now()
	}
}

// readMessage reads one whole message into buf (maxExtendedLen long) and
// returns it. On a framing error it returns the header it read.
func readMessage(in io.Reader, buf []byte) ([]byte, error) {
	if _, err := io.ReadFull(in, buf[:headerLen]); err != nil {
		return nil, err
	}
	n, err := frameLength(buf[:headerLen])
	if err != nil {
		return buf[:headerLen], err
	}
	if _, err := io.ReadFull(in, buf[headerLen:n]); err != nil {
		return nil, err
	}
	return buf[:n], nil
}

package bgp

import (
	"bufio"
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
)

// relayCounters is what a relay counts for status and metrics. It is read
// from any goroutine.
type relayCounters struct {
	// prefixes is the prefixes the router's discarded UPDATEs announced
	// minus those they withdrew, never below 0, in the current session.
	prefixes atomic.Int64
	// updates counts the UPDATEs discarded since the peer was configured.
	updates atomic.Uint64
}

// add records one discarded UPDATE; only the relay's session goroutine
// calls it. Withdrawals come first, as in the message.
func (c *relayCounters) add(n prefixCounts) {
	c.updates.Add(1)
	c.prefixes.Store(max(0, c.prefixes.Load()-int64(n.withdrawn)) + int64(n.announced))
}

// relayHooks is what a relay needs from the speaker.
type relayHooks interface {
	// gobgpWaiting reports whether GoBGP's neighbor alias waits for a
	// connection (state Active).
	gobgpWaiting(ctx context.Context, alias netip.Addr) bool
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
	alias    netip.Addr     // the address GoBGP knows the peer by
	listener netip.AddrPort // GoBGP's internal listener
	key      string         // TCP-MD5 of the hop to it
	counters *relayCounters
	hooks    relayHooks
	log      *slog.Logger
}

// run connects the router and GoBGP whenever GoBGP waits for the peer,
// one session at a time, until ctx ends. It paces its attempts as GoBGP's
// own connect loop did: the first 1.5-2 s after the peer became ready (so
// that, as before, the agent's first routes are in GoBGP before a session
// comes up: a restarting vipd's End-of-RIB must not precede them), later
// ones connectRetry apart.
func (r *relay) run(ctx context.Context) {
	delay := firstDialGap()
	for {
		if !r.waitForGoBGP(ctx) {
			return
		}
		wait(ctx, delay)
		if ctx.Err() != nil {
			return
		}
		router, err := dialRouter(ctx, r.peer, r.localASN)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			r.hooks.connectFailed(r.peer.Address, err.Error())
			delay = retryGap()
			continue
		}
		delay = firstDialGap()
		if err := r.session(ctx, router); err != nil && ctx.Err() == nil {
			r.log.Warn("bgp relay session failed", "event", "relay_error", "peer", peerName(r.peer), "address", r.peer.Address, "err", err)
			delay = retryGap()
		}
		r.counters.prefixes.Store(0) // the router's routes went with the session
		// GoBGP may not have noticed the end yet and still look ready.
		wait(ctx, sessionGap)
	}
}

// waitForGoBGP returns true once GoBGP's neighbor waits for a connection:
// after a reset or a session's end GoBGP holds the peer down a few
// seconds, and a connection made then would only reach the router to be
// closed. It returns false when ctx ends.
func (r *relay) waitForGoBGP(ctx context.Context) bool {
	t := time.NewTicker(gobgpPoll)
	defer t.Stop()
	for !r.hooks.gobgpWaiting(ctx, r.alias) {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
	return ctx.Err() == nil
}

// session carries one session between router and GoBGP until either side
// closes it or ctx ends; it closes router.
func (r *relay) session(ctx context.Context, router *net.TCPConn) error {
	defer router.Close()
	if err := r.hooks.connected(ctx, r.peer.Address, addrOf(router.LocalAddr())); err != nil {
		return fmt.Errorf("peer %s: %w", peerName(r.peer), err)
	}
	internal, err := dialGoBGP(ctx, r.alias, r.listener, r.key)
	if err != nil {
		return fmt.Errorf("peer %s: connect to GoBGP at %s from %s: %w", peerName(r.peer), r.listener, r.alias, err)
	}
	defer internal.Close()
	r.log.Debug("bgp relay connected", "event", "relay_up", "peer", peerName(r.peer), "address", r.peer.Address,
		"local", router.LocalAddr(), "alias", r.alias)

	ended, end := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		// Ending ctx (vipd stops, the peer is removed) closes both sides,
		// after GoBGP's Cease, sent meanwhile, had time to pass.
		select {
		case <-ended.Done():
		case <-ctx.Done():
			wait(ended, drainTimeout)
		}
		router.Close()
		internal.Close()
	})
	gobgpDone := make(chan struct{})
	wg.Go(func() {
		defer close(gobgpDone)
		toRouter(internal, router)
	})
	err = r.fromRouter(router, internal)
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
	if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, errDrained) {
		return nil
	}
	return err
}

// errDrained means the router had drainTimeout to close after GoBGP did.
var errDrained = errors.New("router did not close in time")

// toRouter copies GoBGP's messages to the router. When GoBGP closes (a
// NOTIFICATION, a reset), it half-closes the router's side and gives the
// router drainTimeout to close, so that nothing in flight turns the close
// into a reset that could lose the NOTIFICATION.
func toRouter(internal, router *net.TCPConn) {
	_, err := io.Copy(router, internal)
	if err == nil {
		_ = router.CloseWrite()
		_ = router.SetReadDeadline(time.Now().Add(drainTimeout))
		return
	}
	router.Close()
}

// fromRouter forwards the router's messages to GoBGP, discarding UPDATEs
// (see verdict) and sending a KEEPALIVE in their place at most once per
// keepaliveGap. It returns when either side fails.
func (r *relay) fromRouter(router, internal *net.TCPConn) error {
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

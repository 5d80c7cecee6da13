package bfd

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"time"
)

const (
	// rxQueue is how many received packets may wait for a session.
	rxQueue = 16
	// openRetryMin and openRetryMax bound the backoff between attempts to
	// open a session's sockets.
	openRetryMin = time.Second
	openRetryMax = 30 * time.Second
	// shutdownLimit bounds how long a removed session keeps sending
	// AdminDown packets.
	shutdownLimit = 3 * time.Second
)

// runner is the goroutine that owns one session: its state machine, its
// send socket and its share of a receive socket.
type runner struct {
	m      *Manager
	key    Key
	discr  uint32
	log    *slog.Logger
	rx     chan ControlPacket // from the manager's readers
	update chan Peer          // newest changed peer; one slot
	stop   chan struct{}      // closed when the session is removed

	// Guarded by m.mu: the manager demultiplexes with them.
	peer  Peer
	local netip.Addr // the source address in use, once open

	txSeq uint32 // next Sequence Number sent; only run's goroutine uses it

	mu        sync.Mutex // guards status, ttlWarned and rxSeq
	status    SessionStatus
	ttlWarned bool    // a TTL drop was logged since the session was last Up
	rxSeq     authSeq // of authenticated packets received
}

func newRunner(m *Manager, p Peer, discr uint32) *runner {
	r := &runner{
		m: m, key: p.Key(), discr: discr,
		log:    m.log.With("address", p.Remote, "multihop", p.Multihop),
		rx:     make(chan ControlPacket, rxQueue),
		update: make(chan Peer, 1),
		stop:   make(chan struct{}),
		peer:   p,
		// Random, so a restarted vipd does not reuse numbers the remote
		// saw, which it would take for replays.
		txSeq: rand.Uint32(),
	}
	r.status = SessionStatus{Peer: p, State: Down, RemoteState: Down, LocalDiscriminator: discr}
	return r
}

// setPeer hands a changed peer (same key) to the runner. m.mu is held.
func (r *runner) setPeer(p Peer) {
	if p == r.peer {
		return
	}
	r.peer = p
	select {
	case <-r.update: // replaced by the newer one
	default:
	}
	r.update <- p
}

// run opens the sockets, runs the session until it is removed, then sends
// AdminDown and closes everything.
func (r *runner) run() {
	defer r.m.runners.Done()
	s, ok := r.openWithRetry()
	if !ok {
		return
	}
	defer s.close(r)
	sess := newSession(r.currentPeer().timing(), r.discr, r.m.env.clock, r.m.env.random, r.onEvent)
	r.loop(sess, s.conn)
	r.shutdown(sess, s.conn)
}

// sockets are what a running session holds.
type sockets struct {
	conn     *net.UDPConn
	port     uint16
	listener listenerKey
}

func (s sockets) close(r *runner) {
	s.conn.Close()
	r.m.releasePort(s.port)
	r.m.releaseListener(s.listener)
}

func (r *runner) currentPeer() Peer {
	r.m.mu.Lock()
	defer r.m.mu.Unlock()
	return r.peer
}

// openWithRetry opens the session's sockets, retrying with backoff; ok is
// false if the session was removed first.
func (r *runner) openWithRetry() (sockets, bool) {
	backoff := openRetryMin
	var lastErr string
	for {
		s, err := r.open()
		if err == nil {
			r.setError("")
			return s, true
		}
		if err.Error() != lastErr {
			lastErr = err.Error()
			r.log.Warn("bfd session cannot open its sockets; retrying", "event", "bfd_open_failed", "err", err)
		}
		r.setError(err.Error())
		select {
		case <-r.stop:
			return sockets{}, false
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, openRetryMax)
	}
}

// open resolves the source address, joins the receive socket and binds
// the send socket.
func (r *runner) open() (sockets, error) {
	m, peer := r.m, r.currentPeer()
	local := peer.Local
	if !local.IsValid() {
		var err error
		if local, err = sourceAddress(m.env.inNS, peer.Remote, r.remotePort()); err != nil {
			return sockets{}, err
		}
	}
	s := sockets{listener: keyFor(peer.Remote, peer.Multihop)}
	if err := m.acquireListener(s.listener); err != nil {
		return sockets{}, err
	}
	var err error
	s.conn, s.port, err = openSender(m.env.inNS, local, m.reservePort, m.releasePort)
	if err != nil {
		m.releaseListener(s.listener)
		return sockets{}, err
	}
	m.mu.Lock()
	r.local = local
	m.mu.Unlock()
	r.mu.Lock()
	r.status.Local, r.status.LocalPort = local, s.port
	r.mu.Unlock()
	r.log.Info("bfd session started", "event", "bfd_session_start", "local", local, "port", s.port,
		"discriminator", r.discr)
	return s, nil
}

func (r *runner) remotePort() uint16 {
	return r.m.env.ports.peer[hopIndex(r.key.Multihop)]
}

// loop drives the session until the runner is stopped.
func (r *runner) loop(s *session, conn *net.UDPConn) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		r.send(conn, s.Advance())
		r.publish(s)
		timer.Reset(r.untilDeadline(s))
		select {
		case <-r.stop:
			return
		case p := <-r.rx:
			if !r.currentPeer().Auth.Enabled() && s.spoofedDown(p) {
				r.ignoreDown(p, s.remote.discr)
				continue
			}
			s.Receive(p)
		case p := <-r.update:
			s.SetTiming(p.timing())
		case <-timer.C:
		}
	}
}

// shutdown sends the session's AdminDown packets, for at most
// shutdownLimit.
func (r *runner) shutdown(s *session, conn *net.UDPConn) {
	s.Shutdown()
	limit := time.NewTimer(shutdownLimit)
	defer limit.Stop()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		r.send(conn, s.Advance())
		r.publish(s)
		if s.Done() {
			return
		}
		timer.Reset(r.untilDeadline(s))
		select {
		case <-limit.C:
			return
		case <-timer.C:
		}
	}
}

// untilDeadline is how long to sleep before the session's next deadline.
func (r *runner) untilDeadline(s *session) time.Duration {
	deadline, ok := s.Deadline()
	if !ok {
		return time.Hour // woken by a packet, an update or stop
	}
	return max(deadline.Sub(r.m.env.clock.Now()), 0)
}

// send writes packets to the remote's BFD port.
func (r *runner) send(conn *net.UDPConn, packets []ControlPacket) {
	if len(packets) == 0 {
		return
	}
	dst := netip.AddrPortFrom(r.key.Remote, r.remotePort())
	auth := r.currentPeer().Auth
	var sent uint64
	var lastErr error
	for i := range packets {
		var err error
		if auth.Enabled() {
			// Every packet gets a new number: meticulous auth requires it,
			// keyed auth allows it, and it keeps replays out either way.
			err = sign(&packets[i], auth, r.txSeq)
			r.txSeq++
		}
		if err != nil {
			lastErr = err
			continue
		}
		b, err := packets[i].MarshalBinary()
		if err == nil {
			_, err = conn.WriteToUDPAddrPort(b, dst)
		}
		if err != nil {
			lastErr = err
			continue
		}
		sent++
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status.Counters.PacketsOut += sent
	switch {
	case lastErr != nil:
		r.status.LastError = "send: " + lastErr.Error()
	case sent > 0:
		r.status.LastError = ""
	}
}

// offer queues a packet that passed every check for the session.
func (r *runner) offer(p ControlPacket) {
	select {
	case r.rx <- p:
		r.mu.Lock()
		r.status.Counters.PacketsIn++
		r.mu.Unlock()
	default:
		r.drop("receive queue full", false)
	}
}

// ttlHint helps the operator of a multihop session that never comes up.
const ttlHint = "single-hop peers must send TTL 255; for multihop, lower min_ttl to the TTL the peer's packets arrive with, or remove it to accept any (BIRD 2 sends multihop BFD with TTL 64)"

// drop counts a packet meant for this session that was discarded. The
// first TTL drop since the session was last Up is logged as a warning: a
// multihop session whose packets arrive with too low a TTL never comes up,
// and the operator must learn why.
func (r *runner) drop(reason string, ttl bool) {
	r.mu.Lock()
	c := &r.status.Counters
	c.Dropped++
	c.LastDrop, c.LastDropAt = reason, time.Now()
	warn := ttl && !r.ttlWarned
	if warn {
		r.ttlWarned = true
	}
	r.mu.Unlock()
	if warn {
		r.log.Warn("bfd packets dropped by the TTL check; the session cannot come up while they are",
			"event", "bfd_ttl_drop", "reason", reason, "hint", ttlHint)
		return
	}
	r.log.Debug("bfd packet dropped", "event", "bfd_drop", "reason", reason)
}

// authenticate checks p's Authentication Section and its sequence number.
func (r *runner) authenticate(p ControlPacket, a Auth) error {
	seq, err := verify(p, a)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	detect := r.status.DetectionTime
	if detect == 0 { // not up yet: the remote sends at most once a second
		detect = time.Duration(p.DetectMult) * slowTxInterval
	}
	return r.rxSeq.accept(seq, a.Type, p.DetectMult, r.m.env.clock.Now(), 2*detect)
}

// authFailed counts and drops a packet that failed authentication. The
// first failure of the session is logged as a warning: a
// key or type that does not match the router's keeps the session down.
func (r *runner) authFailed(reason string) {
	r.mu.Lock()
	r.status.Counters.AuthFailures++
	first := r.status.Counters.AuthFailures == 1
	r.mu.Unlock()
	if first {
		r.log.Warn("bfd packet failed authentication; check the type, key ID and key against the router's",
			"event", "bfd_auth_drop", "reason", reason)
	}
	r.drop(reason, false)
}

// ignoreDown counts and drops a Down that spoofedDown judged suspect.
func (r *runner) ignoreDown(p ControlPacket, learned uint32) {
	r.mu.Lock()
	r.status.Counters.IgnoredDown++
	r.mu.Unlock()
	r.log.Warn("bfd: ignored a Down with Your Discriminator 0 from another discriminator while Up (spoofed?)",
		"event", "bfd_ignored_down", "my_discriminator", p.MyDiscriminator, "learned", learned)
	r.drop(fmt.Sprintf("Down with Your Discriminator 0 and My Discriminator %d, not the remote's %d", p.MyDiscriminator, learned), false)
}

// publish copies the session's state into the status snapshot.
func (r *runner) publish(s *session) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s.fill(&r.status)
}

// onEvent is the session's state change callback; it must not block.
func (r *runner) onEvent(ev Event) {
	ev.Key = r.key
	if ev.To == Up {
		r.mu.Lock()
		r.ttlWarned = false
		r.mu.Unlock()
	}
	attrs := []any{"event", "bfd_state", "from", ev.From, "to", ev.To, "diag", ev.Diag,
		"remote_state", ev.RemoteState, "remote_diag", ev.RemoteDiag}
	if ev.Failure() {
		r.log.Warn("bfd session failed", attrs...)
	} else {
		r.log.Info("bfd session state changed", attrs...)
	}
	r.m.emit(ev)
}

// setError records why the session cannot run.
func (r *runner) setError(msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status.LastError = msg
}

// snapshot returns the session's status.
func (r *runner) snapshot() SessionStatus {
	peer := r.currentPeer()
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.status
	st.Peer = peer
	return st
}

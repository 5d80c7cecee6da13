package bfd

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// eventBuffer is how many events may wait for the reader of Events before
// new ones are dropped (and counted, and logged).
const eventBuffer = 256

// phase is where a Manager is in its life.
type phase int

const (
	idle    phase = iota // before Run: Set only records the peers
	running              // Run is applying Set
	closed               // Run has returned
)

// env is what a manager takes from its surroundings; tests replace parts.
type env struct {
	clock  clock
	random func() float64
	ports  ports
	inNS   inNamespace
}

// Manager runs a set of BFD sessions: it owns their sockets and
// goroutines, demultiplexes received packets and reports state changes.
// Its methods are safe for concurrent use.
type Manager struct {
	log    *slog.Logger
	env    env
	events chan Event

	mu        sync.Mutex
	phase     phase
	pending   []Peer // Set before Run
	sessions  map[Key]*runner
	byDiscr   map[uint32]*runner
	listeners map[listenerKey]*listener
	usedPorts map[uint16]bool
	runners   sync.WaitGroup
	readers   sync.WaitGroup

	unmatched  atomic.Uint64 // packets no session would take
	lostEvents atomic.Uint64 // events dropped because Events was full
}

// listener is a shared receive socket and the sessions using it.
type listener struct {
	key  listenerKey
	conn *net.UDPConn
	refs int
}

// NewManager returns a manager with no sessions. It opens nothing: Run
// does.
func NewManager(log *slog.Logger) *Manager {
	return &Manager{
		log:       log,
		env:       env{clock: systemClock{}, random: rand.Float64, ports: rfcPorts, inNS: inPlace},
		events:    make(chan Event, eventBuffer),
		sessions:  map[Key]*runner{},
		byDiscr:   map[uint32]*runner{},
		listeners: map[listenerKey]*listener{},
		usedPorts: map[uint16]bool{},
	}
}

// Events delivers every session state change. Read it promptly: when
// eventBuffer changes wait, new ones are dropped and logged. It is closed
// when Run returns.
func (m *Manager) Events() <-chan Event { return m.events }

// Run starts the sessions Set asked for and keeps them running until ctx
// ends. Then every session sends AdminDown (diag AdministrativelyDown) a
// few times, its sockets close, Events is closed, and Run returns nil. Run
// may be called once.
func (m *Manager) Run(ctx context.Context) error {
	m.mu.Lock()
	if m.phase != idle {
		m.mu.Unlock()
		return errors.New("bfd: Run called twice")
	}
	m.phase = running
	m.apply(m.pending)
	m.pending = nil
	m.mu.Unlock()

	<-ctx.Done()

	m.mu.Lock()
	m.phase = closed
	for _, r := range m.sessions {
		m.remove(r)
	}
	m.mu.Unlock()
	m.runners.Wait() // each sends its AdminDown packets, bounded in time
	m.mu.Lock()
	for _, l := range m.listeners { // left only if a release was missed
		l.conn.Close()
	}
	m.mu.Unlock()
	m.readers.Wait()
	close(m.events)
	return nil
}

// Set makes the sessions match peers, the full desired set: new peers get
// a session, missing ones are removed (after telling the remote AdminDown)
// and changed timers apply in place, through a Poll Sequence while Up. A
// session is identified by Peer.Key. Invalid or duplicate peers fail the
// whole call and change nothing. Before Run, Set only records peers.
// Socket problems do not fail Set: the session retries and says why in
// SessionStatus.LastError.
func (m *Manager) Set(ctx context.Context, peers []Peer) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	peers, err := normalize(peers)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	switch m.phase {
	case idle:
		m.pending = peers
	case running:
		m.apply(peers)
	case closed:
		return ErrClosed
	}
	return nil
}

// apply diffs peers against the running sessions. m.mu is held.
func (m *Manager) apply(peers []Peer) {
	want := make(map[Key]Peer, len(peers))
	for _, p := range peers {
		want[p.Key()] = p
	}
	for key, r := range m.sessions {
		if _, ok := want[key]; !ok {
			m.remove(r)
		}
	}
	for _, p := range peers {
		if r, ok := m.sessions[p.Key()]; ok {
			r.setPeer(p)
			continue
		}
		r := newRunner(m, p, m.newDiscriminator())
		m.sessions[p.Key()] = r
		m.byDiscr[r.discr] = r
		m.runners.Add(1)
		go r.run()
	}
}

// remove takes r out of demultiplexing and tells it to shut down. m.mu is
// held.
func (m *Manager) remove(r *runner) {
	delete(m.sessions, r.key)
	delete(m.byDiscr, r.discr)
	close(r.stop)
}

// newDiscriminator picks a random, unused, non-zero local discriminator:
// random so a restarted vipd does not take its old sessions' packets for
// its own. m.mu is held.
func (m *Manager) newDiscriminator() uint32 {
	for {
		d := rand.Uint32()
		if d != 0 && m.byDiscr[d] == nil {
			return d
		}
	}
}

// Status returns a snapshot of every session, sorted by remote, local and
// mode.
func (m *Manager) Status() []SessionStatus {
	m.mu.Lock()
	runners := make([]*runner, 0, len(m.sessions))
	for _, r := range m.sessions {
		runners = append(runners, r)
	}
	m.mu.Unlock()
	out := make([]SessionStatus, 0, len(runners))
	for _, r := range runners {
		out = append(out, r.snapshot())
	}
	slices.SortFunc(out, func(a, b SessionStatus) int {
		return cmp.Or(a.Peer.Remote.Compare(b.Peer.Remote), a.Peer.Local.Compare(b.Peer.Local),
			compareBool(a.Peer.Multihop, b.Peer.Multihop))
	})
	return out
}

func compareBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// emit hands ev to Events without blocking.
func (m *Manager) emit(ev Event) {
	select {
	case m.events <- ev:
	default:
		lost := m.lostEvents.Add(1)
		m.log.Warn("bfd event dropped: nobody reads Events", "event", "bfd_event_lost",
			"address", ev.Key.Remote, "to", ev.To, "lost", lost)
	}
}

// reservePort claims a source port for a session; releasePort returns it.
func (m *Manager) reservePort(port uint16) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.usedPorts[port] {
		return false
	}
	m.usedPorts[port] = true
	return true
}

func (m *Manager) releasePort(port uint16) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.usedPorts, port)
}

// acquireListener opens (or shares) the receive socket for k.
func (m *Manager) acquireListener(k listenerKey) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if l := m.listeners[k]; l != nil {
		l.refs++
		return nil
	}
	if m.phase == closed {
		return ErrClosed
	}
	conn, err := openListener(m.env.inNS, k, m.env.ports.listen[hopIndex(k.multihop)])
	if err != nil {
		return err
	}
	l := &listener{key: k, conn: conn, refs: 1}
	m.listeners[k] = l
	m.readers.Add(1)
	go m.read(l)
	return nil
}

// releaseListener closes the receive socket for k when its last session
// lets go; its reader then ends.
func (m *Manager) releaseListener(k listenerKey) {
	m.mu.Lock()
	defer m.mu.Unlock()
	l := m.listeners[k]
	if l == nil {
		return
	}
	if l.refs--; l.refs == 0 {
		delete(m.listeners, k)
		l.conn.Close()
	}
}

// read receives on l until its socket closes.
func (m *Manager) read(l *listener) {
	defer m.readers.Done()
	buf := make([]byte, maxPacket)
	oob := make([]byte, oobSize)
	for {
		in, err := readPacket(l.conn, buf, oob, l.key.multihop)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			m.log.Warn("bfd receive failed", "event", "bfd_receive_error", "socket", l.key.String(), "err", err)
			time.Sleep(100 * time.Millisecond) // never spin on a broken socket
			continue
		}
		m.deliver(in)
	}
}

// deliver checks a received packet and hands it to its session: the
// §6.8.6 packet checks, the demultiplexing (Your Discriminator, else the
// address pair), then the TTL rule of the session's mode. A dropped packet
// is counted on the session it was meant for, if any.
func (m *Manager) deliver(in received) {
	// Decoded once for demultiplexing; ParseReceived below judges it, with
	// the session's authentication.
	var p ControlPacket
	_ = p.UnmarshalBinary(in.payload)
	m.mu.Lock()
	r, problem := m.demux(in, p)
	var peer Peer
	if r != nil {
		peer = r.peer
	}
	m.mu.Unlock()
	if r == nil {
		n := m.unmatched.Add(1)
		m.log.Debug("bfd packet matches no session", "event", "bfd_unmatched", "address", in.src,
			"local", in.dst, "multihop", in.multihop, "your_discriminator", p.YourDiscriminator, "unmatched", n)
		return
	}
	if reason := ttlProblem(peer, in.ttl); reason != "" {
		r.drop(reason, true)
		return
	}
	p, parseErr := ParseReceived(in.payload, peer.Auth.Enabled())
	switch {
	case errors.Is(parseErr, ErrAuth):
		r.authFailed(parseErr.Error())
		return
	case parseErr != nil:
		r.drop(parseErr.Error(), false)
		return
	case problem != "":
		r.drop(problem, false)
		return
	}
	if peer.Auth.Enabled() {
		if err := r.authenticate(p, peer.Auth); err != nil {
			r.authFailed("authentication: " + err.Error())
			return
		}
	}
	r.offer(p)
}

// demux finds the session a packet is for: by Your Discriminator when it
// is set, else by (source, destination, mode) (RFC 5880 §6.8.6, RFC 5881
// §3). When the discriminator is unknown or belongs elsewhere, it still
// returns the session the addresses point to, with the problem, so the
// drop is counted there. m.mu is held.
func (m *Manager) demux(in received, p ControlPacket) (*runner, string) {
	byAddr := m.byAddress(in)
	if p.YourDiscriminator == 0 {
		return byAddr, ""
	}
	r := m.byDiscr[p.YourDiscriminator]
	switch {
	case r == nil:
		return byAddr, fmt.Sprintf("unknown Your Discriminator %d", p.YourDiscriminator)
	case r.peer.Multihop != in.multihop || !sameAddr(r.peer.Remote, in.src):
		return byAddr, fmt.Sprintf("Your Discriminator %d belongs to session %s", p.YourDiscriminator, r.key)
	}
	return r, ""
}

// byAddress finds the session with the packet's source as remote, in the
// packet's mode, whose local address is its destination. m.mu is held.
func (m *Manager) byAddress(in received) *runner {
	for _, r := range m.sessions {
		if r.peer.Multihop != in.multihop || !sameAddr(r.peer.Remote, in.src) {
			continue
		}
		if r.local.IsValid() && in.dst.IsValid() && !sameAddr(r.local, in.dst) {
			continue
		}
		return r
	}
	return nil
}

// sameAddr compares addresses without their zones: the kernel reports a
// link-local source with the receiving interface's zone.
func sameAddr(a, b netip.Addr) bool {
	return a.WithZone("") == b.WithZone("")
}

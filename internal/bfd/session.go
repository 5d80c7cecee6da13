package bfd

import "time"

// adminDownPackets is how many AdminDown packets a removed session sends
// when the remote was tracking it (Init or Up), so one loss does not turn
// an administrative removal into a detected failure at the remote.
const adminDownPackets = 3

// clock tells the time. The session reads it; tests fake it.
type clock interface {
	Now() time.Time
}

// systemClock is the real clock.
type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// timing is what a session takes from its Peer.
type timing struct {
	minTx      time.Duration
	minRx      time.Duration
	multiplier uint8
}

// remoteView is what the last packet from the remote told us.
type remoteView struct {
	discr      uint32
	state      State
	diag       Diag
	detectMult uint8
	minTx      time.Duration // its Desired Min TX Interval
	minRx      time.Duration // its Required Min RX Interval
	demand     bool
}

// session is one BFD session's state machine (RFC 5880 §6.2, §6.8) in
// asynchronous mode, Active role, without Echo or authentication. It does
// no I/O and starts no timers: the owner calls Receive with packets that
// passed ParseReceived and demultiplexing, calls Advance at Deadline, and
// sends what Advance returns. It is not safe for concurrent use.
type session struct {
	clock  clock
	random func() float64 // [0, 1), for jitter
	notify func(Event)    // called on every state change; must not block

	cfg    timing
	state  State
	diag   Diag
	discr  uint32
	remote remoteView
	timers negotiation
	tx     txSchedule

	since        time.Time // of the last state change
	lastDownDiag Diag      // diag of the last change to Down or AdminDown
	lastRx       time.Time // zero: the detection timer is not running
}

// txSchedule is when and what the session transmits next.
type txSchedule struct {
	last      time.Time // last periodic packet
	next      time.Time // next periodic packet
	now       bool      // send a periodic packet at once (state change, new Poll)
	final     bool      // a Final answer to a Poll is owed
	adminLeft int       // AdminDown packets still to send after Shutdown
	adminGap  time.Duration
}

// newSession starts a session in state Down with local discriminator
// discr (non-zero, unique among the manager's sessions).
func newSession(cfg timing, discr uint32, c clock, random func() float64, notify func(Event)) *session {
	now := c.Now()
	s := &session{
		clock: c, random: random, notify: notify,
		cfg: cfg, state: Down, discr: discr, since: now,
		// RFC 5880 §6.8.1: bfd.RemoteMinRxInterval starts at 1 µs.
		remote: remoteView{state: Down, minRx: time.Microsecond},
		tx:     txSchedule{now: true},
	}
	s.timers.update(s.wantIntervals(), false)
	return s
}

// wantIntervals are the intervals to advertise in the current state: the
// configured ones, with Desired Min TX at least 1 s until Up.
func (s *session) wantIntervals() intervals {
	want := intervals{tx: s.cfg.minTx, rx: s.cfg.minRx}
	if s.state != Up {
		want.tx = max(want.tx, slowTxInterval)
	}
	return want
}

// SetTiming changes the configured timers. While Up the change goes
// through a Poll Sequence and the session stays Up; the Detect Mult is
// carried in every packet and applies at once.
func (s *session) SetTiming(cfg timing) {
	before := s.txInterval()
	s.cfg = cfg
	s.renegotiate()
	s.retime(before)
}

// renegotiate moves the advertised intervals towards the wanted ones.
func (s *session) renegotiate() {
	if s.timers.update(s.wantIntervals(), s.state == Up) {
		s.tx.now = true
	}
}

// Receive processes a Control packet for this session (RFC 5880 §6.8.6,
// from "Set bfd.RemoteDiscr" on).
func (s *session) Receive(p ControlPacket) {
	if s.state == AdminDown {
		return
	}
	before := s.txInterval()
	s.remote = remoteView{
		discr: p.MyDiscriminator, state: p.State, diag: p.Diag, detectMult: p.DetectMult,
		minTx: p.DesiredMinTx, minRx: p.RequiredMinRx, demand: p.Demand,
	}
	s.lastRx = s.clock.Now()
	if p.Final && s.timers.polling {
		s.timers.final()
		s.renegotiate() // a change made during the Poll goes next
	}
	s.followRemote(p.State)
	if p.Poll {
		s.tx.final = true
	}
	s.retime(before)
}

// spoofedDown reports whether p is a Down that RFC 5880 would let take an
// Up session down although it cannot come from the remote's session: Your
// Discriminator 0 (anyone can send that) and a My Discriminator other than
// the remote's. One such packet from the router's address, forged from
// off-link in multihop with a low min_ttl, would reset BGP. Without
// authentication the session ignores it; a remote that really restarted
// stops sending for its old session, and the detection time catches that.
func (s *session) spoofedDown(p ControlPacket) bool {
	return s.state == Up && p.State == Down && p.YourDiscriminator == 0 && p.MyDiscriminator != s.remote.discr
}

// retime pulls the next periodic packet in when the negotiated interval
// shrank below the one it was scheduled with: the remote may shorten its
// detection time as soon as our Final reaches it (RFC 5880 §6.8.3).
func (s *session) retime(before time.Duration) {
	after := s.txInterval()
	if after >= before || s.tx.last.IsZero() {
		return
	}
	if next := s.tx.last.Add(jittered(after, s.cfg.multiplier, s.random)); next.Before(s.tx.next) {
		s.tx.next = next
	}
}

// followRemote applies the state table of RFC 5880 §6.8.6.
func (s *session) followRemote(remote State) {
	switch {
	case remote == AdminDown:
		if s.state != Down {
			s.transition(Down, DiagNeighborSignaledDown)
		}
	case s.state == Down && remote == Down:
		s.transition(Init, DiagNone)
	case s.state == Down && remote == Init, s.state == Init && remote >= Init:
		s.transition(Up, DiagNone)
	case s.state == Up && remote == Down:
		s.transition(Down, DiagNeighborSignaledDown)
	}
}

// transition changes state, announces it, and sends the news at once.
func (s *session) transition(to State, diag Diag) {
	from := s.state
	s.state, s.diag = to, diag
	now := s.clock.Now()
	s.since = now
	if to == Down || to == AdminDown {
		s.lastDownDiag = diag
	}
	s.renegotiate()
	s.tx.now = true
	s.notify(Event{
		From: from, To: to, Diag: diag,
		RemoteState: s.remote.state, RemoteDiag: s.remote.diag, At: now,
	})
}

// Shutdown puts the session in AdminDown with diag AdministrativelyDown
// and schedules the last packets that tell the remote so, at the interval
// in force. Done reports when they are out.
func (s *session) Shutdown() {
	if s.state == AdminDown {
		return
	}
	gap := s.txInterval()
	count := 1
	if s.state == Init || s.state == Up {
		count = adminDownPackets
	}
	s.transition(AdminDown, DiagAdministrativelyDown)
	s.tx.adminLeft, s.tx.adminGap = count, gap
}

// Done reports whether a shut down session has sent its last packet.
func (s *session) Done() bool {
	return s.state == AdminDown && s.tx.adminLeft == 0
}

// Advance does what is due at the clock's time: it runs the detection
// timer and returns the packets to send now, in order.
func (s *session) Advance() []ControlPacket {
	now := s.clock.Now()
	if s.detectionExpired(now) {
		s.expire()
	}
	var out []ControlPacket
	if s.tx.final {
		s.tx.final = false
		p := s.packet()
		p.Final = true // never with P (RFC 5880 §6.8.7)
		out = append(out, p)
	}
	if s.mayTransmit() && (s.tx.now || !now.Before(s.tx.next)) {
		out = append(out, s.periodic(now))
	}
	return out
}

// Deadline is when Advance must next run; ok is false when nothing is
// scheduled.
func (s *session) Deadline() (deadline time.Time, ok bool) {
	if s.tx.final || (s.tx.now && s.mayTransmit()) {
		return s.clock.Now(), true
	}
	if s.mayTransmit() {
		deadline, ok = s.tx.next, true
	}
	if !s.lastRx.IsZero() {
		expiry := s.lastRx.Add(s.DetectionTime())
		if !ok || expiry.Before(deadline) {
			deadline, ok = expiry, true
		}
	}
	return deadline, ok
}

func (s *session) detectionExpired(now time.Time) bool {
	return !s.lastRx.IsZero() && !now.Before(s.lastRx.Add(s.DetectionTime()))
}

// expire handles a Detection Time without packets: the session goes Down
// (from Init or Up) and forgets the remote (RFC 5880 §6.8.1, §6.8.4).
func (s *session) expire() {
	s.lastRx = time.Time{}
	if s.state == Init || s.state == Up {
		s.transition(Down, DiagControlDetectionTimeExpired)
	}
	s.remote = remoteView{state: Down, diag: s.remote.diag, minRx: time.Microsecond}
}

// mayTransmit reports whether periodic packets go out (RFC 5880 §6.8.7):
// not after the last AdminDown packet, not when the remote asks for none
// (Required Min RX 0), not while the remote runs Demand mode.
func (s *session) mayTransmit() bool {
	switch {
	case s.state == AdminDown:
		return s.tx.adminLeft > 0
	case s.remote.minRx == 0:
		return false
	case s.remote.demand && s.state == Up && s.remote.state == Up && !s.timers.polling:
		return false
	}
	return true
}

// periodic builds the next periodic packet and schedules the one after.
func (s *session) periodic(now time.Time) ControlPacket {
	p := s.packet()
	p.Poll = s.timers.polling
	s.tx.now = false
	gap := s.txInterval()
	if s.state == AdminDown {
		s.tx.adminLeft--
		gap = s.tx.adminGap
	}
	s.tx.last = now
	s.tx.next = now.Add(jittered(gap, s.cfg.multiplier, s.random))
	return p
}

// packet is a Control packet with the session's current fields.
func (s *session) packet() ControlPacket {
	adv := s.timers.advertised()
	return ControlPacket{
		Version:           Version,
		Diag:              s.diag,
		State:             s.state,
		DetectMult:        s.cfg.multiplier,
		MyDiscriminator:   s.discr,
		YourDiscriminator: s.remote.discr,
		DesiredMinTx:      adv.tx,
		RequiredMinRx:     adv.rx,
	}
}

// txInterval is the negotiated interval between our periodic packets,
// before jitter.
func (s *session) txInterval() time.Duration {
	return txInterval(s.timers.txBase(), s.remote.minRx)
}

// RxInterval is the negotiated interval between the remote's packets.
func (s *session) RxInterval() time.Duration {
	return rxInterval(s.timers.rxBase(), s.remote.minTx)
}

// DetectionTime is the remote's Detect Mult times RxInterval.
func (s *session) DetectionTime() time.Duration {
	return detectionTime(s.remote.detectMult, s.timers.rxBase(), s.remote.minTx)
}

// fill copies the session's state into st.
func (s *session) fill(st *SessionStatus) {
	st.State = s.state
	st.Since = s.since
	st.RemoteState = s.remote.state
	st.LocalDiscriminator = s.discr
	st.RemoteDiscriminator = s.remote.discr
	st.LocalDiag = s.diag
	st.RemoteDiag = s.remote.diag
	st.LastDownDiag = s.lastDownDiag
	st.TxInterval = s.txInterval()
	st.RxInterval = s.RxInterval()
	st.DetectionTime = s.DetectionTime()
	st.RemoteMultiplier = s.remote.detectMult
	st.Polling = s.timers.polling
}

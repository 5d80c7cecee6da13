package bfd

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// addrs lets cmp compare netip.Addr.
var addrs = cmpopts.EquateComparable(netip.Addr{})

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// fakeClock is a clock tests move by hand.
type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time          { return c.now }
func (c *fakeClock) advance(d time.Duration) { c.now = c.now.Add(d) }
func (c *fakeClock) set(t time.Time)         { c.now = t }

// fixedRandom makes jitter predictable: always the given fraction of the
// jitter range.
func fixedRandom(f float64) func() float64 { return func() float64 { return f } }

var timing300 = timing{minTx: 300 * time.Millisecond, minRx: 300 * time.Millisecond, multiplier: 3}

// harness is one session under test with a fake clock and its events.
type harness struct {
	t      *testing.T
	clock  *fakeClock
	s      *session
	events []Event
}

func newHarness(t *testing.T, cfg timing, discr uint32) *harness {
	h := &harness{t: t, clock: &fakeClock{now: t0}}
	h.s = newSession(cfg, discr, h.clock, fixedRandom(0.5), func(ev Event) { h.events = append(h.events, ev) })
	return h
}

// takeEvents returns the events since the last call.
func (h *harness) takeEvents() []Event {
	ev := h.events
	h.events = nil
	return ev
}

// remotePacket is what a remote with discriminator 99 and 300 ms timers
// sends in state st.
func remotePacket(st State, your uint32) ControlPacket {
	return ControlPacket{
		Version: Version, State: st, DetectMult: 3, MyDiscriminator: 99, YourDiscriminator: your,
		DesiredMinTx: 300 * time.Millisecond, RequiredMinRx: 300 * time.Millisecond,
	}
}

// bringUp takes a fresh session to Up through Down → Init → Up and
// answers its first Poll with a Final.
func (h *harness) bringUp() {
	h.t.Helper()
	h.s.Advance()
	h.s.Receive(remotePacket(Down, 0))
	h.s.Receive(remotePacket(Up, h.s.discr))
	if h.s.state != Up {
		h.t.Fatalf("state %s, want Up", h.s.state)
	}
	out := h.s.Advance()
	if len(out) != 1 || !out[0].Poll {
		h.t.Fatalf("after Up: sent %+v, want one Poll", out)
	}
	final := remotePacket(Up, h.s.discr)
	final.Final = true
	h.s.Receive(final)
	h.takeEvents()
}

func TestFirstPacket(t *testing.T) {
	h := newHarness(t, timing300, 7)
	out := h.s.Advance()
	want := []ControlPacket{{
		Version: 1, State: Down, DetectMult: 3, MyDiscriminator: 7,
		DesiredMinTx: time.Second, RequiredMinRx: 300 * time.Millisecond,
	}}
	if diff := cmp.Diff(want, out); diff != "" {
		t.Fatalf("first packet (-want +got):\n%s", diff)
	}
	// Until Up, packets go every second less jitter (0.5 of 75-100 %).
	if deadline, _ := h.s.Deadline(); deadline != t0.Add(875*time.Millisecond) {
		t.Errorf("next packet at %v, want +875ms", deadline.Sub(t0))
	}
	h.clock.advance(874 * time.Millisecond)
	if out := h.s.Advance(); len(out) != 0 {
		t.Errorf("sent %d packets before the interval", len(out))
	}
	h.clock.advance(time.Millisecond)
	if out := h.s.Advance(); len(out) != 1 {
		t.Errorf("sent %d packets at the interval, want 1", len(out))
	}
}

func TestStateTable(t *testing.T) {
	tests := []struct {
		name       string
		from       State
		remote     State
		want       State
		wantDiag   Diag
		wantEvents int
	}{
		{"down sees down", Down, Down, Init, DiagNone, 1},
		{"down sees init", Down, Init, Up, DiagNone, 1},
		{"down ignores up", Down, Up, Down, DiagNone, 0},
		{"down ignores admin down", Down, AdminDown, Down, DiagNone, 0},
		{"init sees init", Init, Init, Up, DiagNone, 1},
		{"init sees up", Init, Up, Up, DiagNone, 1},
		{"init stays on down", Init, Down, Init, DiagNone, 0},
		{"init sees admin down", Init, AdminDown, Down, DiagNeighborSignaledDown, 1},
		{"up sees down", Up, Down, Down, DiagNeighborSignaledDown, 1},
		{"up sees admin down", Up, AdminDown, Down, DiagNeighborSignaledDown, 1},
		{"up stays up", Up, Up, Up, DiagNone, 0},
		{"up stays on init", Up, Init, Up, DiagNone, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, timing300, 7)
			h.s.state = tt.from
			your := uint32(7)
			if tt.remote == Down || tt.remote == AdminDown {
				your = 0
			}
			h.s.Receive(remotePacket(tt.remote, your))
			if h.s.state != tt.want || h.s.diag != tt.wantDiag {
				t.Errorf("state %s diag %s, want %s %s", h.s.state, h.s.diag, tt.want, tt.wantDiag)
			}
			if got := len(h.takeEvents()); got != tt.wantEvents {
				t.Errorf("%d events, want %d", got, tt.wantEvents)
			}
		})
	}
}

func TestHandshakeEventsAndImmediateSend(t *testing.T) {
	h := newHarness(t, timing300, 7)
	h.s.Advance()
	h.clock.advance(10 * time.Millisecond)
	h.s.Receive(remotePacket(Down, 0))
	// A state change goes out at once, not at the next interval.
	out := h.s.Advance()
	if len(out) != 1 || out[0].State != Init || out[0].YourDiscriminator != 99 {
		t.Fatalf("after Init: sent %+v, want one Init packet to discriminator 99", out)
	}
	h.s.Receive(remotePacket(Up, 7))
	want := []Event{
		{From: Down, To: Init, RemoteState: Down, At: t0.Add(10 * time.Millisecond)},
		{From: Init, To: Up, RemoteState: Up, At: t0.Add(10 * time.Millisecond)},
	}
	if diff := cmp.Diff(want, h.takeEvents(), addrs); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

func TestUpStartsPollToConfiguredTimers(t *testing.T) {
	h := newHarness(t, timing300, 7)
	h.s.Advance()
	h.s.Receive(remotePacket(Down, 0))
	h.s.Receive(remotePacket(Up, 7))
	out := h.s.Advance()
	if len(out) != 1 {
		t.Fatalf("sent %d packets, want 1", len(out))
	}
	p := out[0]
	if !p.Poll || p.Final || p.DesiredMinTx != 300*time.Millisecond {
		t.Errorf("first packet when Up: P %t F %t DesiredMinTx %v, want a Poll for 300ms", p.Poll, p.Final, p.DesiredMinTx)
	}
	// A decrease of our TX applies at once, even before the Final.
	if got := h.s.txInterval(); got != 300*time.Millisecond {
		t.Errorf("tx interval during the Poll %v, want 300ms", got)
	}
	// Every packet carries P until the Final.
	h.clock.advance(300 * time.Millisecond)
	if out := h.s.Advance(); len(out) != 1 || !out[0].Poll {
		t.Errorf("second packet %+v, want a Poll", out)
	}
	final := remotePacket(Up, 7)
	final.Final = true
	h.s.Receive(final)
	h.clock.advance(300 * time.Millisecond)
	if out := h.s.Advance(); len(out) != 1 || out[0].Poll {
		t.Errorf("after the Final: %+v, want one packet without P", out)
	}
	st := status(h.s)
	if st.TxInterval != 300*time.Millisecond || st.RxInterval != 300*time.Millisecond || st.DetectionTime != 900*time.Millisecond {
		t.Errorf("agreed tx %v rx %v detect %v, want 300ms 300ms 900ms", st.TxInterval, st.RxInterval, st.DetectionTime)
	}
}

func status(s *session) SessionStatus {
	var st SessionStatus
	s.fill(&st)
	return st
}

func TestAnswersPollWithFinal(t *testing.T) {
	h := newHarness(t, timing300, 7)
	h.bringUp()
	poll := remotePacket(Up, 7)
	poll.Poll = true
	poll.DesiredMinTx = 500 * time.Millisecond
	h.s.Receive(poll)
	out := h.s.Advance()
	if len(out) != 1 || !out[0].Final || out[0].Poll {
		t.Fatalf("answer to a Poll: %+v, want one packet with F and without P", out)
	}
	// The remote's new TX interval counts at once for detection.
	if got := h.s.DetectionTime(); got != 1500*time.Millisecond {
		t.Errorf("detection time %v, want 3 × 500ms", got)
	}
}

func TestFinalAnswerWhilePollingCarriesNoPoll(t *testing.T) {
	h := newHarness(t, timing300, 7)
	h.bringUp()
	h.s.SetTiming(timing{minTx: 500 * time.Millisecond, minRx: 500 * time.Millisecond, multiplier: 3})
	poll := remotePacket(Up, 7)
	poll.Poll = true
	h.s.Receive(poll)
	out := h.s.Advance()
	if len(out) != 2 {
		t.Fatalf("sent %d packets, want the Final and our Poll", len(out))
	}
	if !out[0].Final || out[0].Poll || !out[1].Poll || out[1].Final {
		t.Errorf("packets %+v, want F alone then P alone", out)
	}
}

func TestDetectionTimeExpires(t *testing.T) {
	h := newHarness(t, timing300, 7)
	h.bringUp()
	lastRx := h.clock.Now()
	deadline, ok := h.s.Deadline()
	if !ok || deadline.After(lastRx.Add(900*time.Millisecond)) {
		t.Fatalf("deadline %v after the last packet, want at most 900ms", deadline.Sub(lastRx))
	}
	// Keep transmitting but receive nothing.
	for h.clock.Now().Before(lastRx.Add(900*time.Millisecond - time.Nanosecond)) {
		next, _ := h.s.Deadline()
		h.clock.set(minTime(next, lastRx.Add(900*time.Millisecond-time.Nanosecond)))
		h.s.Advance()
		if h.s.state != Up {
			t.Fatalf("went %s %v after the last packet, before the detection time", h.s.state, h.clock.Now().Sub(lastRx))
		}
	}
	h.clock.set(lastRx.Add(900 * time.Millisecond))
	out := h.s.Advance()
	want := []Event{{
		From: Up, To: Down, Diag: DiagControlDetectionTimeExpired,
		RemoteState: Up, At: lastRx.Add(900 * time.Millisecond),
	}}
	if diff := cmp.Diff(want, h.takeEvents(), addrs); diff != "" {
		t.Fatalf("events (-want +got):\n%s", diff)
	}
	if !want[0].Failure() {
		t.Error("a detection time expiry is not a failure")
	}
	// The Down goes out at once, with the remote forgotten and slow timers.
	if len(out) != 1 || out[0].State != Down || out[0].Diag != DiagControlDetectionTimeExpired ||
		out[0].YourDiscriminator != 0 || out[0].DesiredMinTx != time.Second {
		t.Errorf("packet after expiry %+v", out)
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func TestDetectionTimeUsesRemoteMultiplierAndSlowerSide(t *testing.T) {
	h := newHarness(t, timing300, 7)
	h.s.Advance()
	p := remotePacket(Down, 0)
	p.DetectMult = 5
	p.DesiredMinTx = 500 * time.Millisecond
	h.s.Receive(p)
	if got := h.s.DetectionTime(); got != 2500*time.Millisecond {
		t.Errorf("detection time %v, want 5 × max(300ms, 500ms)", got)
	}
	p.DesiredMinTx = 100 * time.Millisecond
	h.s.Receive(p)
	if got := h.s.DetectionTime(); got != 1500*time.Millisecond {
		t.Errorf("detection time %v, want 5 × max(300ms, 100ms)", got)
	}
}

func TestRemoteAdminDownIsNotAFailure(t *testing.T) {
	h := newHarness(t, timing300, 7)
	h.bringUp()
	p := remotePacket(AdminDown, 0)
	p.Diag = DiagAdministrativelyDown
	h.s.Receive(p)
	events := h.takeEvents()
	if len(events) != 1 {
		t.Fatalf("events %+v, want one", events)
	}
	ev := events[0]
	if ev.To != Down || ev.Diag != DiagNeighborSignaledDown || ev.RemoteState != AdminDown ||
		ev.RemoteDiag != DiagAdministrativelyDown || ev.Failure() {
		t.Errorf("event %+v (failure %t), want Down/NeighborSignaledDown from a remote AdminDown, no failure", ev, ev.Failure())
	}
	// A remote that goes Down (not AdminDown) is a failure.
	h = newHarness(t, timing300, 7)
	h.bringUp()
	h.s.Receive(remotePacket(Down, 0))
	if events := h.takeEvents(); len(events) != 1 || !events[0].Failure() {
		t.Errorf("remote Down: events %+v, want one failure", events)
	}
}

func TestTimerChangeWhileUpPollsWithoutFlap(t *testing.T) {
	slower := timing{minTx: 500 * time.Millisecond, minRx: 500 * time.Millisecond, multiplier: 3}
	h := newHarness(t, timing300, 7)
	h.bringUp()
	h.s.SetTiming(slower)
	out := h.s.Advance()
	if len(out) != 1 || !out[0].Poll || out[0].DesiredMinTx != 500*time.Millisecond || out[0].RequiredMinRx != 500*time.Millisecond {
		t.Fatalf("after SetTiming: %+v, want a Poll for 500ms/500ms at once", out)
	}
	// An increase of TX waits for the Final; an increase of RX counts now.
	if tx, rx := h.s.txInterval(), h.s.RxInterval(); tx != 300*time.Millisecond || rx != 500*time.Millisecond {
		t.Errorf("during the Poll: tx %v rx %v, want 300ms 500ms", tx, rx)
	}
	final := remotePacket(Up, 7)
	final.Final = true
	final.RequiredMinRx = 300 * time.Millisecond
	h.s.Receive(final)
	if tx, rx := h.s.txInterval(), h.s.RxInterval(); tx != 500*time.Millisecond || rx != 500*time.Millisecond {
		t.Errorf("after the Final: tx %v rx %v, want 500ms 500ms", tx, rx)
	}
	if h.s.state != Up || len(h.takeEvents()) != 0 {
		t.Errorf("state %s, events %v: a timer change must not flap", h.s.state, h.events)
	}

	faster := timing{minTx: 100 * time.Millisecond, minRx: 100 * time.Millisecond, multiplier: 3}
	h.s.SetTiming(faster)
	h.s.Advance()
	// A decrease of TX is bounded by the remote's RX; a decrease of RX
	// waits for the Final.
	if tx, rx := h.s.txInterval(), h.s.RxInterval(); tx != 300*time.Millisecond || rx != 500*time.Millisecond {
		t.Errorf("during the second Poll: tx %v rx %v, want 300ms (remote's min rx) and 500ms", tx, rx)
	}
	h.s.Receive(final)
	if rx := h.s.RxInterval(); rx != 300*time.Millisecond {
		t.Errorf("after the second Final: rx %v, want 300ms (the remote's tx)", rx)
	}
}

func TestChangeDuringPollWaitsForFinal(t *testing.T) {
	h := newHarness(t, timing300, 7)
	h.bringUp()
	a := timing{minTx: 400 * time.Millisecond, minRx: 400 * time.Millisecond, multiplier: 3}
	b := timing{minTx: 600 * time.Millisecond, minRx: 600 * time.Millisecond, multiplier: 3}
	h.s.SetTiming(a)
	h.s.Advance()
	h.s.SetTiming(b)
	h.clock.advance(time.Second)
	out := h.s.Advance()
	if len(out) != 1 || out[0].DesiredMinTx != 400*time.Millisecond {
		t.Fatalf("during the first Poll: %+v, want it to keep proposing 400ms", out)
	}
	final := remotePacket(Up, 7)
	final.Final = true
	h.s.Receive(final)
	out = h.s.Advance()
	if len(out) != 1 || !out[0].Poll || out[0].DesiredMinTx != 600*time.Millisecond {
		t.Fatalf("after the first Final: %+v, want a new Poll for 600ms", out)
	}
}

func TestDownAgainRestoresSlowTx(t *testing.T) {
	h := newHarness(t, timing300, 7)
	h.bringUp()
	h.s.Receive(remotePacket(Down, 0))
	out := h.s.Advance()
	if len(out) != 1 || out[0].DesiredMinTx != time.Second || out[0].Poll {
		t.Errorf("after going Down: %+v, want 1s without P", out)
	}
	if got := h.s.txInterval(); got != time.Second {
		t.Errorf("tx interval %v, want 1s", got)
	}
}

func TestShutdownSendsAdminDown(t *testing.T) {
	h := newHarness(t, timing300, 7)
	h.bringUp()
	h.s.Shutdown()
	if events := h.takeEvents(); len(events) != 1 || events[0].To != AdminDown || events[0].Diag != DiagAdministrativelyDown || events[0].Failure() {
		t.Fatalf("events %+v, want one to AdminDown", events)
	}
	var sent []ControlPacket
	var times []time.Duration
	for i := 0; i < 20 && !h.s.Done(); i++ {
		deadline, ok := h.s.Deadline()
		if !ok {
			t.Fatal("shut down session schedules nothing before it is done")
		}
		h.clock.set(deadline)
		for _, p := range h.s.Advance() {
			sent = append(sent, p)
			times = append(times, h.clock.Now().Sub(t0))
		}
	}
	if len(sent) != adminDownPackets {
		t.Fatalf("sent %d packets, want %d", len(sent), adminDownPackets)
	}
	for _, p := range sent {
		if p.State != AdminDown || p.Diag != DiagAdministrativelyDown || p.YourDiscriminator != 99 {
			t.Errorf("packet %+v, want AdminDown/AdministrativelyDown to 99", p)
		}
	}
	// At the negotiated 300 ms less jitter, not at the 1 s of a session
	// that is not Up.
	if gap := times[1] - times[0]; gap != 262500*time.Microsecond {
		t.Errorf("gap %v, want 300ms × 0.875", gap)
	}
	// Received packets are ignored from now on.
	h.s.Receive(remotePacket(Up, 7))
	if h.s.state != AdminDown || len(h.takeEvents()) != 0 {
		t.Error("a shut down session reacted to a packet")
	}
}

func TestShutdownWhileDownSendsOne(t *testing.T) {
	h := newHarness(t, timing300, 7)
	h.s.Advance()
	h.s.Shutdown()
	out := h.s.Advance()
	if len(out) != 1 || out[0].State != AdminDown || !h.s.Done() {
		t.Errorf("sent %+v, done %t; want one AdminDown packet and done", out, h.s.Done())
	}
}

func TestNoPeriodicTransmitWhenRemoteWantsNone(t *testing.T) {
	h := newHarness(t, timing300, 7)
	h.s.Advance()
	p := remotePacket(Down, 0)
	p.RequiredMinRx = 0
	p.Poll = true
	h.s.Receive(p)
	out := h.s.Advance()
	// The Final still goes (RFC 5880 §6.8.7), the state change does not.
	if len(out) != 1 || !out[0].Final {
		t.Fatalf("sent %+v, want only the Final", out)
	}
	h.clock.advance(800 * time.Millisecond) // within the detection time
	if out := h.s.Advance(); len(out) != 0 {
		t.Errorf("sent %+v to a remote with Required Min RX 0", out)
	}
}

func TestJitterRange(t *testing.T) {
	tests := []struct {
		name      string
		mult      uint8
		low, high time.Duration
	}{
		{"multiplier 3", 3, 750 * time.Millisecond, time.Second},
		{"multiplier 1", 1, 750 * time.Millisecond, 900 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, r := range []float64{0, 0.25, 0.5, 0.999999} {
				got := jittered(time.Second, tt.mult, fixedRandom(r))
				if got < tt.low || got >= tt.high {
					t.Errorf("random %v: %v outside [%v, %v)", r, got, tt.low, tt.high)
				}
			}
			if got := jittered(time.Second, tt.mult, fixedRandom(0)); got != tt.low {
				t.Errorf("lowest %v, want %v", got, tt.low)
			}
		})
	}
}

func TestPeriodicGapsStayInJitterRange(t *testing.T) {
	for _, mult := range []uint8{1, 3} {
		h := newHarness(t, timing{minTx: 300 * time.Millisecond, minRx: 300 * time.Millisecond, multiplier: mult}, 7)
		seq := []float64{0, 0.3, 0.6, 0.99}
		i := 0
		h.s.random = func() float64 { i++; return seq[i%len(seq)] }
		var sent []time.Time
		for range 12 {
			deadline, _ := h.s.Deadline()
			h.clock.set(deadline)
			if len(h.s.Advance()) > 0 {
				sent = append(sent, h.clock.Now())
			}
		}
		high := time.Second
		if mult == 1 {
			high = 900 * time.Millisecond
		}
		for j := 1; j < len(sent); j++ {
			if gap := sent[j].Sub(sent[j-1]); gap < 750*time.Millisecond || gap > high {
				t.Errorf("multiplier %d: gap %v outside [750ms, %v]", mult, gap, high)
			}
		}
	}
}

// link connects two sessions with a fake clock; tests step it like a
// discrete event simulation.
type link struct {
	clock *fakeClock
	a, b  *session
	up    bool
	ev    map[*session][]Event
}

func newLink() *link {
	l := &link{clock: &fakeClock{now: t0}, up: true, ev: map[*session][]Event{}}
	random := fixedRandom(0.5)
	l.a = newSession(timing300, 1, l.clock, random, func(ev Event) { l.ev[l.a] = append(l.ev[l.a], ev) })
	l.b = newSession(timing300, 2, l.clock, random, func(ev Event) { l.ev[l.b] = append(l.ev[l.b], ev) })
	return l
}

// run steps both sessions until the clock passes d from now; packets
// arrive without delay while the link is up. It returns the number of
// steps, bounded.
func (l *link) run(t *testing.T, d time.Duration) {
	t.Helper()
	end := l.clock.Now().Add(d)
	for range 10000 {
		next := end
		for _, s := range []*session{l.a, l.b} {
			if deadline, ok := s.Deadline(); ok && deadline.Before(next) {
				next = deadline
			}
		}
		l.clock.set(next)
		for _, pair := range [][2]*session{{l.a, l.b}, {l.b, l.a}} {
			for _, p := range pair[0].Advance() {
				if l.up {
					pair[1].Receive(p)
				}
			}
		}
		if !next.Before(end) {
			return
		}
	}
	t.Fatal("link simulation did not reach its end time")
}

func states(evs []Event) []State {
	var out []State
	for _, ev := range evs {
		out = append(out, ev.To)
	}
	return out
}

func TestTwoSessionsComeUpFailAndRecover(t *testing.T) {
	l := newLink()
	l.run(t, 100*time.Millisecond)
	if l.a.state != Up || l.b.state != Up {
		t.Fatalf("after 100ms: %s/%s, want Up/Up", l.a.state, l.b.state)
	}
	l.run(t, 2*time.Second)
	if l.a.timers.polling || l.a.txInterval() != 300*time.Millisecond || l.a.DetectionTime() != 900*time.Millisecond {
		t.Fatalf("timers not settled: polling %t tx %v detect %v", l.a.timers.polling, l.a.txInterval(), l.a.DetectionTime())
	}
	l.up = false
	cut := l.clock.Now()
	l.run(t, 2*time.Second)
	evs := l.ev[l.a]
	last := evs[len(evs)-1]
	if last.To != Down || last.Diag != DiagControlDetectionTimeExpired {
		t.Fatalf("after the cut: last event %+v, want Down by detection time", last)
	}
	if took := last.At.Sub(cut); took > 900*time.Millisecond {
		t.Errorf("detected after %v, want at most 900ms", took)
	}
	l.up = true
	l.run(t, 3*time.Second)
	if l.a.state != Up || l.b.state != Up {
		t.Fatalf("after healing: %s/%s, want Up/Up", l.a.state, l.b.state)
	}
	// a is the first to send, so b's Init brings it Up directly.
	if got, want := states(l.ev[l.a]), []State{Up, Down, Up}; !slices.Equal(got, want) {
		t.Errorf("a's states %v, want %v", got, want)
	}
}

func TestTwoSessionsChangeTimersWithoutFlap(t *testing.T) {
	l := newLink()
	l.run(t, 2*time.Second)
	before := len(l.ev[l.a]) + len(l.ev[l.b])
	l.a.SetTiming(timing{minTx: 50 * time.Millisecond, minRx: 50 * time.Millisecond, multiplier: 3})
	l.b.SetTiming(timing{minTx: 50 * time.Millisecond, minRx: 50 * time.Millisecond, multiplier: 3})
	l.run(t, time.Second)
	if got := l.a.DetectionTime(); got != 150*time.Millisecond {
		t.Errorf("detection time %v, want 150ms", got)
	}
	l.a.SetTiming(timing{minTx: 2 * time.Second, minRx: 2 * time.Second, multiplier: 3})
	l.run(t, 10*time.Second)
	if got := l.b.DetectionTime(); got != 6*time.Second {
		t.Errorf("b's detection time %v, want 6s", got)
	}
	if after := len(l.ev[l.a]) + len(l.ev[l.b]); after != before || l.a.state != Up || l.b.state != Up {
		t.Errorf("timer changes caused state changes: %v / %v", l.ev[l.a][before/2:], l.ev[l.b])
	}
}

func TestTwoSessionsAdminDown(t *testing.T) {
	l := newLink()
	l.run(t, 2*time.Second)
	l.a.Shutdown()
	l.run(t, 2*time.Second)
	evs := l.ev[l.b]
	last := evs[len(evs)-1]
	if last.To != Down || last.RemoteState != AdminDown || last.Failure() {
		t.Errorf("b's last event %+v, want Down after a remote AdminDown, not a failure", last)
	}
	if !l.a.Done() {
		t.Error("a not done after its AdminDown packets")
	}
}

package health

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// Short periods keep the tests fast; waits are generous for a noisy machine.
const (
	testInterval = 20 * time.Millisecond
	testWait     = 10 * time.Second
)

// scripted passes or fails by the number of the call (1-based).
type scripted struct {
	calls atomic.Int64
	pass  func(call int64) bool
}

func (s *scripted) Check(context.Context) error {
	if s.pass(s.calls.Add(1)) {
		return nil
	}
	return errors.New("scripted failure")
}

// transition is a state change as onChange saw it, with the round it came on.
type transition struct {
	Up    bool
	Round int64
}

// recorder collects transitions from onChange.
type recorder struct {
	mu  sync.Mutex
	got []transition
}

func (r *recorder) add(tr transition) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, tr)
}

func (r *recorder) transitions() []transition {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]transition(nil), r.got...)
}

// newRecordedMonitor returns a monitor of one scripted check whose onChange
// records each transition and the round it happened on.
func newRecordedMonitor(sc *scripted, p Params) (*Monitor, *recorder) {
	rec := &recorder{}
	var m *Monitor
	m = NewMonitor("svc", []Checker{sc}, p, func() {
		rec.add(transition{Up: m.Up(), Round: sc.calls.Load()})
	})
	return m, rec
}

// run starts m.Run and returns a stop function that cancels it and checks that
// it returns nil in time.
func run(t *testing.T, m *Monitor) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run() = %v, want nil", err)
				}
			case <-time.After(testWait):
				t.Error("Run did not return after its context ended")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// eventually polls cond until it holds or limit passes.
func eventually(limit time.Duration, cond func() bool) bool {
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for range 100_000 {
		if cond() {
			return true
		}
		select {
		case <-deadline.C:
			return cond()
		case <-tick.C:
		}
	}
	return cond()
}

func TestMonitorTransitions(t *testing.T) {
	tests := []struct {
		name       string
		rise, fall int
		firstRise  int
		pass       func(call int64) bool
		rounds     int64 // run at least this many rounds
		want       []transition
	}{
		{
			name: "rise after consecutive passes",
			rise: 3, fall: 2, rounds: 6,
			pass: func(int64) bool { return true },
			want: []transition{{Up: true, Round: 3}},
		},
		{
			name: "fall after consecutive failures",
			rise: 2, fall: 3, rounds: 10,
			pass: func(n int64) bool { return n <= 2 },
			want: []transition{{Up: true, Round: 2}, {Up: false, Round: 5}},
		},
		{
			name: "always failing never comes up",
			rise: 1, fall: 1, rounds: 5,
			pass: func(int64) bool { return false },
			want: nil,
		},
		{
			name: "flapping while down stays down",
			rise: 2, fall: 2, rounds: 20,
			pass: func(n int64) bool { return n%2 == 1 },
			want: nil,
		},
		{
			name: "flapping while up stays up",
			rise: 2, fall: 2, rounds: 20,
			pass: func(n int64) bool { return n <= 2 || n%2 == 1 },
			want: []transition{{Up: true, Round: 2}},
		},
		{
			name: "every real change and only those",
			rise: 2, fall: 2, rounds: 12,
			// up at 2, fail 3-4 (down at 4), pass 5-6 (up at 6), then a
			// single failure that must not count.
			pass: func(n int64) bool { return n <= 2 || (n >= 5 && n != 8) },
			want: []transition{{Up: true, Round: 2}, {Up: false, Round: 4}, {Up: true, Round: 6}},
		},
		{
			name: "first rise only until the first transition",
			rise: 3, fall: 1, firstRise: 1, rounds: 10,
			// up at 1 (first rise), down at 2, up again only after 3 passes.
			pass: func(n int64) bool { return n != 2 },
			want: []transition{{Up: true, Round: 1}, {Up: false, Round: 2}, {Up: true, Round: 5}},
		},
		{
			name: "rise and fall of 0 count as 1",
			rise: 0, fall: 0, rounds: 5,
			pass: func(n int64) bool { return n == 1 },
			want: []transition{{Up: true, Round: 1}, {Up: false, Round: 2}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc := &scripted{pass: tt.pass}
			// A long timeout keeps the watchdog quiet on a busy machine; the
			// scripted checks return at once anyway.
			p := Params{Interval: testInterval, Timeout: time.Second, Rise: tt.rise, Fall: tt.fall, FirstRise: tt.firstRise}
			m, rec := newRecordedMonitor(sc, p)
			if m.Up() {
				t.Fatal("a monitor with checks starts up")
			}
			stop := run(t, m)
			if !eventually(testWait, func() bool { return sc.calls.Load() >= tt.rounds }) {
				t.Fatalf("only %d rounds ran in %v", sc.calls.Load(), testWait)
			}
			stop()
			if diff := cmp.Diff(tt.want, rec.transitions()); diff != "" {
				t.Errorf("transitions (-want +got):\n%s", diff)
			}
			wantUp := len(tt.want) > 0 && tt.want[len(tt.want)-1].Up
			if m.Up() != wantUp || m.Status().Up != wantUp {
				t.Errorf("Up() = %v, Status().Up = %v, want %v", m.Up(), m.Status().Up, wantUp)
			}
		})
	}
}

func TestMonitorFirstRoundAtOnce(t *testing.T) {
	sc := &scripted{pass: func(int64) bool { return true }}
	m, _ := newRecordedMonitor(sc, Params{Interval: time.Hour, Timeout: time.Second, Rise: 1, Fall: 1})
	run(t, m)
	if !eventually(testWait, m.Up) {
		t.Fatal("with rise 1 the service did not come up before the first tick")
	}
}

func TestMonitorRiseTakesIntervals(t *testing.T) {
	const rise = 3
	sc := &scripted{pass: func(int64) bool { return true }}
	m, _ := newRecordedMonitor(sc, Params{Interval: 50 * time.Millisecond, Timeout: 10 * time.Millisecond, Rise: rise, Fall: 1})
	start := time.Now()
	run(t, m)
	if !eventually(testWait, m.Up) {
		t.Fatal("the service never came up")
	}
	if took, least := time.Since(start), (rise-1)*50*time.Millisecond; took < least {
		t.Fatalf("up after %v, want at least (rise-1)*interval = %v", took, least)
	}
}

func TestMonitorStatus(t *testing.T) {
	sc := &scripted{pass: func(n int64) bool { return n <= 2 }}
	m, rec := newRecordedMonitor(sc, Params{Interval: testInterval, Timeout: time.Second, Rise: 2, Fall: 2})
	before := m.Status()
	if before.Up || before.LastResult != ResultNone || !before.LastCheck.IsZero() || before.Since.IsZero() {
		t.Fatalf("initial Status() = %+v, want down, no result, Since set", before)
	}
	run(t, m)
	if !eventually(testWait, func() bool { return len(rec.transitions()) == 2 }) {
		t.Fatalf("transitions = %v, want up then down", rec.transitions())
	}
	s := m.Status()
	if s.Up || s.LastResult != ResultFail || s.LastError != "scripted failure" || s.Passes != 0 || s.Failures < 2 {
		t.Errorf("Status() = %+v, want down after failures", s)
	}
	if !s.Since.After(before.Since) || s.LastCheck.Before(s.Since) {
		t.Errorf("Since = %v, LastCheck = %v: want the transition time, not before the last check", s.Since, s.LastCheck)
	}
	if s.LastResult.String() != "fail" {
		t.Errorf("LastResult.String() = %q", s.LastResult)
	}
}

// A service without checks is up at once and stays up: Run starts no
// rounds. The test runs in a synctest bubble, where Wait returns only once
// every goroutine Run started is blocked: a wrongly started loop would by
// then have finished the round it starts at once, and the status records
// every round (LastCheck, LastResult) and onChange every transition.
func TestMonitorNoChecksAlwaysUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var changes atomic.Int32
		m := NewMonitor("svc", nil, Params{Interval: testInterval}, func() { changes.Add(1) })
		if !m.Up() || !m.Status().Up {
			t.Fatal("a service without checks is not up at once")
		}
		stop := run(t, m)
		synctest.Wait()
		// The bubble's clock: this returns at once, after every timer due
		// within five intervals (a wrong loop's ticks) has fired.
		time.Sleep(5 * testInterval)
		synctest.Wait()
		s := m.Status()
		stop()
		if !s.Up || changes.Load() != 0 || s.LastResult != ResultNone || !s.LastCheck.IsZero() {
			t.Fatalf("Status() = %+v after %d changes, want up with no round and no change", s, changes.Load())
		}
	})
}

// blocker never returns until released, whatever its context says.
type blocker struct {
	calls   atomic.Int64
	passes  int64 // calls that pass before it wedges
	release chan struct{}
}

func (b *blocker) Check(context.Context) error {
	if b.calls.Add(1) <= b.passes {
		return nil
	}
	<-b.release
	return nil
}

func TestMonitorWedgedCheckGoesDown(t *testing.T) {
	b := &blocker{passes: 1, release: make(chan struct{})}
	t.Cleanup(func() { close(b.release) })
	var changes atomic.Int32
	m := NewMonitor("svc", []Checker{b}, Params{Interval: testInterval, Timeout: testInterval, Rise: 1, Fall: 2},
		func() { changes.Add(1) })
	stop := run(t, m)
	if !eventually(testWait, m.Up) {
		t.Fatal("the service never came up")
	}
	if !eventually(testWait, func() bool { return !m.Up() }) {
		t.Fatalf("a wedged check kept the service up: %+v", m.Status())
	}
	s := m.Status()
	if s.Failures != 2 || !strings.Contains(s.LastError, "no result") {
		t.Errorf("Status() = %+v, want 2 watchdog failures", s)
	}
	if n := b.calls.Load(); n != 2 {
		t.Errorf("%d rounds started, want 2: none may start while one is wedged", n)
	}
	if n := changes.Load(); n != 2 {
		t.Errorf("onChange called %d times, want 2", n)
	}
	start := time.Now()
	stop() // Run must return despite the wedged round
	if took := time.Since(start); took > stopGrace+time.Second {
		t.Errorf("Run took %v to return", took)
	}
}

// ctxBlocker blocks until its context ends, as a well-behaved slow check does.
type ctxBlocker struct{}

func (ctxBlocker) Check(ctx context.Context) error {
	<-ctx.Done()
	return ctx.Err()
}

func TestMonitorCheckTimeout(t *testing.T) {
	m := NewMonitor("svc", []Checker{ctxBlocker{}}, Params{Interval: testInterval, Timeout: 15 * time.Millisecond}, nil)
	run(t, m)
	if !eventually(testWait, func() bool { return m.Status().LastResult == ResultFail }) {
		t.Fatal("no round finished")
	}
	if s := m.Status(); !strings.HasPrefix(s.LastError, "timeout after 15ms") || m.Up() {
		t.Fatalf("Status() = %+v, want down with a timeout error", s)
	}
}

// sleeper passes after a fixed delay.
type sleeper time.Duration

func (s sleeper) Check(ctx context.Context) error {
	t := time.NewTimer(time.Duration(s))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func TestMonitorAllChecksMustPass(t *testing.T) {
	bad := &scripted{pass: func(int64) bool { return false }}
	good := &scripted{pass: func(int64) bool { return true }}
	m := NewMonitor("svc", []Checker{good, bad, good}, Params{Interval: testInterval, Timeout: time.Second, Rise: 1}, nil)
	run(t, m)
	if !eventually(testWait, func() bool { return bad.calls.Load() >= 3 }) {
		t.Fatal("rounds did not run")
	}
	if s := m.Status(); s.Up || s.LastError != "scripted failure" {
		t.Fatalf("Status() = %+v, want down because one check fails", s)
	}
}

// The checks of a round run side by side: three 300ms checks fit in 800ms.
func TestMonitorChecksRunConcurrently(t *testing.T) {
	slow := sleeper(300 * time.Millisecond)
	m := NewMonitor("svc", []Checker{slow, slow, slow}, Params{Interval: time.Second, Timeout: 800 * time.Millisecond, Rise: 1}, nil)
	run(t, m)
	if !eventually(testWait, func() bool { return m.Status().LastResult != ResultNone }) {
		t.Fatal("no round finished")
	}
	if s := m.Status(); !s.Up {
		t.Fatalf("Status() = %+v, want up", s)
	}
}

func TestMonitorRunErrors(t *testing.T) {
	sc := &scripted{pass: func(int64) bool { return true }}
	m := NewMonitor("svc", []Checker{sc}, Params{}, nil)
	if err := m.Run(t.Context()); err == nil || !strings.Contains(err.Error(), "interval") {
		t.Errorf("zero interval: Run() = %v, want an interval error", err)
	}

	m = NewMonitor("svc", []Checker{sc}, Params{Interval: time.Hour}, nil)
	run(t, m)
	if !eventually(testWait, func() bool { return sc.calls.Load() > 0 }) {
		t.Fatal("Run did not start")
	}
	if err := m.Run(t.Context()); err == nil {
		t.Error("a second Run() = nil, want an error")
	}
}

// A real TCP check through the monitor: up while a listener accepts, down
// once it is gone.
func TestMonitorTCPEndToEnd(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for range 10_000 {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			conn.Close()
		}
	}()
	m := NewMonitor("svc", []Checker{&TCP{Address: ln.Addr().String()}},
		Params{Interval: testInterval, Timeout: time.Second, Rise: 2, Fall: 2}, nil)
	run(t, m)
	if !eventually(testWait, m.Up) {
		t.Fatalf("never up: %+v", m.Status())
	}
	ln.Close()
	if !eventually(testWait, func() bool { return !m.Up() }) {
		t.Fatalf("still up after the listener closed: %+v", m.Status())
	}
	if s := m.Status(); !strings.Contains(s.LastError, "refused") {
		t.Errorf("LastError = %q, want connection refused", s.LastError)
	}
}

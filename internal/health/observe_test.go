package health

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestKindOf(t *testing.T) {
	tests := []struct {
		name    string
		checker Checker
		want    string
	}{
		{"http value", HTTP{}, KindHTTP},
		{"http pointer", &HTTP{}, KindHTTP},
		{"tcp value", TCP{}, KindTCP},
		{"tcp pointer", &TCP{}, KindTCP},
		{"exec value", Exec{}, KindExec},
		{"exec pointer", &Exec{}, KindExec},
		{"checker without a kind", &scripted{}, KindOther},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := KindOf(tt.checker); got != tt.want {
				t.Errorf("KindOf(%T) = %q, want %q", tt.checker, got, tt.want)
			}
		})
	}
}

// observation is one call of an Observer.
type observation struct {
	kind string
	took time.Duration
	err  error
}

// observations collects what an Observer is told.
type observations struct {
	mu  sync.Mutex
	got []observation
}

func (o *observations) observe(kind string, took time.Duration, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.got = append(o.got, observation{kind, took, err})
}

// byKind returns the observations of kind, leaving out checks cut short by
// the monitor's stop.
func (o *observations) byKind(kind string) []observation {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []observation
	for _, ob := range o.got {
		if ob.kind == kind && !errors.Is(ob.err, context.Canceled) {
			out = append(out, ob)
		}
	}
	return out
}

// listen returns the address of a TCP listener that accepts and closes
// connections until the test ends.
func listen(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for range 10_000 {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			conn.Close()
		}
	}()
	return ln.Addr().String()
}

// named gives a checker a kind of the test's choosing.
type named struct {
	Checker
	kind string
}

func (n named) Kind() string { return n.kind }

// Every check of every round reaches the observer with its kind, its own
// duration and its own error, not the round's.
func TestMonitorObserverSeesEveryCheck(t *testing.T) {
	const slow = 50 * time.Millisecond
	failing := &scripted{pass: func(int64) bool { return false }}
	checks := []Checker{TCP{Address: listen(t)}, failing, named{sleeper(slow), "slow"}}
	obs := &observations{}
	m := NewMonitor("svc", checks, Params{Interval: testInterval, Timeout: time.Second}, nil, WithObserver(obs.observe))
	stop := run(t, m)
	enough := func() bool {
		return len(obs.byKind(KindTCP)) >= 3 && len(obs.byKind(KindOther)) >= 3 && len(obs.byKind("slow")) >= 3
	}
	if !eventually(testWait, enough) {
		t.Fatal("rounds did not run")
	}
	stop()

	tcp, other, slowObs := obs.byKind(KindTCP), obs.byKind(KindOther), obs.byKind("slow")
	for _, ob := range tcp {
		if ob.err != nil || ob.took <= 0 {
			t.Errorf("tcp observation %+v, want a pass with a duration", ob)
		}
	}
	for _, ob := range other {
		// The round takes at least `slow`; the failing check itself does not.
		if ob.err == nil || ob.err.Error() != "scripted failure" || ob.took >= slow {
			t.Errorf("other observation %+v, want the scripted failure, fast", ob)
		}
	}
	for _, ob := range slowObs {
		if ob.err != nil || ob.took < slow {
			t.Errorf("slow observation %+v, want a pass after at least %v", ob, slow)
		}
	}
}

func TestMonitorObserverSeesTimeouts(t *testing.T) {
	obs := &observations{}
	m := NewMonitor("svc", []Checker{ctxBlocker{}}, Params{Interval: testInterval, Timeout: 15 * time.Millisecond}, nil,
		WithObserver(obs.observe))
	stop := run(t, m)
	if !eventually(testWait, func() bool { return len(obs.byKind(KindOther)) > 0 }) {
		t.Fatal("no check observed")
	}
	stop()
	ob := obs.byKind(KindOther)[0]
	if ob.err == nil || !strings.HasPrefix(ob.err.Error(), "timeout after 15ms") || ob.took < 15*time.Millisecond {
		t.Errorf("observation %+v, want a timeout after at least 15ms", ob)
	}
	if !errors.Is(ob.err, context.DeadlineExceeded) {
		t.Errorf("observed error %v does not wrap context.DeadlineExceeded", ob.err)
	}
}

func TestWithNilObserverIsIgnored(t *testing.T) {
	sc := &scripted{pass: func(int64) bool { return true }}
	m := NewMonitor("svc", []Checker{sc}, Params{Interval: testInterval, Rise: 1}, nil, WithObserver(nil))
	run(t, m)
	if !eventually(testWait, m.Up) {
		t.Fatal("a monitor with a nil observer never came up")
	}
}

// Transitions and CheckFailures count since the monitor was made. The script
// settles after round 7, so the counts are exact once enough rounds ran.
func TestMonitorCountsTransitionsAndFailures(t *testing.T) {
	// rise 1, fall 1: up at 1, down at 2, up at 4, down at 6, up at 7.
	script := []bool{true, false, false, true, true, false, true}
	sc := &scripted{pass: func(n int64) bool { return n > int64(len(script)) || script[n-1] }}
	m := NewMonitor("svc", []Checker{sc}, Params{Interval: testInterval, Timeout: time.Second, Rise: 1, Fall: 1}, nil)
	if s := m.Status(); s.Transitions != 0 || s.CheckFailures != 0 {
		t.Fatalf("new monitor counts %+v, want zeros", s)
	}
	stop := run(t, m)
	if !eventually(testWait, func() bool { return sc.calls.Load() >= 10 }) {
		t.Fatal("rounds did not run")
	}
	stop()
	s := m.Status()
	if s.Transitions != 5 || s.CheckFailures != 3 || !s.Up {
		t.Errorf("Status() = %+v, want up after 5 transitions and 3 failed rounds", s)
	}
}

// A round the watchdog gave up on counts as a failed round.
func TestMonitorCountsWatchdogFailures(t *testing.T) {
	b := &blocker{passes: 1, release: make(chan struct{})}
	t.Cleanup(func() { close(b.release) })
	obs := &observations{}
	m := NewMonitor("svc", []Checker{b}, Params{Interval: testInterval, Timeout: testInterval, Rise: 1, Fall: 2}, nil,
		WithObserver(obs.observe))
	run(t, m)
	if !eventually(testWait, func() bool { return m.Status().CheckFailures >= 2 }) {
		t.Fatalf("watchdog failures not counted: %+v", m.Status())
	}
	if s := m.Status(); s.Transitions != 2 || s.Up {
		t.Errorf("Status() = %+v, want down after 2 transitions", s)
	}
	if got := len(obs.byKind(KindOther)); got != 1 {
		t.Errorf("%d checks observed, want 1: the wedged check has not returned", got)
	}
}

package health

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// The scheduling tests run in a synctest bubble: its fake clock moves only
// when every goroutine in the bubble is blocked, so round times are exact.

// timed is a checker that records the (fake) time of each call and passes
// or fails by the call's number (1-based).
type timed struct {
	mu    sync.Mutex
	calls []time.Time
	pass  func(call int) bool
}

func (c *timed) Check(context.Context) error {
	c.mu.Lock()
	c.calls = append(c.calls, time.Now())
	n := len(c.calls)
	c.mu.Unlock()
	if c.pass(n) {
		return nil
	}
	return errors.New("scripted failure")
}

// offsets returns the call times as offsets from start.
func (c *timed) offsets(start time.Time) []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]time.Duration, len(c.calls))
	for i, t := range c.calls {
		out[i] = t.Sub(start)
	}
	return out
}

// runFor runs m in the bubble for d of fake time and stops it.
func runFor(t *testing.T, m *Monitor, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	time.Sleep(d)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run() = %v", err)
	}
}

// gaps returns the differences between successive offsets.
func gaps(offs []time.Duration) []time.Duration {
	var out []time.Duration
	for i := 1; i < len(offs); i++ {
		out = append(out, offs[i]-offs[i-1])
	}
	return out
}

// safespring is ExaBGP's setting from the Safespring guide with vipd's
// default fast interval.
var safespring = Params{Interval: 15 * time.Second, FastInterval: time.Second, Timeout: time.Second, Rise: 3, Fall: 3}

func TestScheduleFastUntilFirstRise(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := &timed{pass: func(int) bool { return true }}
		m := NewMonitor("web", []Checker{c}, safespring, nil)
		start := time.Now()
		runFor(t, m, 50*time.Second)
		offs := c.offsets(start)
		if len(offs) < 5 {
			t.Fatalf("calls at %v, want at least 5", offs)
		}
		g := gaps(offs)
		// Round 1 on the service's first slot of the 1s fast grid (the
		// bubble starts on a whole second), 2 and 3 a fast interval apart:
		// up after round 3.
		if first := phaseOf("web", 15*time.Second) % time.Second; offs[0] != first || g[0] != time.Second || g[1] != time.Second {
			t.Errorf("rounds at %v: want %v, then two at the fast interval (1s)", offs, first)
		}
		if !m.Up() {
			t.Fatal("not up after rise passes")
		}
		// Decided: the rest run on the interval grid.
		phase := phaseOf("web", 15*time.Second)
		for i, o := range offs[3:] {
			if rem := (start.Add(o).UnixNano() - int64(phase)) % int64(15*time.Second); rem != 0 {
				t.Errorf("round %d at %v is %v off the 15s grid (phase %v)", i+4, o, time.Duration(rem), phase)
			}
		}
		for _, d := range g[3:] {
			if d != 15*time.Second {
				t.Errorf("gaps after the decision %v, want 15s", g[3:])
				break
			}
		}
		if s := m.Status(); s.Fast {
			t.Errorf("Status().Fast = true after the decision")
		}
	})
}

// onGrid in a list of gaps stands for "on the next slot of the 15s grid".
const onGrid = -time.Nanosecond

func TestScheduleFastOnDisagreement(t *testing.T) {
	tests := []struct {
		name string
		pass func(call int) bool
		// from is the first call that disagrees; want the gaps that follow
		// it (onGrid: the next slot of the 15s grid, a gap of up to 15s),
		// and whether the service ends up.
		from   int
		want   []time.Duration
		wantUp bool
	}{
		{
			name: "failures until fall, then interval",
			pass: func(n int) bool { return n <= 3 }, // up at 3, fails from 4
			from: 4, want: []time.Duration{time.Second, time.Second, onGrid, 15 * time.Second},
			wantUp: false,
		},
		{
			name: "a failure that flips back returns to the interval",
			pass: func(n int) bool { return n != 4 },
			from: 4, want: []time.Duration{time.Second, onGrid, 15 * time.Second},
			wantUp: true,
		},
		{
			name: "passes while down until rise",
			pass: func(n int) bool { return n <= 3 || n >= 7 }, // down at 6, passes from 7
			from: 7, want: []time.Duration{time.Second, time.Second, onGrid},
			wantUp: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := &timed{pass: tt.pass}
				m := NewMonitor("web", []Checker{c}, safespring, nil)
				start := time.Now()
				runFor(t, m, 3*time.Minute)
				g := gaps(c.offsets(start))
				if len(g) < tt.from+len(tt.want) {
					t.Fatalf("only %d rounds", len(g)+1)
				}
				offs := c.offsets(start)
				phase := phaseOf("web", 15*time.Second)
				onGridAt := func(i int) bool {
					return (start.Add(offs[i]).UnixNano()-int64(phase))%int64(15*time.Second) == 0
				}
				// The disagreeing round itself came on the 15s grid.
				if !onGridAt(tt.from - 1) {
					t.Errorf("round %d at %v is off the 15s grid", tt.from, offs[tt.from-1])
				}
				got := g[tt.from-1 : tt.from-1+len(tt.want)]
				for i, w := range tt.want {
					if w == onGrid && onGridAt(tt.from+i) && got[i] <= 15*time.Second && got[i] >= time.Second {
						got[i] = onGrid
					}
				}
				if fmt.Sprint(got) != fmt.Sprint(tt.want) {
					t.Errorf("gaps after round %d = %v, want %v", tt.from, got, tt.want)
				}
				if m.Up() != tt.wantUp {
					t.Errorf("Up() = %v, want %v", m.Up(), tt.wantUp)
				}
			})
		})
	}
}

// A service that fails from the start is decided after fall failures and
// then checks at the interval.
func TestScheduleFailingFromStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := &timed{pass: func(int) bool { return false }}
		m := NewMonitor("web", []Checker{c}, safespring, nil)
		start := time.Now()
		runFor(t, m, time.Minute)
		g := gaps(c.offsets(start))
		if len(g) < 4 || g[0] >= 2*time.Second || g[1] != time.Second || g[2] < 2*time.Second || g[3] != 15*time.Second {
			t.Errorf("gaps %v: want two fast rounds after the first, then the 15s grid", g)
		}
	})
}

// The phase depends on the name only: a restarted or reloaded monitor
// probes at the same instants within the interval, whenever it starts.
func TestScheduleOffsetStableAcrossRestarts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var phases []time.Duration
		for _, delay := range []time.Duration{0, 3700 * time.Millisecond, 11 * time.Second} {
			time.Sleep(delay)
			c := &timed{pass: func(int) bool { return true }}
			m := NewMonitor("web", []Checker{c}, safespring, nil)
			runFor(t, m, time.Minute)
			c.mu.Lock()
			last := c.calls[len(c.calls)-1]
			c.mu.Unlock()
			phases = append(phases, time.Duration(last.UnixNano()%int64(15*time.Second)))
		}
		if phases[0] != phases[1] || phases[1] != phases[2] {
			t.Errorf("phases within the interval %v, want one phase", phases)
		}
		if other := phaseOf("api", 15*time.Second); other == phases[0] {
			t.Errorf("services web and api share phase %v", other)
		}
	})
}

// 10k services with a 1s interval: the busiest 10 ms of the second holds
// few more rounds than the average 100, where rounds in phase put all 10k
// into one.
func TestSchedulePhasesSpread(t *testing.T) {
	const n, bins = 10_000, 100
	var count [bins]int
	for i := range n {
		p := phaseOf(fmt.Sprintf("s%d", i), time.Second)
		count[p/(10*time.Millisecond)]++
	}
	busiest := 0
	for _, c := range count {
		busiest = max(busiest, c)
	}
	if busiest > 2*n/bins {
		t.Errorf("busiest 10 ms holds %d of %d rounds, want at most %d", busiest, n, 2*n/bins)
	}
}

func TestScheduleSlot(t *testing.T) {
	s := schedule{interval: 15 * time.Second, fast: time.Second, phase: 7300 * time.Millisecond}
	base := time.Unix(1_000_000_005, 0) // a multiple of 15s
	tests := []struct {
		at   time.Duration
		fast bool
		want time.Duration
	}{
		{0, false, 7300 * time.Millisecond},
		{7300 * time.Millisecond, false, 7300 * time.Millisecond},
		{7301 * time.Millisecond, false, 22300 * time.Millisecond},
		{0, true, 300 * time.Millisecond},
		{400 * time.Millisecond, true, 1300 * time.Millisecond},
	}
	for _, tt := range tests {
		if got := s.slot(base.Add(tt.at), tt.fast).Sub(base); got != tt.want {
			t.Errorf("slot(+%v, fast %v) = +%v, want +%v", tt.at, tt.fast, got, tt.want)
		}
	}
	// next keeps a fast interval from the last start, even across grids.
	if got := s.next(base.Add(7400*time.Millisecond), base.Add(7300*time.Millisecond), true).Sub(base); got != 8300*time.Millisecond {
		t.Errorf("next fast after a round at +7.3s = +%v, want +8.3s", got)
	}
	if got := s.next(base.Add(22350*time.Millisecond), base.Add(22300*time.Millisecond), false).Sub(base); got != 37300*time.Millisecond {
		t.Errorf("next after a decision at +22.3s = +%v, want +37.3s", got)
	}
}

// failWatcher reports a failure at a fixed time after Watch starts.
type failWatcher struct {
	timed
	after time.Duration
}

func (w *failWatcher) Watch(ctx context.Context, fail func(error)) {
	select {
	case <-time.After(w.after):
		fail(errors.New("target gone"))
	case <-ctx.Done():
	}
	<-ctx.Done()
}

// A watcher's failure counts at that instant: with fall 1 the service goes
// down then, not at the next round, and the rounds keep their grid.
func TestScheduleWatcherFailsAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &failWatcher{timed: timed{pass: func(int) bool { return true }}, after: 20*time.Second + 123*time.Millisecond}
		var downAt time.Time
		var m *Monitor
		start := time.Now()
		m = NewMonitor("web", []Checker{w}, Params{Interval: 15 * time.Second, FastInterval: time.Second, Rise: 1, Fall: 1}, func() {
			if !m.Up() {
				downAt = time.Now()
			}
		})
		runFor(t, m, 25*time.Second)
		if got := downAt.Sub(start); got != w.after {
			t.Errorf("down at +%v, want +%v (when the watcher failed)", got, w.after)
		}
		if s := m.Status(); s.LastError != "target gone" || s.Up {
			t.Errorf("Status() = %+v, want down with the watcher's error", s)
		}
	})
}

// On the real clock a timer fires a little after its slot; the next fast
// round must still come one fast interval after the slot, not skip to the
// one after. The smallest of three fast gaps shows it, whatever the noise.
func TestScheduleRealTimerKeepsFastGaps(t *testing.T) {
	const fast = 100 * time.Millisecond
	c := &timed{pass: func(n int) bool { return n == 1 }} // up, then failing
	m := NewMonitor("web", []Checker{c}, Params{Interval: 2 * time.Second, FastInterval: fast, Timeout: fast, Rise: 1, Fall: 4}, nil)
	start := time.Now()
	stop := run(t, m)
	if !eventually(testWait, func() bool { return !m.Up() && m.Status().Transitions == 2 }) {
		t.Fatalf("never went up and down: %+v", m.Status())
	}
	stop()
	g := gaps(c.offsets(start))
	if len(g) < 4 {
		t.Fatalf("gaps %v", g)
	}
	fastGaps := g[1:4] // rounds 2-5: the failures that bring it down
	if least := slices.Min(fastGaps); least >= fast*3/2 {
		t.Errorf("fast gaps %v: the smallest is %v, want about %v", fastGaps, least, fast)
	}
}

// Package health probes services and turns the probe results into an up/down
// state with rise/fall hysteresis.
//
// A Checker is one probe (HTTP, TCP, Exec, Listen or Process). A Monitor runs
// all of a service's checkers in rounds; a round passes only when every checker
// passes within the timeout. A service starts down, goes up after Rise passing
// rounds in a row and goes down after Fall failing rounds in a row. Rounds come
// every Interval once the state is settled, and every FastInterval while it is
// not: from the start until the first decision, and while rounds disagree with
// the state (see schedule). A Watcher (the process check) can fail a round
// between rounds, the moment its target goes away. Each real up/down transition
// calls the monitor's onChange callback at once, from the monitor's goroutine.
// An optional Observer (WithObserver) sees every single check, with its kind
// and duration.
//
// This package knows nothing of the config: the agent maps config checks to the
// checker types here.
package health

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Checker is one probe. Check returns nil when the target is healthy. It must
// return by ctx's deadline; a monitor counts a check that does not as failed.
type Checker interface {
	Check(ctx context.Context) error
}

// Params tunes a Monitor. Rise and Fall below 1 count as 1. A Timeout of zero
// or less means FastInterval. A FastInterval of zero or less, or above
// Interval, means Interval (no fast rounds).
type Params struct {
	Interval time.Duration // time between the starts of two rounds
	// FastInterval is the time between rounds while the state is unknown or
	// a round disagreed with it.
	FastInterval time.Duration
	Timeout      time.Duration // deadline of each round
	Rise         int           // passing rounds in a row that bring a service up
	Fall         int           // failing rounds in a row that bring a service down
	// FirstRise, if above 0, replaces Rise until the first transition, so
	// a new target can count as up after one pass (load-balancer backends).
	FirstRise int
}

// Result is the outcome of a monitor's last round.
type Result uint8

const (
	ResultNone Result = iota // no round has finished yet
	ResultPass
	ResultFail
)

func (r Result) String() string {
	switch r {
	case ResultNone:
		return "none"
	case ResultPass:
		return "pass"
	case ResultFail:
		return "fail"
	}
	return fmt.Sprintf("Result(%d)", uint8(r))
}

// Status is a snapshot of a monitor's state.
type Status struct {
	Up           bool
	Since        time.Time // last up/down transition, or when the monitor was made
	LastResult   Result
	LastError    string // why the last round failed; empty when it passed
	LastCheck    time.Time
	LastDuration time.Duration
	Passes       int // passing rounds in a row
	Failures     int // failing rounds in a row
	// Transitions counts up/down transitions since the monitor was made.
	Transitions uint64
	// CheckFailures counts failed rounds since the monitor was made: a check
	// failed or timed out, the round produced no result in time, or a
	// watcher reported its target gone.
	CheckFailures uint64
	// Fast is true while rounds run at the fast interval: no decision yet, or
	// the last round disagreed with the state.
	Fast bool
	// decided is set by the first decision: a transition, or Fall failures
	// in a row while down.
	decided bool
}

const (
	// minWatchdogSlack is the least time a round gets past its deadline to
	// report before the watchdog counts it as failed: checkers need a moment
	// to clean up (kill and reap a process group) and the machine may be busy.
	minWatchdogSlack = 250 * time.Millisecond
	// stopGrace bounds how long Run waits for the round in flight when its
	// context ends. Checkers here stop at once on cancel; this only guards
	// against one that ignores its context.
	stopGrace = 2 * time.Second
)

// Monitor runs one service's checks and keeps its up/down state.
type Monitor struct {
	name     string
	checks   []Checker
	params   Params
	kinds    []string // KindOf of each check, for the observer
	sched    schedule
	onChange func()
	observe  Observer
	running  atomic.Bool

	mu     sync.Mutex
	status Status
}

// NewMonitor returns a monitor for the service name. It has no side effects:
// nothing runs until Run. onChange is called on every up/down transition, from
// Run's goroutine; it must not block. A service without checks is up at once
// and stays up.
func NewMonitor(name string, checks []Checker, p Params, onChange func(), opts ...Option) *Monitor {
	p.Rise = max(p.Rise, 1)
	p.Fall = max(p.Fall, 1)
	if p.FastInterval <= 0 || p.FastInterval > p.Interval {
		p.FastInterval = p.Interval
	}
	if p.Timeout <= 0 {
		p.Timeout = p.FastInterval
	}
	if onChange == nil {
		onChange = func() {}
	}
	kinds := make([]string, len(checks))
	for i, c := range checks {
		kinds[i] = KindOf(c)
	}
	m := &Monitor{
		name:     name,
		checks:   checks,
		kinds:    kinds,
		params:   p,
		onChange: onChange,
		observe:  func(string, time.Duration, error) {},
		status:   Status{Up: len(checks) == 0, Since: time.Now(), Fast: len(checks) > 0},
	}
	if p.Interval > 0 {
		m.sched = newSchedule(name, p.Interval, p.FastInterval)
	}
	for _, o := range opts {
		o(m)
	}
	return m
}

// Status returns a snapshot of the monitor's state.
func (m *Monitor) Status() Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.status
}

// Up reports whether the service is up.
func (m *Monitor) Up() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.status.Up
}

// round is the outcome of one round of checks.
type round struct {
	err      error
	start    time.Time
	duration time.Duration
}

// Run probes the service until ctx ends, then returns nil. The first round
// starts within the fast interval (see schedule.first); each later one
// starts on the schedule's grid, at the fast interval or the interval, once
// the round before it has reported: at most one round runs at a time.
//
// A watchdog timer counts a round that has not reported within Timeout+slack
// of its start as failed, and again for each further Interval+Timeout+slack.
// Such a failure follows the normal fall rule rather than forcing the
// service down: on an overloaded machine the watchdog can fire for a round
// that is merely late, and one late round should not flap a route.
// The wedged round's result, if it ever comes, is discarded.
//
// Checkers that are Watchers run their Watch on goroutines Run owns and ends
// before it returns. A failure they report counts as a failed round at once;
// the round in flight, which may have started before the target went away,
// is discarded.
//
// Run may be called once.
func (m *Monitor) Run(ctx context.Context) error {
	if !m.running.CompareAndSwap(false, true) {
		return fmt.Errorf("health %s: monitor already running", m.name)
	}
	if len(m.checks) == 0 {
		<-ctx.Done()
		return nil
	}
	if m.params.Interval <= 0 {
		return fmt.Errorf("health %s: interval %v must be positive", m.name, m.params.Interval)
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	watched := make(chan error)
	m.startWatchers(ctx, &wg, watched)
	m.loop(ctx, watched)
	cancel()
	wg.Wait()
	return nil
}

// startWatchers runs Watch of every checker that is a Watcher until ctx ends.
func (m *Monitor) startWatchers(ctx context.Context, wg *sync.WaitGroup, out chan<- error) {
	for _, c := range m.checks {
		w, ok := c.(Watcher)
		if !ok {
			continue
		}
		wg.Go(func() {
			w.Watch(ctx, func(err error) {
				select {
				case out <- err:
				case <-ctx.Done():
				}
			})
		})
	}
}

// loop runs rounds until ctx ends; see Run.
func (m *Monitor) loop(ctx context.Context, watched <-chan error) {
	results := make(chan round, 1) // one round in flight at a time: sends never block
	planned := m.sched.first(time.Now())
	next := time.NewTimer(time.Until(planned))
	defer next.Stop()
	watchdog := time.NewTimer(0) // runs only while a round is in flight
	watchdog.Stop()
	defer watchdog.Stop()

	inFlight := false  // a round is running, maybe one the watchdog gave up on
	abandoned := false // the watchdog or a watcher gave up on the round in flight
	// planned is the grid slot the next round is set for, slot the one the
	// last round was: the schedule counts from slots, not from when the
	// timer fired, or its latency would push each round past the next
	// slot and cost a whole fast interval.
	var started, slot time.Time
	fast := true
	schedule := func() {
		now := time.Now()
		planned = m.sched.next(now, slot, fast)
		next.Reset(planned.Sub(now))
	}
	for {
		select {
		case <-ctx.Done():
			if inFlight {
				awaitRound(results)
			}
			return
		case <-next.C:
			if !inFlight {
				inFlight, abandoned, started, slot = true, false, time.Now(), planned
				watchdog.Reset(m.params.Timeout + max(m.params.Timeout, minWatchdogSlack))
				go m.runRound(ctx, results)
			}
		case r := <-results:
			inFlight = false
			watchdog.Stop()
			if !abandoned {
				fast = m.record(r)
			}
			schedule()
		case err := <-watched:
			abandoned = abandoned || inFlight
			fast = m.record(round{err: err, start: time.Now()})
			if !inFlight { // the mode may have changed: follow its grid
				schedule()
			}
		case now := <-watchdog.C:
			if !inFlight {
				continue // fired as the round reported
			}
			abandoned = true
			late := now.Sub(started)
			err := fmt.Errorf("no result %s after the round started: a check ignores its timeout", late.Round(time.Millisecond))
			fast = m.record(round{err: err, start: started, duration: late})
			watchdog.Reset(m.watchdogBound())
		}
	}
}

// awaitRound waits a bounded time for the round in flight to end after its
// context was cancelled. If it does not, it will still end on its own: its
// send into the buffered results channel never blocks.
func awaitRound(results <-chan round) {
	t := time.NewTimer(stopGrace)
	defer t.Stop()
	select {
	case <-results:
	case <-t.C:
	}
}

// watchdogBound is how often a wedged round counts as another failure: as
// often as rounds would have reported, a round every Interval that ends
// within Timeout, plus slack for cleanup and scheduling.
func (m *Monitor) watchdogBound() time.Duration {
	return m.params.Interval + m.params.Timeout + max(m.params.Timeout, minWatchdogSlack)
}

// runRound runs every check with the round's deadline and reports the outcome.
func (m *Monitor) runRound(ctx context.Context, out chan<- round) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, m.params.Timeout)
	defer cancel()
	err := m.checkAll(ctx)
	out <- round{err: err, start: start, duration: time.Since(start)}
}

// checkAll runs the checks concurrently and joins their errors. The first
// check runs on the calling goroutine, so a one-check service costs no extra
// goroutine per round.
func (m *Monitor) checkAll(ctx context.Context) error {
	if len(m.checks) == 1 {
		return m.checkOne(ctx, 0)
	}
	errs := make([]error, len(m.checks))
	var wg sync.WaitGroup
	for i := 1; i < len(m.checks); i++ {
		wg.Go(func() { errs[i] = m.checkOne(ctx, i) })
	}
	errs[0] = m.checkOne(ctx, 0)
	wg.Wait()
	return errors.Join(errs...)
}

// checkOne runs check i and reports it to the observer; finishing after the
// deadline is a failure even if the check claims success.
func (m *Monitor) checkOne(ctx context.Context, i int) error {
	start := time.Now()
	err := m.checks[i].Check(ctx)
	if ctx.Err() != nil {
		if err == nil {
			err = ctx.Err()
		}
		err = fmt.Errorf("timeout after %s: %w", m.params.Timeout, err)
	}
	m.observe(m.kinds[i], time.Since(start), err)
	return err
}

// record applies one round's outcome, calls onChange on a real transition
// and reports whether the next round is a fast one.
func (m *Monitor) record(r round) (fast bool) {
	m.mu.Lock()
	s := &m.status
	s.LastCheck = r.start.Add(r.duration)
	s.LastDuration = r.duration
	if r.err == nil {
		s.LastResult, s.LastError = ResultPass, ""
		s.Passes, s.Failures = s.Passes+1, 0
	} else {
		s.LastResult, s.LastError = ResultFail, oneLine(r.err)
		s.Passes, s.Failures = 0, s.Failures+1
		s.CheckFailures++
	}
	changed := m.transition(s)
	if changed || (!s.Up && s.Failures >= m.params.Fall) {
		s.decided = true
	}
	// Fast until the first decision, and while the last round disagrees with
	// the state: a pass while down, a failure while up.
	s.Fast = !s.decided || (s.Up && s.Failures > 0) || (!s.Up && s.Passes > 0)
	fast = s.Fast
	m.mu.Unlock()
	if changed {
		m.onChange()
	}
	return fast
}

// transition flips s.Up when a threshold is met and reports whether it did.
func (m *Monitor) transition(s *Status) bool {
	rise := m.params.Rise
	if s.Transitions == 0 && m.params.FirstRise > 0 {
		rise = m.params.FirstRise
	}
	switch {
	case !s.Up && s.Passes >= rise:
		s.Up = true
	case s.Up && s.Failures >= m.params.Fall:
		s.Up = false
	default:
		return false
	}
	s.Since = s.LastCheck
	s.Transitions++
	return true
}

// oneLine renders err on one line; errors.Join separates with newlines.
func oneLine(err error) string {
	return strings.ReplaceAll(err.Error(), "\n", "; ")
}

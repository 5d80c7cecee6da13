package health

import (
	"hash/fnv"
	"time"
)

// schedule decides when a monitor's rounds start.
//
// Rounds start on a grid anchored to the Unix epoch: the instants t with
// t ≡ phase (mod period). The phase comes from a hash of the service's
// name, so 10k services do not all probe in the same millisecond, and a
// service keeps its phase across restarts and reloads (a checked server sees
// a steady rhythm, and operators can tell which service probes when).
//
// The period is the interval, or the fast interval while the state is not
// known yet or a round disagreed with it. The fast grid shares the
// interval grid's phase (reduced modulo the fast interval), so when the fast
// interval divides the interval, the first fast round comes exactly one fast
// interval after the normal round that disagreed.
type schedule struct {
	interval time.Duration
	fast     time.Duration // at most interval
	phase    time.Duration // in [0, interval)
}

func newSchedule(name string, interval, fast time.Duration) schedule {
	if fast <= 0 || fast > interval {
		fast = interval
	}
	return schedule{interval: interval, fast: fast, phase: phaseOf(name, interval)}
}

// phaseQuantum is the step of the phases. Rounds of services whose phases
// fall in one step start together, so the process wakes once for them: at
// 10k services checked every second, 100 wake-ups a second instead of 10k,
// while the load stays flat at any resolution coarser than the step.
const phaseQuantum = 10 * time.Millisecond

// phaseOf spreads names evenly over [0, interval), in whole phaseQuantum
// steps.
func phaseOf(name string, interval time.Duration) time.Duration {
	h := fnv.New64a()
	h.Write([]byte(name))
	steps := uint64(interval / phaseQuantum)
	if steps < 2 {
		return 0 // too short an interval to spread
	}
	return time.Duration(h.Sum64()%steps) * phaseQuantum
}

// firstWithin bounds the wait for a first round: a fast interval up to this
// long puts the first round on the service's slot of the fast grid, a
// longer one (fast rounds switched off by a long fast interval) runs it at
// once.
const firstWithin = time.Second

// first returns when the first round after a start at now should run: on
// the service's first slot of the fast grid, so that many services started
// together (a restart, a reload) do not probe in one burst, and a server
// started with the agent gets a moment to listen before it is probed.
func (s schedule) first(now time.Time) time.Time {
	if s.fast > firstWithin {
		return now
	}
	return s.slot(now, true)
}

// period is the time between rounds in the given mode.
func (s schedule) period(fast bool) time.Duration {
	if fast {
		return s.fast
	}
	return s.interval
}

// next returns when the round after one that started at last should start,
// given that it cannot start before now: the first slot of the mode's grid
// at least one fast interval after last. Two rounds are never closer than
// the fast interval, also when the mode switches grids or the first round
// ran off the grid.
func (s schedule) next(now, last time.Time, fast bool) time.Time {
	earliest := last.Add(s.fast)
	if now.After(earliest) {
		earliest = now
	}
	return s.slot(earliest, fast)
}

// slot returns the first instant of the mode's grid at or after t.
func (s schedule) slot(t time.Time, fast bool) time.Time {
	p := s.period(fast)
	phase := s.phase % p
	rem := (t.UnixNano() - int64(phase)) % int64(p)
	if rem < 0 {
		rem += int64(p)
	}
	if rem == 0 {
		return t
	}
	return t.Add(p - time.Duration(rem))
}

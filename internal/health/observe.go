package health

import "time"

// Observer is told about every check a monitor runs: the checker's kind (see
// KindOf), how long the check took and its error (nil when it passed). It is
// called on the goroutine that ran the check, several at once when a service
// has several checks, and must not block. A check the watchdog gave up on is
// reported only if it ever returns.
type Observer func(kind string, took time.Duration, err error)

// Option configures a Monitor.
type Option func(*Monitor)

// WithObserver has the monitor report every check to o (metrics use it for
// check durations). A nil o is ignored.
func WithObserver(o Observer) Option {
	return func(m *Monitor) {
		if o != nil {
			m.observe = o
		}
	}
}

// Kinder is implemented by checkers that can name their kind.
type Kinder interface {
	Kind() string
}

// Kinds of the checkers in this package, as KindOf reports them.
const (
	KindHTTP    = "http"
	KindTCP     = "tcp"
	KindExec    = "exec"
	KindListen  = "listen"
	KindProcess = "process"
	KindOther   = "other" // a checker that does not implement Kinder
)

// KindOf names c's kind: its Kind() if it implements Kinder, else KindOther.
func KindOf(c Checker) string {
	if k, ok := c.(Kinder); ok {
		return k.Kind()
	}
	return KindOther
}

// Kind implements Kinder.
func (HTTP) Kind() string { return KindHTTP }

// Kind implements Kinder.
func (TCP) Kind() string { return KindTCP }

// Kind implements Kinder.
func (Exec) Kind() string { return KindExec }

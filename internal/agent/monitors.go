package agent

import (
	"context"
	"log/slog"
	"reflect"
	"sync"
	"time"

	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/internal/health"
)

// staleMargin is added to two check rounds before a service counts as stuck.
const staleMargin = 5 * time.Second

// monitors owns one health monitor goroutine per service. sync starts,
// keeps or restarts them to match the config; stop ends them all.
type monitors struct {
	log       *slog.Logger
	onChange  func()
	observe   func(service, kind string, took time.Duration) // may be nil
	firstRise int                                            // health.Params.FirstRise

	mu      sync.Mutex
	running map[string]*monitor
}

type monitor struct {
	svc     config.Service // the config it was started with
	started time.Time
	mon     *health.Monitor
	cancel  context.CancelFunc
	done    chan struct{}
}

func newMonitors(log *slog.Logger, onChange func(), observe func(service, kind string, took time.Duration)) *monitors {
	return &monitors{log: log, onChange: onChange, observe: observe, running: make(map[string]*monitor)}
}

// newBackendMonitors returns monitors for load-balancer backends: a new
// backend enters its table after its first passing check.
func newBackendMonitors(log *slog.Logger, onChange func(), observe func(service, kind string, took time.Duration)) *monitors {
	ms := newMonitors(log, onChange, observe)
	ms.firstRise = 1
	return ms
}

// sync makes the running monitors match services. A service whose checks
// and timing are unchanged keeps its monitor, and so its health state;
// MED, VIPs and the like do not restart it. It returns the services whose
// monitors were (re)started.
func (ms *monitors) sync(services []config.Service) (started []string) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	want := make(map[string]bool, len(services))
	for _, svc := range services {
		want[svc.Name] = true
		if m, ok := ms.running[svc.Name]; ok && sameHealth(m.svc, svc) {
			m.svc = svc
			continue
		}
		if m, ok := ms.running[svc.Name]; ok {
			m.stop()
		}
		ms.running[svc.Name] = ms.start(svc)
		started = append(started, svc.Name)
	}
	for name, m := range ms.running {
		if !want[name] {
			m.stop()
			delete(ms.running, name)
		}
	}
	return started
}

// start runs a monitor on its own lifetime: only stop (or stopAll) ends it.
func (ms *monitors) start(svc config.Service) *monitor {
	p := health.Params{Interval: svc.Interval, FastInterval: svc.FastInterval, Timeout: svc.Timeout,
		Rise: svc.Rise, Fall: svc.Fall, FirstRise: ms.firstRise}
	ctx, cancel := context.WithCancel(context.Background())
	var opts []health.Option
	if ms.observe != nil {
		opts = append(opts, health.WithObserver(func(kind string, took time.Duration, _ error) {
			ms.observe(svc.Name, kind, took)
		}))
	}
	mon := health.NewMonitor(svc.Name, checkers(svc.Checks), p, ms.onChange, opts...)
	m := &monitor{svc: svc, started: time.Now(), mon: mon, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(m.done)
		if err := m.mon.Run(ctx); err != nil {
			ms.log.Error("health monitor stopped", "event", "monitor_error", "service", svc.Name, "err", err)
		}
	}()
	return m
}

func (m *monitor) stop() {
	m.cancel()
	<-m.done
}

// stopAll ends every monitor and waits for them.
func (ms *monitors) stopAll() {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	for name, m := range ms.running {
		m.stop()
		delete(ms.running, name)
	}
}

// status returns a service's health; ok is false for an unknown service.
func (ms *monitors) status(name string) (health.Status, bool) {
	ms.mu.Lock()
	m, ok := ms.running[name]
	ms.mu.Unlock()
	if !ok {
		return health.Status{}, false
	}
	return m.mon.Status(), true
}

// stalest names a service with checks that has produced no result for
// longer than two rounds plus a margin, and for how long; "" if none.
func (ms *monitors) stalest(now time.Time) (string, time.Duration) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	for name, m := range ms.running {
		if len(m.svc.Checks) == 0 {
			continue
		}
		last := m.mon.Status().LastCheck
		if last.Before(m.started) {
			last = m.started
		}
		if age := now.Sub(last); age > 2*(m.svc.Interval+m.svc.Timeout)+staleMargin {
			return name, age
		}
	}
	return "", 0
}

func (ms *monitors) up(name string) bool {
	st, ok := ms.status(name)
	return ok && st.Up
}

// sameHealth reports whether two service configs check health the same way.
func sameHealth(a, b config.Service) bool {
	return reflect.DeepEqual(a.Checks, b.Checks) && a.Interval == b.Interval && a.FastInterval == b.FastInterval &&
		a.Timeout == b.Timeout && a.Rise == b.Rise && a.Fall == b.Fall
}

func checkers(cs []config.Check) []health.Checker {
	out := make([]health.Checker, 0, len(cs))
	for _, c := range cs {
		switch {
		case c.HTTP != nil:
			out = append(out, &health.HTTP{URL: c.HTTP.URL, StatusMin: c.HTTP.StatusMin, StatusMax: c.HTTP.StatusMax})
		case c.TCP != nil:
			out = append(out, &health.TCP{Address: c.TCP.Address})
		case c.Exec != nil:
			out = append(out, &health.Exec{Command: c.Exec.Command})
		case c.Listen != nil:
			out = append(out, health.Listen{Port: c.Listen.Port, Address: c.Listen.Address})
		case c.Process != nil:
			// A new Process per monitor: it holds the pidfd its Watch waits on.
			out = append(out, health.NewProcess(c.Process.PIDFile, c.Process.Name))
		}
	}
	return out
}

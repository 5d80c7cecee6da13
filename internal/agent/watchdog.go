package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/vipd/vipd/internal/systemd"
)

// watchdog sends systemd keep-alives at half its interval, but only while
// the daemon makes progress: the loop answers and every service's checks
// keep producing results. A wedged daemon is then restarted by systemd.
func (a *Agent) watchdog(ctx context.Context, n systemd.Notifier) error {
	interval := n.Watchdog()
	if interval <= 0 {
		return nil
	}
	tick := time.NewTicker(interval / 2)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		if err := a.progress(ctx, interval/4); err != nil {
			a.log.Warn("watchdog keep-alive withheld", "event", "watchdog", "err", err)
			continue
		}
		if err := n.Alive(); err != nil {
			a.log.Warn("watchdog keep-alive", "event", "watchdog", "err", err)
		}
	}
}

// progress reports why the daemon is stuck, or nil.
func (a *Agent) progress(ctx context.Context, answerWithin time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, answerWithin)
	defer cancel()
	if err := a.do(ctx, func(context.Context) error { return nil }); err != nil {
		return fmt.Errorf("the loop does not answer: %w", err)
	}
	if name, since := a.monitors.stalest(time.Now()); name != "" {
		return fmt.Errorf("service %s: no check result for %v", name, since.Truncate(time.Millisecond))
	}
	return nil
}

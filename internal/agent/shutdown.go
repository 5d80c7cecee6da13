package agent

import (
	"context"
	"errors"
	"time"

	"github.com/vipd/vipd/internal/bgp"
)

// shutdownTimeout bounds the work after a stop signal and the grace
// period: withdrawing and closing the sessions, then removing the rules and
// the addresses. Each step gets the whole bound, so one slow step cannot
// leave the next without time.
const shutdownTimeout = 10 * time.Second

// shutdown withdraws and closes the sessions before the rules and addresses
// go, so no router sends traffic to a node that no longer takes it.
func (a *Agent) shutdown() error {
	grace := a.cfg.BGP.ShutdownGrace
	if a.cfg.BGP.GracefulRestart {
		grace = 0
	}
	// Under systemd, ask for the time this takes, so the unit's stop
	// timeout follows the config instead of killing vipd halfway.
	_ = a.notify.Stopping()
	_ = a.notify.ExtendTimeout(grace + 3*a.stopTimeout)
	if a.cfg.BGP.GracefulRestart {
		// A planned restart: the routers keep the routes, so the
		// addresses and load-balancer rules stay to serve that traffic;
		// the next start takes them over. The mark goes first: however
		// the stop ends, the sessions close without a NOTIFICATION.
		markErr := a.store.MarkGracefulStop(time.Now())
		err := errors.Join(markErr, a.speaker.Stop(), a.bfd.Stop())
		a.log.Info("stopped for a graceful restart; routes and addresses left in place", "event", "shutdown")
		return err
	}
	if grace > 0 {
		a.gracePeriod(grace)
	}
	stopErr := a.speaker.Stop() // withdraws, then Cease
	bfdErr := a.bfd.Stop()      // after BGP, so BFD's AdminDown cannot race the withdrawal
	dpErr := a.closeXDP()
	if t := a.dataPlane.table; t != nil {
		ctx, cancel := context.WithTimeout(context.Background(), a.stopTimeout)
		dpErr = errors.Join(dpErr, t.Delete(ctx))
		cancel()
	}
	ctx, cancel := context.WithTimeout(context.Background(), a.stopTimeout)
	defer cancel()
	unbindErr := a.binder.Set(ctx, nil)
	a.log.Info("stopped", "event", "shutdown")
	return errors.Join(stopErr, bfdErr, dpErr, unbindErr)
}

// gracePeriod re-announces every route with GRACEFUL_SHUTDOWN (RFC 8326)
// and waits, so routers that honour it move traffic away before the
// withdrawal. Hurry ends the wait.
func (a *Agent) gracePeriod(grace time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), a.stopTimeout)
	defer cancel()
	routes := withGracefulShutdown(routesOf(a.decisions))
	if err := a.speaker.SetRoutes(ctx, routes); err != nil {
		a.log.Error("graceful shutdown: announce 65535:0", "event", "graceful_shutdown", "err", err)
		return
	}
	a.log.Info("graceful shutdown: announced 65535:0, waiting", "event", "graceful_shutdown",
		"grace", grace, "routes", len(routes))
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-t.C:
	case <-a.hurry:
		a.log.Info("graceful shutdown: wait cut short", "event", "graceful_shutdown")
	}
}

// restarting reports whether this start follows a graceful-restart stop
// recent enough that the routers still hold our routes, and clears the
// mark that stop left: a later start is not a restart. Without it the
// routers drop those routes as soon as the new sessions come up. It is
// read just before the speaker starts, so that a start refused earlier
// (listeners, state) leaves the mark to the next try.
func (a *Agent) restarting() bool {
	restarting, err := a.store.TakeGracefulStop(time.Now(), bgp.RestartTime)
	if err != nil {
		a.log.Warn("graceful restart: cannot read the mark of the last stop; starting as after a full stop",
			"event", "graceful_restart", "err", err)
		return false
	}
	restarting = restarting && a.cfg.BGP.GracefulRestart
	if restarting {
		a.log.Info("graceful restart: resuming after a graceful stop", "event", "graceful_restart")
	}
	return restarting
}

package agent

import (
	"context"
	"fmt"
	"slices"

	"github.com/vipd/vipd/internal/api"
	"github.com/vipd/vipd/internal/config"
)

// Drain withdraws (or, under on_down: degrade, degrades) a service's routes
// while its checks keep running. The drain is persisted.
func (a *Agent) Drain(ctx context.Context, name string) error {
	return a.setDrained(ctx, name, true)
}

// Undrain ends an operator's drain. It cannot override a maintenance file.
func (a *Agent) Undrain(ctx context.Context, name string) error {
	return a.setDrained(ctx, name, false)
}

func (a *Agent) setDrained(ctx context.Context, name string, drained bool) error {
	return a.do(ctx, func(context.Context) error {
		svc := a.cfg.Service(name)
		// Other sources' services (Kubernetes' namespace/name, load
		// balancers' lb/name) can be drained too, while they exist.
		if svc == nil && !a.serving(name) {
			return fmt.Errorf("service %q: %w", name, api.ErrNotFound)
		}
		if err := a.store.SetDrained(name, drained); err != nil {
			return err
		}
		a.mu.Lock()
		if drained {
			a.drained[name] = true
		} else {
			delete(a.drained, name)
		}
		a.mu.Unlock()
		a.log.Info("service drain", "event", "drain", "service", name, "drained", drained)
		if !drained && a.inMaintenance(name) {
			return fmt.Errorf("service %q stays drained while its maintenance file %s exists: %w",
				name, svc.MaintenanceFile, api.ErrConflict)
		}
		return nil
	})
}

// serving reports whether the last pass had a service called name, from
// any source (load balancers' included).
func (a *Agent) serving(name string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.ContainsFunc(a.services, func(s config.Service) bool { return s.Name == name }) ||
		slices.ContainsFunc(a.decisions, func(d decision) bool { return d.service == name })
}

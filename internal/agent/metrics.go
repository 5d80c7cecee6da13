package agent

import (
	"github.com/vipd/vipd/internal/lb"
	"github.com/vipd/vipd/internal/metrics"
)

// MetricsSnapshot implements metrics.Source.
func (a *Agent) MetricsSnapshot() metrics.Snapshot {
	a.mu.Lock()
	cfg, ds, sp := a.cfg, a.decisions, a.speaker
	drained := make(map[string]bool, len(ds))
	for _, d := range ds {
		drained[d.service] = d.reason == ReasonDrained || d.reason == ReasonMaintenance
	}
	a.mu.Unlock()

	var snap metrics.Snapshot
	bs := sp.Status()
	announced := make(map[string]int)
	for _, r := range bs.Routes {
		for _, p := range r.Peers {
			announced[p]++
		}
	}
	for _, p := range bs.Peers {
		snap.Peers = append(snap.Peers, metrics.Peer{
			Name: p.Name, Address: p.Address.String(), Up: p.State == "Established",
			StateChanges: p.StateChanges, UpdatesSent: p.UpdatesSent, Announced: announced[p.Name],
			Received: p.ReceivedPrefixes,
		})
	}
	for _, b := range bfdStatuses(a.bfd.Status(), cfg.BGP.Peers) {
		snap.BFD = append(snap.BFD, metrics.BFDSession{Peer: b.Peer, State: b.State, AuthFailures: b.AuthFailures, IgnoredDown: b.IgnoredDown})
	}
	for _, svc := range cfg.Services {
		hs, _ := a.monitors.status(svc.Name)
		snap.Services = append(snap.Services, metrics.Service{
			Name: svc.Name, Up: hs.Up, Drained: drained[svc.Name],
			Transitions: hs.Transitions, CheckFailures: hs.CheckFailures,
		})
	}
	for _, l := range a.loadBalancers() {
		announced, _ := a.lbDecision(l)
		ml := metrics.LoadBalancer{Name: l.Spec.Name, Announced: announced}
		for _, b := range l.Backends {
			ml.Backends = append(ml.Backends, metrics.Backend{Address: b.Key(),
				Up: a.backendState(l, b) == lb.BackendUp, CheckSeries: backendMonitorName(l, b)})
		}
		snap.LoadBalancers = append(snap.LoadBalancers, ml)
	}
	return snap
}

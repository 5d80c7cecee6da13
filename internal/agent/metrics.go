package agent

import (
	"github.com/vipd/vipd/internal/bgp"
	"github.com/vipd/vipd/internal/lb"
	"github.com/vipd/vipd/internal/metrics"
)

// MetricsSnapshot implements metrics.Source.
func (a *Agent) MetricsSnapshot() metrics.Snapshot {
	a.mu.Lock()
	cfg, services, verdicts, ds, sp, kw := a.cfg, a.services, a.verdicts, a.decisions, a.speaker, a.kube
	reasons := make(map[string]Reason, len(ds))
	for _, d := range ds {
		if _, ok := reasons[d.service]; !ok {
			reasons[d.service] = d.reason
		}
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
			Name: p.Name, Address: p.Address.String(), Up: p.State == bgp.StateEstablished,
			StateChanges: p.StateChanges, UpdatesSent: p.UpdatesSent, Announced: announced[p.Name],
			Received: p.ReceivedPrefixes, DiscardedUpdates: p.DiscardedUpdates,
		})
	}
	for _, b := range bfdStatuses(a.bfd.Status(), cfg.BGP.Peers) {
		snap.BFD = append(snap.BFD, metrics.BFDSession{Peer: b.Peer, State: b.State, AuthFailures: b.AuthFailures, IgnoredDown: b.IgnoredDown})
	}
	for _, svc := range services {
		hs, _ := a.monitors.status(svc.Name)
		if v, ok := verdicts[svc.Name]; ok {
			hs.Up = v.Up
		}
		r := reasons[svc.Name]
		snap.Services = append(snap.Services, metrics.Service{
			Name: svc.Name, Up: hs.Up, Drained: r == ReasonDrained || r == ReasonMaintenance, Reason: string(r),
			Transitions: hs.Transitions, CheckFailures: hs.CheckFailures,
		})
	}
	var ids []string // by snap.LoadBalancers' index
	for _, l := range a.loadBalancers() {
		ids = append(ids, l.UUID)
		announced, _ := a.lbDecision(l)
		ml := metrics.LoadBalancer{Name: l.Spec.Name, Announced: announced}
		for _, b := range l.Backends {
			ml.Backends = append(ml.Backends, metrics.Backend{Address: b.Key(),
				Up: a.backendState(l, b) == lb.BackendUp, CheckSeries: backendMonitorName(l, b)})
		}
		snap.LoadBalancers = append(snap.LoadBalancers, ml)
	}
	a.xdpMetrics(&snap, ids)
	if kw != nil {
		ks := kw.Status()
		snap.Kubernetes = &metrics.Kubernetes{Connected: ks.Connection.Connected, Synced: ks.Synced,
			Allocator: ks.IsLeader, Services: ks.Services}
	}
	if a.cluster != nil {
		cs := a.cluster.Status()
		snap.Cluster = &metrics.Cluster{Connected: cs.Connected, Synced: cs.Synced, Members: len(cs.Members), NameConflict: cs.NameConflict != "",
			LoadBalancers: cs.LoadBalancers, Serving: cs.Serving}
	}
	return snap
}

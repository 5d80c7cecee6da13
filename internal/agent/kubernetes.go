package agent

import (
	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/internal/kube"
)

// kubeSource turns the Kubernetes watcher's Services into a Snapshot.
type kubeSource struct {
	w     *kube.Watcher
	iface string
}

func (k kubeSource) Snapshot() Snapshot {
	snap := Snapshot{Verdicts: make(map[string]Verdict)}
	for _, s := range k.w.Services() {
		for _, r := range s.Refused {
			snap.Refused = append(snap.Refused, Refusal{Service: s.Name, Addr: r.Addr, Reason: Reason(kube.ReasonNotAllowed), Detail: r.Detail})
		}
		if len(s.Addrs) == 0 {
			continue
		}
		snap.Services = append(snap.Services, config.Service{Name: s.Name, VIPs: s.Addrs, Interface: k.iface, Bind: true, LocalPref: config.DefaultLocalPref})
		snap.Verdicts[s.Name] = Verdict{Up: s.Announce, Reason: Reason(s.Reason), Detail: s.Detail}
	}
	return snap
}

// Announced implements AnnounceObserver: Kubernetes records an Event.
func (k kubeSource) Announced(service string, announced bool, why string) {
	k.w.Announced(service, announced, why)
}

// newKubernetes makes the Kubernetes source if the config has one; serve
// runs it. A bad kubeconfig fails the start, before any session opens.
func (a *Agent) newKubernetes() error {
	k := a.cfg.Kubernetes
	if k == nil {
		return nil
	}
	w, err := kube.New(kube.Options{
		Config: *k, Allowed: a.cfg.BGP.AllowedPrefixes, Pools: a.cfg.Pools,
		Log: a.log, OnChange: a.wake.notify, Cache: a.store.Cache("kubernetes"),
	})
	if err != nil {
		return err
	}
	a.kube = w
	a.setSource("kubernetes", kubeSource{w: w, iface: k.Interface})
	return nil
}

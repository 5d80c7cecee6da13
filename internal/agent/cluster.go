package agent

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/vipd/vipd/internal/api"
	"github.com/vipd/vipd/internal/bgp"
	"github.com/vipd/vipd/internal/cluster"
	"github.com/vipd/vipd/internal/lb"
)

// clusterSource serves the cluster store's load balancers that pick this
// node, with their cluster-wide drains.
type clusterSource struct{ s *cluster.Store }

func (c clusterSource) Snapshot() Snapshot {
	snap := Snapshot{LoadBalancers: c.s.Serving()}
	for name := range c.s.Drained() {
		snap.Drained = append(snap.Drained, lbServicePrefix+name)
	}
	return snap
}

// newCluster makes the cluster store if the config has one, in place of
// the state file's load balancers; serve runs it.
func (a *Agent) newCluster() error {
	c := a.cfg.Cluster
	if c == nil {
		return nil
	}
	node, err := clusterNodeName(c.NodeName)
	if err != nil {
		return err
	}
	if local := a.lbs.List(); len(local) > 0 {
		a.log.Warn("the state file holds load balancers, which cluster mode does not serve: move them with vipd cluster import",
			"event", "start", "load_balancers", len(local))
	}
	s, err := cluster.New(cluster.Options{
		Config: *c, Node: node, Version: a.version, Pools: a.cfg.Pools,
		// Looked up at each create, through a.binder as it is by then.
		HostAddrs: func() (map[netip.Addr]string, error) { return a.binder.ForeignAddrs() },
		Log:       a.log, OnChange: a.wake.notify, Cache: a.store.Cache("cluster"),
	})
	if err != nil {
		return err
	}
	a.cluster = s
	a.setSource("loadbalancers", clusterSource{s})
	return nil
}

// clusterNodeName is cluster.node_name, or the host name when that makes
// a valid one.
func clusterNodeName(name string) (string, error) {
	if name != "" {
		return name, nil
	}
	host, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("cluster.node_name: unset, and the host name: %w", err)
	}
	host = strings.ToLower(host)
	if errs := validation.IsDNS1123Subdomain(host); len(errs) > 0 {
		return "", fmt.Errorf("cluster.node_name: unset, and the host name %q is not a node name (%s): set it", host, errs[0])
	}
	return host, nil
}

// clusterWrite runs a write to the cluster store, then waits until this
// node has applied it: its watch has seen the write and a pass has run.
func (a *Agent) clusterWrite(ctx context.Context, write func() (rev int64, err error)) error {
	start := time.Now()
	rev, err := write()
	a.metrics.ObserveClusterWrite(time.Since(start), err)
	if err != nil {
		if errors.Is(err, cluster.ErrUnavailable) {
			return fmt.Errorf("%w: %w", api.ErrUnavailable, err)
		}
		return err
	}
	if err := a.cluster.WaitRevision(ctx, rev); err != nil {
		return err
	}
	return a.do(ctx, func(context.Context) error { return nil })
}

// reportToCluster tells the other nodes, through this node's membership
// key, what this pass decided for the load balancers it serves and how its
// checks see their backends.
func (a *Agent) reportToCluster(d desired) {
	if a.cluster == nil {
		return
	}
	r := cluster.Report{Health: "no BGP session established", LoadBalancers: make(map[string]cluster.LBReport, len(d.lbs))}
	for _, p := range a.speaker.Status().Peers {
		if p.State == bgp.StateEstablished {
			r.Health = "ok"
			break
		}
	}
	for _, l := range d.lbs {
		announced, reason := a.lbDecision(l)
		lr := cluster.LBReport{Announced: announced, Reason: string(reason), Backends: make(map[string]lb.BackendState, len(l.Backends))}
		for _, b := range l.Backends {
			lr.Backends[b.UUID] = a.backendState(l, b)
		}
		r.LoadBalancers[l.UUID] = lr
	}
	a.cluster.Report(r)
}

// Cluster implements api.Backend.
func (a *Agent) Cluster() (api.ClusterStatus, error) {
	if a.cluster == nil {
		return api.ClusterStatus{}, fmt.Errorf("this node has no cluster section: %w", api.ErrNotFound)
	}
	st := a.cluster.Status()
	names := make(map[string]string)
	for _, l := range a.cluster.LoadBalancers() {
		names[l.UUID] = l.Spec.Name
	}
	out := api.ClusterStatus{
		Node: st.Node, Connected: st.Connected, Since: st.Since, LastError: st.LastError, Synced: st.Synced,
		Revision: st.Revision, NameConflict: st.NameConflict, LoadBalancers: st.LoadBalancers, Serving: st.Serving, Nodes: []api.ClusterNode{},
	}
	for _, m := range st.Members {
		n := api.ClusterNode{Name: m.Name, Version: m.Version, Labels: m.Labels, Started: m.Started, Health: m.Health, Announcing: []string{}}
		for id, lr := range m.LoadBalancers {
			if name, ok := names[id]; ok && lr.Announced {
				n.Announcing = append(n.Announcing, name)
			}
		}
		slices.Sort(n.Announcing)
		out.Nodes = append(out.Nodes, n)
	}
	return out, nil
}

// perNode is every member's view of l, from their reports.
func (a *Agent) perNode(l lb.LoadBalancer) []api.LoadBalancerNode {
	if a.cluster == nil {
		return nil
	}
	var out []api.LoadBalancerNode
	for _, m := range a.cluster.Members() {
		lr, ok := m.LoadBalancers[l.UUID]
		if !ok {
			continue
		}
		n := api.LoadBalancerNode{Node: m.Name, Announced: lr.Announced, Reason: lr.Reason, Backends: make(map[string]string, len(lr.Backends))}
		for id, st := range lr.Backends {
			n.Backends[id] = string(st)
		}
		out = append(out, n)
	}
	return out
}

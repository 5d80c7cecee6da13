package cluster

import (
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vipd/vipd/internal/lb"
	"github.com/vipd/vipd/internal/store"
)

// Import writes a node's stored load balancers into the cluster, keeping
// their UUIDs and addresses; drained names the drained ones. The cluster
// must hold no load balancer yet: merging two sets could hand one
// address to two of them. It returns how many it wrote; each one goes in
// a transaction of its own, so an interrupted import can be finished by
// running it again only after deleting what it wrote.
func (s *Store) Import(ctx context.Context, lbs []lb.LoadBalancer, drained map[string]bool) (int, error) {
	k := s.keys
	gctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	for _, prefix := range []string{k.lbs(), string(k) + "/name/", string(k) + "/address/"} {
		resp, err := s.client.Get(gctx, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			return 0, unavailable("read "+prefix, err)
		}
		if resp.Count > 0 {
			return 0, fmt.Errorf("cluster prefix %s is not empty (%d keys under %s): import only into a new cluster", string(k), resp.Count, prefix)
		}
	}
	for i, l := range lbs {
		v, err := store.MarshalLoadBalancer(l)
		if err != nil {
			return i, err
		}
		ops := []clientv3.Op{
			clientv3.OpPut(k.lb(l.UUID), string(v)),
			clientv3.OpPut(k.name(l.Spec.Name), l.UUID),
			clientv3.OpPut(k.address(l.Address()), l.UUID),
		}
		if drained[l.Spec.Name] {
			ops = append(ops, clientv3.OpPut(k.drain(l.Spec.Name), s.opts.Node))
		}
		resp, err := s.txn(ctx, []clientv3.Cmp{
			clientv3.Compare(clientv3.CreateRevision(k.lb(l.UUID)), "=", 0),
			clientv3.Compare(clientv3.CreateRevision(k.name(l.Spec.Name)), "=", 0),
			clientv3.Compare(clientv3.CreateRevision(k.address(l.Address())), "=", 0),
		}, ops...)
		if err != nil {
			return i, err
		}
		if !resp.Succeeded {
			return i, fmt.Errorf("load balancer %q (%s): its UUID, name or address appeared in the cluster during the import", l.Spec.Name, l.UUID)
		}
	}
	return len(lbs), nil
}

// Close closes the client of a store that was never Run (an import).
func (s *Store) Close() error { return s.client.Close() }

package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vipd/vipd/internal/lb"
	"github.com/vipd/vipd/internal/store"
)

// Create creates the load balancer spec asks for, with an address no
// other load balancer holds, even when creates race on other nodes: the
// transaction writes only if neither the name nor the address is taken
// by then, and a loser plans again on what etcd now holds. A repeat of an
// existing load balancer's create returns it with created false. It
// returns the revision of the write for WaitRevision.
func (s *Store) Create(ctx context.Context, spec lb.Spec) (l lb.LoadBalancer, created bool, rev int64, err error) {
	if err := s.writable(); err != nil {
		return lb.LoadBalancer{}, false, 0, err
	}
	for range maxAttempts {
		all, rev, err := s.read(ctx)
		if err != nil {
			return lb.LoadBalancer{}, false, 0, err
		}
		s.mu.Lock()
		reg := lb.NewView(s.pools, all)
		s.mu.Unlock()
		reg.SetHostAddrs(s.opts.HostAddrs)
		l, exists, err := reg.PlanCreate(spec)
		if err != nil || exists {
			return l, false, rev, err
		}
		v, err := store.MarshalLoadBalancer(l)
		if err != nil {
			return lb.LoadBalancer{}, false, 0, err
		}
		k := s.keys
		resp, err := s.txn(ctx, []clientv3.Cmp{
			clientv3.Compare(clientv3.CreateRevision(k.name(l.Spec.Name)), "=", 0),
			clientv3.Compare(clientv3.CreateRevision(k.address(l.Address())), "=", 0),
		}, clientv3.OpPut(k.lb(l.UUID), string(v)),
			clientv3.OpPut(k.name(l.Spec.Name), l.UUID),
			clientv3.OpPut(k.address(l.Address()), l.UUID))
		if err != nil {
			return lb.LoadBalancer{}, false, 0, err
		}
		if resp.Succeeded {
			return l, true, resp.Header.Revision, nil
		}
		// Another node took the name or the address since the read:
		// plan again, which finds out which.
	}
	return lb.LoadBalancer{}, false, 0, fmt.Errorf("create %q: %d attempts lost a race with other creates; try again: %w", spec.Name, maxAttempts, lb.ErrConflict)
}

// Delete deletes load balancer id with its name, address and drain, and
// returns it with the revision of the write.
func (s *Store) Delete(ctx context.Context, id string) (lb.LoadBalancer, int64, error) {
	return s.change(ctx, id, func(l lb.LoadBalancer) (lb.LoadBalancer, []clientv3.Op, error) {
		k := s.keys
		return l, []clientv3.Op{
			clientv3.OpDelete(k.lb(l.UUID)), clientv3.OpDelete(k.name(l.Spec.Name)),
			clientv3.OpDelete(k.address(l.Address())), clientv3.OpDelete(k.drain(l.Spec.Name)),
		}, nil
	})
}

// AddBackend adds backend b to load balancer id.
func (s *Store) AddBackend(ctx context.Context, id string, b lb.BackendSpec) (lb.LoadBalancer, int64, error) {
	return s.update(ctx, id, func(reg *lb.Registry) (lb.LoadBalancer, error) { return reg.PlanAddBackend(id, b) })
}

// RemoveBackend removes a backend from load balancer id.
func (s *Store) RemoveBackend(ctx context.Context, id, backendID string) (lb.LoadBalancer, int64, error) {
	return s.update(ctx, id, func(reg *lb.Registry) (lb.LoadBalancer, error) { return reg.PlanRemoveBackend(id, backendID) })
}

// update writes the load balancer plan makes from the stored one.
func (s *Store) update(ctx context.Context, id string, plan func(*lb.Registry) (lb.LoadBalancer, error)) (lb.LoadBalancer, int64, error) {
	return s.change(ctx, id, func(l lb.LoadBalancer) (lb.LoadBalancer, []clientv3.Op, error) {
		l, err := plan(lb.NewView(nil, []lb.LoadBalancer{l}))
		if err != nil {
			return l, nil, err
		}
		v, err := store.MarshalLoadBalancer(l)
		if err != nil {
			return l, nil, err
		}
		return l, []clientv3.Op{clientv3.OpPut(s.keys.lb(id), string(v))}, nil
	})
}

// change reads load balancer id and writes what edit makes of it, if the
// record is still the one read; else it reads again.
func (s *Store) change(ctx context.Context, id string, edit func(lb.LoadBalancer) (lb.LoadBalancer, []clientv3.Op, error)) (lb.LoadBalancer, int64, error) {
	if err := s.writable(); err != nil {
		return lb.LoadBalancer{}, 0, err
	}
	key := s.keys.lb(id)
	for range maxAttempts {
		gctx, cancel := context.WithTimeout(ctx, requestTimeout)
		resp, err := s.client.Get(gctx, key)
		cancel()
		if err != nil {
			return lb.LoadBalancer{}, 0, unavailable("read "+key, err)
		}
		if len(resp.Kvs) == 0 {
			return lb.LoadBalancer{}, 0, fmt.Errorf("load balancer %q: %w", id, lb.ErrNotFound)
		}
		kv := resp.Kvs[0]
		l, err := store.UnmarshalLoadBalancer(id, kv.Value)
		if err != nil {
			return lb.LoadBalancer{}, 0, fmt.Errorf("cluster store: %w", err)
		}
		l, ops, err := edit(l)
		if err != nil || len(ops) == 0 {
			return l, resp.Header.Revision, err
		}
		tresp, err := s.txn(ctx, []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", kv.ModRevision)}, ops...)
		if err != nil {
			return lb.LoadBalancer{}, 0, err
		}
		if tresp.Succeeded {
			return l, tresp.Header.Revision, nil
		}
	}
	return lb.LoadBalancer{}, 0, fmt.Errorf("load balancer %q: %d attempts lost a race with other changes; try again: %w", id, maxAttempts, lb.ErrConflict)
}

// SetDrained drains (or undrains) the load balancer called name on every
// node.
func (s *Store) SetDrained(ctx context.Context, name string, drained bool) (int64, error) {
	if err := s.writable(); err != nil {
		return 0, err
	}
	op := clientv3.OpDelete(s.keys.drain(name))
	if drained {
		op = clientv3.OpPut(s.keys.drain(name), s.opts.Node)
	}
	resp, err := s.txn(ctx, []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(s.keys.name(name)), ">", 0)}, op)
	if err != nil {
		return 0, err
	}
	if !resp.Succeeded {
		return 0, fmt.Errorf("load balancer %q: %w", name, lb.ErrNotFound)
	}
	return resp.Header.Revision, nil
}

// read returns every load balancer as etcd holds it now (a linearizable
// read), with its revision.
func (s *Store) read(ctx context.Context) ([]lb.LoadBalancer, int64, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	resp, err := s.client.Get(ctx, s.keys.lbs(), clientv3.WithPrefix())
	if err != nil {
		return nil, 0, unavailable("read "+s.keys.lbs(), err)
	}
	out := make([]lb.LoadBalancer, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		_, id := s.keys.kind(string(kv.Key))
		l, err := store.UnmarshalLoadBalancer(id, kv.Value)
		if err != nil {
			// Its name and address stay held by their keys; the plan
			// just cannot see it.
			s.log.Error("cluster store: a load balancer's record does not decode", "event", "cluster_record", "key", string(kv.Key), "err", err)
			continue
		}
		out = append(out, l)
	}
	return out, resp.Header.Revision, nil
}

func (s *Store) txn(ctx context.Context, cmps []clientv3.Cmp, ops ...clientv3.Op) (*clientv3.TxnResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	resp, err := s.client.Txn(ctx).If(cmps...).Then(ops...).Commit()
	if err != nil {
		return nil, unavailable("write", err)
	}
	return resp, nil
}

// writable refuses a write at once while etcd is known to be out of
// reach, rather than after a timeout.
func (s *Store) writable() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.connected {
		return fmt.Errorf("%w: no contact with etcd since %s (%s); this node serves the last state it knew", ErrUnavailable, s.since.UTC().Format(time.RFC3339), s.lastErr)
	}
	return nil
}

// unavailable wraps err in ErrUnavailable when it means etcd could not be
// reached or had no quorum, so the API answers 503 rather than 500.
func unavailable(what string, err error) error {
	code := status.Code(err)
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, rpctypes.ErrNoLeader) || errors.Is(err, rpctypes.ErrTimeout) ||
		code == codes.Unavailable || code == codes.DeadlineExceeded {
		return fmt.Errorf("%w: %s: %w", ErrUnavailable, what, err)
	}
	return fmt.Errorf("cluster store: %s: %w", what, err)
}

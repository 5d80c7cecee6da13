package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vipd/vipd/internal/lb"
)

// Member is one node of the cluster as it describes itself in its
// membership key.
type Member struct {
	Name    string            `json:"name"`
	Version string            `json:"version"`
	Labels  map[string]string `json:"labels,omitempty"`
	Started time.Time         `json:"started"`
	Report
}

// Report is what a node tells the others about itself: its health and,
// per load balancer it serves, whether it announces it and its own view
// of the backends (each node checks them itself).
type Report struct {
	// Health is "ok", or what keeps the node from serving (no BGP
	// session established).
	Health        string              `json:"health"`
	LoadBalancers map[string]LBReport `json:"load_balancers,omitempty"` // by UUID
}

// LBReport is one node's view of one load balancer.
type LBReport struct {
	Announced bool                       `json:"announced"`
	Reason    string                     `json:"reason,omitempty"`
	Backends  map[string]lb.BackendState `json:"backends,omitempty"` // by backend UUID
}

func decodeMember(v []byte) (Member, error) {
	var m Member
	if err := json.Unmarshal(v, &m); err != nil {
		return Member{}, err
	}
	return m, nil
}

// Report replaces this node's report; the membership key follows soon.
// It never blocks: the agent calls it from its loop.
func (s *Store) Report(r Report) {
	s.mu.Lock()
	same := reflect.DeepEqual(s.report, r)
	s.report = r
	s.mu.Unlock()
	if same {
		return
	}
	select {
	case s.reported <- struct{}{}:
	default: // a write is already due
	}
}

// membership keeps this node's key alive until ctx ends, then revokes its
// lease so the others see it leave at once. When the lease is lost (out of
// contact longer than member_ttl) it takes a new one.
func (s *Store) membership(ctx context.Context) {
	started := time.Now().UTC()
	s.keepTrying(ctx, "cluster_member", func() (bool, error) { return s.keepMember(ctx, started) })
}

// keepMember writes this node's key under a new lease and keeps both
// until ctx ends or the lease is lost; progressed says the key was
// written.
func (s *Store) keepMember(ctx context.Context, started time.Time) (progressed bool, err error) {
	gctx, cancel := context.WithTimeout(ctx, requestTimeout)
	lease, err := s.client.Grant(gctx, int64(max(s.opts.Config.MemberTTL/time.Second, 1)))
	cancel()
	if err != nil {
		return false, fmt.Errorf("lease: %w", err)
	}
	kctx, stop := context.WithCancel(ctx)
	defer stop()
	alive, err := s.client.KeepAlive(kctx, lease.ID)
	if err != nil {
		return false, fmt.Errorf("lease keepalive: %w", err)
	}
	write := func() error {
		s.mu.Lock()
		m := Member{Name: s.opts.Node, Version: s.opts.Version, Labels: s.opts.Config.Labels, Started: started, Report: s.report}
		s.mu.Unlock()
		v, err := json.Marshal(m)
		if err != nil {
			return err
		}
		pctx, cancel := context.WithTimeout(ctx, requestTimeout)
		defer cancel()
		if _, err := s.client.Put(pctx, s.keys.node(s.opts.Node), string(v), clientv3.WithLease(lease.ID)); err != nil {
			return fmt.Errorf("write %s: %w", s.keys.node(s.opts.Node), err)
		}
		return nil
	}
	if err := write(); err != nil {
		return false, err
	}
	for {
		select {
		case <-ctx.Done():
			// The client closes after this: revoke with a context of
			// our own.
			rctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_, _ = s.client.Revoke(rctx, lease.ID)
			return true, nil
		case _, ok := <-alive:
			if !ok {
				return true, fmt.Errorf("lease %x expired", lease.ID)
			}
		case <-s.reported:
			if err := write(); err != nil {
				return true, err
			}
		}
	}
}

// Status is the cluster store as this node sees it.
type Status struct {
	Node      string
	Connected bool // etcd answers with a quorum; if not, the last state known is served
	Since     time.Time
	LastError string
	Synced    bool  // the cache holds a full list
	Revision  int64 // the etcd revision the cache reflects
	Members   []Member
	// LoadBalancers counts every load balancer; Serving those this node
	// serves.
	LoadBalancers, Serving int
}

// Status returns the store's state, with the members sorted by name.
func (s *Store) Status() Status {
	members := s.Members()
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Status{
		Node: s.opts.Node, Connected: s.connected, Since: s.since, LastError: s.lastErr,
		Synced: s.synced, Revision: s.rev, Members: members, LoadBalancers: len(s.lbs),
	}
	for _, l := range s.lbs {
		if s.Selects(l) {
			st.Serving++
		}
	}
	return st
}

// Members returns the cluster's members, sorted by name.
func (s *Store) Members() []Member {
	s.mu.Lock()
	members := slices.Collect(maps.Values(s.members))
	s.mu.Unlock()
	slices.SortFunc(members, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return members
}

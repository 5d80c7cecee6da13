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

	"go.etcd.io/etcd/api/v3/mvccpb"
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
	s.mu.Lock()
	s.lease, s.keyLost = lease.ID, false
	s.pastLeases = append(s.pastLeases[max(0, len(s.pastLeases)-maxPastLeases+1):], lease.ID)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.lease = 0
		s.mu.Unlock()
	}()
	// Another node with this node's name overwrites the key; taking it
	// back once per member_ttl, not at once, keeps the two from writing
	// in a loop while each still sees the other (ownKey).
	retake := time.NewTicker(max(s.opts.Config.MemberTTL, time.Second))
	defer retake.Stop()
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
		case <-retake.C:
			s.mu.Lock()
			lost := s.keyLost
			s.keyLost = false
			s.mu.Unlock()
			if !lost {
				continue
			}
			if err := write(); err != nil {
				return true, err
			}
		}
	}
}

// ownKey notes a change of this node's membership key seen by the watch
// (s.mu held). A put under a lease that is not this node's means another
// vipd runs with the same node name: the key is taken back within
// member_ttl, and status says so while it goes on. A deleted key (the
// other one left and revoked its lease) is written again at once.
func (s *Store) ownKey(ev *clientv3.Event) {
	if s.lease == 0 {
		return // not written yet: a put seen now may be an earlier run's
	}
	if ev.Type == mvccpb.DELETE {
		s.keyLost = true
		select {
		case s.reported <- struct{}{}:
		default:
		}
		return
	}
	if slices.Contains(s.pastLeases, clientv3.LeaseID(ev.Kv.Lease)) {
		return // this node's own write, perhaps under an earlier lease
	}
	s.keyLost = true
	other, _ := decodeMember(ev.Kv.Value)
	if s.conflict.IsZero() || time.Since(s.conflict) > s.conflictHold() {
		s.log.Error("cluster store: another vipd runs with this node's name", "event", "cluster_name_conflict",
			"node", s.opts.Node, "other_started", other.Started, "other_version", other.Version)
	}
	s.conflict = time.Now()
	s.conflictStarted = other.Started
}

// maxPastLeases bounds how many of this node's leases are remembered: a
// lagging watch may show a put made under an earlier one.
const maxPastLeases = 8

// conflictHold is how long a name conflict is shown after the other node
// last wrote the key: both take it back once per member_ttl.
func (s *Store) conflictHold() time.Duration {
	return 3 * max(s.opts.Config.MemberTTL, time.Second)
}

// Status is the cluster store as this node sees it.
type Status struct {
	Node      string
	Connected bool // etcd answers with a quorum; if not, the last state known is served
	Since     time.Time
	LastError string
	Synced    bool  // the cache holds a full list
	Revision  int64 // the etcd revision the cache reflects
	// NameConflict says another node runs with this node's name; "" if
	// none was seen lately.
	NameConflict string
	Members      []Member
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
	if !s.conflict.IsZero() && time.Since(s.conflict) < s.conflictHold() {
		st.NameConflict = fmt.Sprintf("another vipd (started %s) runs with node name %q: give each node its own cluster.node_name",
			s.conflictStarted.Format(time.RFC3339), s.opts.Node)
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

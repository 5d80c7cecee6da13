package cluster

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vipd/vipd/internal/lb"
	"github.com/vipd/vipd/internal/store"
)

// follow keeps the cache current until ctx ends: a list, then a watch
// from the list's revision; when the watch fails (its revision was
// compacted, the member lost its leader) it lists again. Meanwhile the
// cache keeps what it had.
func (s *Store) follow(ctx context.Context) {
	s.keepTrying(ctx, "cluster_watch", func() (bool, error) {
		rev, err := s.list(ctx)
		if err != nil {
			return false, err
		}
		return true, s.watch(ctx, rev)
	})
}

// keepTrying runs attempt again and again until ctx ends, waiting after
// each failure from minBackoff, doubled up to maxBackoff; an attempt that
// got somewhere before it failed starts the wait over.
func (s *Store) keepTrying(ctx context.Context, event string, attempt func() (progressed bool, err error)) {
	backoff := minBackoff
	for {
		progressed, err := attempt()
		if ctx.Err() != nil {
			return
		}
		if progressed {
			backoff = minBackoff
		}
		s.log.Warn("cluster store: will retry", "event", event, "err", err, "retry_in", backoff)
		if !sleep(ctx, backoff) {
			return
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// list reads the whole prefix into the cache and returns its revision.
func (s *Store) list(ctx context.Context) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	resp, err := s.client.Get(ctx, s.keys.all(), clientv3.WithPrefix())
	if err != nil {
		return 0, fmt.Errorf("list %s: %w", s.keys.all(), err)
	}
	lbs := make(map[string]lb.LoadBalancer)
	drains := make(map[string]bool)
	members := make(map[string]Member)
	for _, kv := range resp.Kvs {
		s.put(kv, lbs, drains, members)
	}
	s.mu.Lock()
	changed := !reflect.DeepEqual(lbs, s.lbs) || !maps.Equal(drains, s.drains)
	s.lbs, s.drains, s.members = lbs, drains, members
	s.synced = true
	s.advance(resp.Header.Revision)
	s.mu.Unlock()
	s.contact(nil)
	if changed {
		s.changed()
	}
	return resp.Header.Revision, nil
}

// watch applies every change after rev until the watch fails or ctx ends.
func (s *Store) watch(ctx context.Context, rev int64) error {
	// Without a leader the member's view may be stale: end the watch and
	// list again, through a member that has one.
	ctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	for resp := range s.client.Watch(ctx, s.keys.all(), clientv3.WithPrefix(), clientv3.WithRev(rev+1), clientv3.WithProgressNotify()) {
		if err := resp.Err(); err != nil {
			return fmt.Errorf("watch %s: %w", s.keys.all(), err)
		}
		s.mu.Lock()
		changed := false
		for _, ev := range resp.Events {
			changed = s.apply(ev) || changed
		}
		s.advance(resp.Header.Revision)
		s.mu.Unlock()
		if changed {
			s.changed()
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return errors.New("watch ended")
}

// apply applies one event to the cache (s.mu held) and reports whether
// the load balancers or drains changed.
func (s *Store) apply(ev *clientv3.Event) bool {
	kind, id := s.keys.kind(string(ev.Kv.Key))
	deleted := ev.Type == mvccpb.DELETE
	switch kind {
	case "lb":
		before, had := s.lbs[id]
		if deleted {
			delete(s.lbs, id)
		} else {
			s.put(ev.Kv, s.lbs, s.drains, s.members)
		}
		after, has := s.lbs[id]
		return had != has || !reflect.DeepEqual(before, after)
	case "drain":
		had := s.drains[id]
		if deleted {
			delete(s.drains, id)
		} else {
			s.drains[id] = true
		}
		return had != s.drains[id]
	case "node":
		if id == s.opts.Node {
			s.ownKey(ev)
		}
		if deleted {
			delete(s.members, id)
		} else {
			s.put(ev.Kv, s.lbs, s.drains, s.members)
		}
	}
	return false
}

// put decodes one key into the maps it belongs in. A record that does not
// decode (a newer vipd's, or damaged) is logged and leaves the cache as it
// was: serving the old version beats dropping it.
func (s *Store) put(kv *mvccpb.KeyValue, lbs map[string]lb.LoadBalancer, drains map[string]bool, members map[string]Member) {
	kind, id := s.keys.kind(string(kv.Key))
	switch kind {
	case "lb":
		l, err := store.UnmarshalLoadBalancer(id, kv.Value)
		if err != nil {
			s.log.Error("cluster store: a load balancer's record does not decode; keeping what was known", "event", "cluster_record", "key", string(kv.Key), "err", err)
			return
		}
		lbs[id] = l
	case "drain":
		drains[id] = true
	case "node":
		m, err := decodeMember(kv.Value)
		if err != nil {
			s.log.Warn("cluster store: a member's record does not decode", "event", "cluster_record", "key", string(kv.Key), "err", err)
			return
		}
		members[id] = m
	}
}

// advance records that the cache reflects rev (s.mu held) and wakes the
// writers waiting for it.
func (s *Store) advance(rev int64) {
	if rev <= s.rev {
		return
	}
	s.rev = rev
	close(s.revChanged)
	s.revChanged = make(chan struct{})
}

// probe checks every probeInterval that etcd answers a linearizable read,
// which needs a quorum, until ctx ends.
func (s *Store) probe(ctx context.Context) {
	t := time.NewTicker(probeInterval)
	defer t.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, probeTimeout)
		_, err := s.client.Get(pctx, s.keys.node(s.opts.Node), clientv3.WithCountOnly())
		cancel()
		if ctx.Err() != nil {
			return
		}
		s.contact(err)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// contact records the outcome of a request to etcd, and logs when contact
// is lost or regained.
func (s *Store) contact(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ok := err == nil
	if err != nil {
		s.lastErr = err.Error()
	}
	if ok == s.connected {
		return
	}
	s.connected, s.since = ok, time.Now()
	if ok {
		s.log.Info("cluster store: in contact", "event", "cluster_contact", "connected", true)
		s.lastErr = ""
		return
	}
	s.log.Warn("cluster store: contact lost; serving the last state known", "event", "cluster_contact", "connected", false, "err", err)
}

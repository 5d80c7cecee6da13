package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"github.com/vipd/vipd/internal/lb"
	"github.com/vipd/vipd/internal/store"
)

// Cache keeps a node's copy of the cluster store across restarts, so a
// node that starts while etcd is out of reach serves what it last knew
// instead of nothing. store.Cache is one.
type Cache interface {
	Load() ([]byte, error)
	Save([]byte) error
}

// cacheRecord is the saved copy: the load balancers' records as etcd
// holds them, the drains, and the prefix they came from.
type cacheRecord struct {
	Prefix        string                     `json:"prefix"`
	Revision      int64                      `json:"revision"`
	LoadBalancers map[string]json.RawMessage `json:"load_balancers"` // by UUID
	Drains        []string                   `json:"drains"`
}

// restore fills the cache from the saved copy, if there is one of this
// prefix, until the first list replaces it. It runs in New, before
// anything else can read the cache.
func (s *Store) restore() {
	if s.opts.Cache == nil {
		return
	}
	data, err := s.opts.Cache.Load()
	if err != nil || data == nil {
		if err != nil {
			s.log.Error("cluster store: the local copy cannot be read", "event", "cluster_cache", "err", err)
		}
		return
	}
	var rec cacheRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		s.log.Error("cluster store: the local copy does not decode; ignored", "event", "cluster_cache", "err", err)
		return
	}
	if rec.Prefix != string(s.keys) {
		return // another cluster's
	}
	lbs := make(map[string]lb.LoadBalancer, len(rec.LoadBalancers))
	for id, v := range rec.LoadBalancers {
		l, err := store.UnmarshalLoadBalancer(id, v)
		if err != nil {
			s.log.Error("cluster store: a load balancer of the local copy does not decode; skipped", "event", "cluster_cache", "err", err)
			continue
		}
		lbs[id] = l
	}
	s.lbs = lbs
	for _, n := range rec.Drains {
		s.drains[n] = true
	}
	s.log.Info("cluster store: serving the local copy until etcd answers", "event", "cluster_cache",
		"load_balancers", len(lbs), "revision", rec.Revision)
}

// saveCache writes the cache whenever it changed, at most once a second,
// until ctx ends.
func (s *Store) saveCache(ctx context.Context) {
	if s.opts.Cache != nil {
		store.KeepSaved(ctx, s.dirty, s.save)
	}
}

func (s *Store) save() {
	s.mu.Lock()
	rec := cacheRecord{Prefix: string(s.keys), Revision: s.rev, LoadBalancers: make(map[string]json.RawMessage, len(s.lbs)),
		Drains: slices.Sorted(maps.Keys(s.drains))}
	var err error
	for id, l := range s.lbs {
		if rec.LoadBalancers[id], err = store.MarshalLoadBalancer(l); err != nil {
			break
		}
	}
	s.mu.Unlock()
	var data []byte
	if err == nil {
		data, err = json.Marshal(rec)
	}
	if err == nil {
		err = s.opts.Cache.Save(data)
	}
	if err != nil {
		s.log.Error("cluster store: the local copy cannot be saved", "event", "cluster_cache", "err", fmt.Errorf("save: %w", err))
	}
}

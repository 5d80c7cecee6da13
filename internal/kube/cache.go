package kube

import (
	"encoding/json"
	"fmt"
	"time"
)

// Cache keeps the Services this node served across restarts: until the
// first full list a restarted vipd serves them rather than nothing, so a
// graceful restart keeps the addresses bound and announced that the
// routers keep routing to. store.Cache is one.
type Cache interface {
	Load() ([]byte, error)
	Save([]byte) error
}

// cacheRecord is the saved copy: what plan last decided, for which node.
type cacheRecord struct {
	Node     string    `json:"node"`
	Saved    time.Time `json:"saved"`
	Services []Service `json:"services"`
}

// restore reads the saved copy of this node's Services, served until the
// first list. It runs in newWatcher, before anything reads w.
func (w *Watcher) restore() {
	data, err := w.cache.Load()
	if err != nil || data == nil {
		if err != nil {
			w.log.Error("kubernetes: the local copy cannot be read", "event", "kubernetes_cache", "err", err)
		}
		return
	}
	var rec cacheRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		w.log.Error("kubernetes: the local copy does not decode; ignored", "event", "kubernetes_cache", "err", err)
		return
	}
	if rec.Node != w.node {
		return // another node's
	}
	w.restored = rec.Services
	w.log.Info("kubernetes: serving the local copy until the first list", "event", "kubernetes_cache",
		"services", len(rec.Services), "saved", rec.Saved)
}

func (w *Watcher) save() {
	w.mu.Lock()
	rec := cacheRecord{Node: w.node, Saved: time.Now().UTC(), Services: w.planned}
	w.mu.Unlock()
	data, err := json.Marshal(rec)
	if err == nil {
		err = w.cache.Save(data)
	}
	if err != nil {
		w.log.Error("kubernetes: the local copy cannot be saved", "event", "kubernetes_cache", "err", fmt.Errorf("save: %w", err))
	}
}

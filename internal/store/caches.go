package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Cache is one source of desired state's copy of what it last knew (the
// cluster store's load balancers, the Kubernetes Services this node
// serves), kept across restarts so that the source can serve it until it
// reaches its origin again. Its zero value is not usable: get one from
// [Store.Cache].
type Cache struct {
	s    *Store
	name []byte
}

// Cache returns the copy kept under name.
func (s *Store) Cache(name string) Cache { return Cache{s: s, name: []byte(name)} }

// Load returns the copy Save stored last; nil if there is none.
func (c Cache) Load() ([]byte, error) {
	var out []byte
	err := c.s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketCaches).Get(c.name); v != nil {
			out = append([]byte(nil), v...)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("state db: read the %s cache: %w", c.name, err)
	}
	return out, nil
}

// Save replaces the copy.
func (c Cache) Save(v []byte) error {
	err := c.s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketCaches).Put(c.name, v)
	})
	if err != nil {
		return fmt.Errorf("state db: save the %s cache: %w", c.name, err)
	}
	return nil
}

// SaveInterval spaces a source's writes of its copy: a burst of changes
// costs one.
const SaveInterval = time.Second

// KeepSaved calls save whenever dirty fires, at most once per
// SaveInterval, until ctx ends; then once more if dirty fired meanwhile.
// A source runs it to keep its Cache current.
func KeepSaved(ctx context.Context, dirty <-chan struct{}, save func()) {
	saveIfDirty := func() {
		select {
		case <-dirty:
			save()
		default:
		}
	}
	for {
		select {
		case <-ctx.Done():
			saveIfDirty()
			return
		case <-dirty:
			save()
		}
		t := time.NewTimer(SaveInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			saveIfDirty()
			return
		case <-t.C:
		}
	}
}

// dropLegacyBuckets removes buckets earlier versions wrote and this one
// no longer reads: "cluster" held the cluster store's copy before
// bucketCaches did (a cache: the next save rewrites it).
func dropLegacyBuckets(tx *bolt.Tx) error {
	if err := tx.DeleteBucket([]byte("cluster")); err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
		return fmt.Errorf("drop bucket cluster: %w", err)
	}
	return nil
}

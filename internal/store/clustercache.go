package store

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
)

var keyClusterCache = []byte("cache")

// ClusterCache returns this node's last copy of the cluster store, as
// SaveClusterCache stored it; nil if there is none.
func (s *Store) ClusterCache() ([]byte, error) {
	var out []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketClusterCache).Get(keyClusterCache); v != nil {
			out = append([]byte(nil), v...)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("state db: read the cluster cache: %w", err)
	}
	return out, nil
}

// SaveClusterCache replaces this node's copy of the cluster store, which
// a restart serves until etcd answers.
func (s *Store) SaveClusterCache(v []byte) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketClusterCache).Put(keyClusterCache, v)
	})
	if err != nil {
		return fmt.Errorf("state db: save the cluster cache: %w", err)
	}
	return nil
}

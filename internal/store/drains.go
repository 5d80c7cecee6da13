package store

import (
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Drained returns the names of the services an operator drained.
func (s *Store) Drained() ([]string, error) {
	var out []string
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketDrains).ForEach(func(k, _ []byte) error {
			out = append(out, string(k))
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("state db: read drains: %w", err)
	}
	return out, nil
}

// SetDrained records (drained true) or clears an operator's drain of a service.
func (s *Store) SetDrained(service string, drained bool) error {
	if service == "" {
		return errors.New("state db: drain: empty service name")
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDrains)
		if drained {
			return b.Put([]byte(service), nil)
		}
		return b.Delete([]byte(service))
	})
	if err != nil {
		return fmt.Errorf("state db: drain %s: %w", service, err)
	}
	return nil
}

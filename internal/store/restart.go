package store

import (
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// keyGracefulStop holds the time (RFC 3339, nanoseconds) of the last stop
// that left vipd's routes at the routers for a BGP graceful restart.
var keyGracefulStop = []byte("graceful_stop")

// MarkGracefulStop records that vipd stopped at t and left its routes at
// the routers (RFC 4724), so that the next start can tell them it is the
// restart they are waiting for.
func (s *Store) MarkGracefulStop(t time.Time) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRestart).Put(keyGracefulStop, []byte(t.UTC().Format(time.RFC3339Nano)))
	})
	if err != nil {
		return fmt.Errorf("state db: record graceful stop: %w", err)
	}
	return nil
}

// TakeGracefulStop clears the mark MarkGracefulStop left and reports
// whether it was made at most maxAge before now. An older mark is stale:
// the routers have flushed the routes by then, so there is no restart to
// finish. A mark from the future (the clock was set back) or one that does
// not parse gives no age to trust and counts as stale too. Either way the
// mark is gone afterwards, so it serves one start only.
func (s *Store) TakeGracefulStop(now time.Time, maxAge time.Duration) (bool, error) {
	var raw []byte
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRestart)
		if v := b.Get(keyGracefulStop); v != nil {
			raw = append([]byte(nil), v...) // v is only valid inside the transaction
		}
		return b.Delete(keyGracefulStop)
	})
	if err != nil {
		return false, fmt.Errorf("state db: take graceful stop: %w", err)
	}
	if raw == nil {
		return false, nil
	}
	stopped, err := time.Parse(time.RFC3339Nano, string(raw))
	if err != nil {
		return false, nil
	}
	age := now.Sub(stopped)
	return age >= 0 && age <= maxAge, nil
}

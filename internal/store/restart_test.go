package store

import (
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestGracefulStopMark(t *testing.T) {
	stop := time.Date(2026, 12, 6, 4, 0, 0, 0, time.UTC)
	const maxAge = 120 * time.Second
	for _, tc := range []struct {
		name  string
		mark  bool
		start time.Time
		want  bool
	}{
		{"no mark", false, stop.Add(time.Second), false},
		{"fresh", true, stop.Add(3 * time.Second), true},
		{"at the bound", true, stop.Add(maxAge), true},
		{"stale", true, stop.Add(maxAge + time.Millisecond), false},
		{"from the future", true, stop.Add(-time.Second), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			if tc.mark {
				if err := s.MarkGracefulStop(stop); err != nil {
					t.Fatal(err)
				}
			}
			// The mark is left by one process and read by the next.
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if s, err = Open(dir); err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			got, err := s.TakeGracefulStop(tc.start, maxAge)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("TakeGracefulStop = %v, want %v", got, tc.want)
			}
			again, err := s.TakeGracefulStop(tc.start, maxAge)
			if err != nil || again {
				t.Errorf("second TakeGracefulStop = %v, %v; want false: the mark serves one start", again, err)
			}
		})
	}
}

func TestGracefulStopMarkUnreadable(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRestart).Put(keyGracefulStop, []byte("not a time"))
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.TakeGracefulStop(time.Now(), time.Hour)
	if err != nil || got {
		t.Errorf("TakeGracefulStop of a garbled mark = %v, %v; want false, nil", got, err)
	}
	if v := s.readRaw(t, bucketRestart, keyGracefulStop); v != nil {
		t.Errorf("garbled mark left behind: %q", v)
	}
}

func (s *Store) readRaw(t *testing.T, bucket, key []byte) []byte {
	t.Helper()
	var out []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucket).Get(key); v != nil {
			out = append([]byte(nil), v...)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

package store

import (
	"bytes"
	"context"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestCaches: each source's copy is kept under its name, survives a
// reopen, and the bucket an earlier version kept the cluster's copy in is
// dropped.
func TestCaches(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	if v, err := s.Cache("cluster").Load(); err != nil || v != nil {
		t.Fatalf("empty cache: %q, %v", v, err)
	}
	if err := s.Cache("cluster").Save([]byte("lbs")); err != nil {
		t.Fatal(err)
	}
	if err := s.Cache("kubernetes").Save([]byte("services")); err != nil {
		t.Fatal(err)
	}
	if err := s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("cluster"))
		if err != nil {
			return err
		}
		return b.Put([]byte("cache"), []byte("old"))
	}); err != nil {
		t.Fatal(err)
	}
	closeT(t, s)

	s = openT(t, dir)
	defer closeT(t, s)
	for name, want := range map[string]string{"cluster": "lbs", "kubernetes": "services"} {
		if v, err := s.Cache(name).Load(); err != nil || !bytes.Equal(v, []byte(want)) {
			t.Errorf("%s cache: %q, %v; want %q", name, v, err, want)
		}
	}
	if err := s.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket([]byte("cluster")) != nil {
			t.Error("the legacy cluster bucket is still there")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestKeepSaved: a burst of changes costs one save per interval, and a
// change pending when ctx ends is saved then.
func TestKeepSaved(t *testing.T) {
	dirty := make(chan struct{}, 1)
	saves := make(chan time.Time, 10)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); KeepSaved(ctx, dirty, func() { saves <- time.Now() }) }()
	mark := func() {
		select {
		case dirty <- struct{}{}:
		default:
		}
	}
	next := func() time.Time {
		t.Helper()
		select {
		case at := <-saves:
			return at
		case <-time.After(10 * SaveInterval):
			t.Fatal("no save")
			return time.Time{}
		}
	}
	mark()
	first := next() // the first change is saved at once
	for range 5 {
		mark() // a burst
	}
	if gap := next().Sub(first); gap < SaveInterval {
		t.Errorf("saved again %v after the first save, want at least %v", gap, SaveInterval)
	}
	if len(saves) != 0 {
		t.Errorf("the burst cost %d more saves, want one", len(saves)+1)
	}
	mark()
	cancel()
	<-done
	next() // the change pending at the end
}

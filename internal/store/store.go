// Package store keeps vipd's persistent state in a bbolt file inside
// state_dir.
//
// Each kind of record lives in its own top-level bucket (addresses, drains,
// load balancers, the graceful-restart mark, the sources' copies of what
// they last knew). Open creates missing buckets, so adding a kind means
// adding a bucket name to [buckets] and a file with its methods. A meta
// bucket holds the schema version, so a file written by a newer vipd is
// refused instead of misread.
//
// The bbolt file lock makes a state_dir single-owner: a second Open, from
// this process or another, fails within [lockTimeout] with an [*InUseError].
// A corrupt or foreign file is an error naming its path; Open never resets
// it.
package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

const (
	dbFileName  = "vipd.db"
	lockTimeout = time.Second

	// schemaVersion is bumped whenever a bucket's key or value layout
	// changes incompatibly.
	schemaVersion = 1
)

var (
	bucketMeta      = []byte("meta")
	bucketAddresses = []byte("addresses")
	bucketDrains    = []byte("drains")
	// bucketLoadBalancers maps a load balancer's UUID to its JSON record.
	bucketLoadBalancers = []byte("loadbalancers")
	// bucketRestart holds what one run leaves for the next (restart.go).
	bucketRestart = []byte("restart")
	// bucketCaches holds the sources' copies of what they last knew, by
	// source (caches.go).
	bucketCaches = []byte("caches")

	// buckets lists every top-level bucket Open makes sure exists.
	buckets = [][]byte{bucketMeta, bucketAddresses, bucketDrains, bucketLoadBalancers, bucketRestart, bucketCaches}

	keySchema = []byte("schema")

	errNewerSchema = errors.New("written by a newer vipd")
)

// Store is vipd's state database. Its methods are safe for concurrent use;
// every write is one atomic bbolt transaction.
type Store struct {
	dir string
	db  *bolt.DB
}

// Open opens (creating if needed) the state database in dir. It creates
// dir with mode 0700 if it is missing.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state_dir %s: %w", dir, err)
	}
	path := filepath.Join(dir, dbFileName)
	db, err := openDB(path)
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, &InUseError{Dir: dir, PID: readHolderPID(dir)}
	}
	var pathErr *fs.PathError
	if errors.As(err, &pathErr) { // could not open the file at all
		return nil, fmt.Errorf("state db %s: %w", path, err)
	}
	if err != nil {
		return nil, corruptError(path, err)
	}
	if err := verify(db); err != nil {
		_ = db.Close()
		return nil, corruptError(path, err)
	}
	if err := initSchema(db); err != nil {
		_ = db.Close()
		if errors.Is(err, errNewerSchema) {
			return nil, fmt.Errorf("state db %s: %w", path, err)
		}
		return nil, corruptError(path, err)
	}
	if err := writePIDFile(dir); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("state_dir %s: %w", dir, err)
	}
	return &Store{dir: dir, db: db}, nil
}

// openDB opens the bbolt file, turning a panic on a damaged file into an
// error: bbolt trusts page contents and may panic on garbage.
func openDB(path string) (db *bolt.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("unreadable database: %v", r)
		}
	}()
	return bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout})
}

// corruptError says which file is bad and what the operator can do, so a
// damaged state is never mistaken for an empty one.
func corruptError(path string, err error) error {
	return fmt.Errorf("state db %s: %w; vipd will not reset it: move the file aside to start with empty state", path, err)
}

// initSchema creates missing buckets and checks the schema version.
// verify has already walked every page, so nothing here can trip on
// damage.
func initSchema(db *bolt.DB) error {
	return db.Update(func(tx *bolt.Tx) error {
		if err := checkSchema(tx); err != nil {
			return err
		}
		for _, name := range buckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		if err := dropLegacyBuckets(tx); err != nil {
			return err
		}
		version := []byte(strconv.Itoa(schemaVersion))
		return tx.Bucket(bucketMeta).Put(keySchema, version)
	})
}

// checkSchema accepts a fresh file or one written by this schema version
// (or an older one, once migrations exist).
func checkSchema(tx *bolt.Tx) error {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		fresh := true
		_ = tx.ForEach(func([]byte, *bolt.Bucket) error {
			fresh = false
			return nil
		})
		if !fresh {
			return errors.New("not a vipd state database (no meta bucket)")
		}
		return nil
	}
	raw := meta.Get(keySchema)
	version, err := strconv.Atoi(string(raw))
	if err != nil {
		return fmt.Errorf("bad schema version %q", raw)
	}
	if version > schemaVersion {
		return fmt.Errorf("schema version %d, this vipd knows %d: %w", version, schemaVersion, errNewerSchema)
	}
	return nil
}

// verify walks every page once at start, so damage shows up here as an
// error naming the file instead of as a panic in a later read.
func verify(db *bolt.DB) error {
	return db.View(func(tx *bolt.Tx) error {
		var first error
		for err := range tx.Check() { // drain: Check's goroutine ends when the channel closes
			if first == nil {
				first = err
			}
		}
		if first != nil {
			return fmt.Errorf("integrity check: %w", first)
		}
		return nil
	})
}

// Close releases the database and its lock.
func (s *Store) Close() error {
	removePIDFile(s.dir)
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("state db %s: close: %w", s.db.Path(), err)
	}
	return nil
}

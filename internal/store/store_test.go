package store

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	bolt "go.etcd.io/bbolt"
)

func openT(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	return s
}

func closeT(t *testing.T, s *Store) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func TestOpenCreatesPrivateDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "state")
	s := openT(t, dir)
	defer closeT(t, s)

	info, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Mode().Perm(); got != 0o700 {
		t.Errorf("state_dir mode = %v, want 0700", got)
	}
	info, err = os.Stat(filepath.Join(dir, dbFileName))
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Mode().Perm(); got != 0o600 {
		t.Errorf("db mode = %v, want 0600", got)
	}
	if got := readHolderPID(dir); got != os.Getpid() {
		t.Errorf("pid file names %d, want %d", got, os.Getpid())
	}
}

func TestCloseRemovesPIDFile(t *testing.T) {
	dir := t.TempDir()
	closeT(t, openT(t, dir))
	if _, err := os.Stat(filepath.Join(dir, pidFileName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pid file after Close: %v, want it gone", err)
	}
}

func TestSecondOpenInProcessFailsFast(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	defer closeT(t, s)

	start := time.Now()
	s2, err := Open(dir)
	if err == nil {
		s2.Close()
		t.Fatal("second Open succeeded, want in-use error")
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("second Open took %v, want about %v", took, lockTimeout)
	}
	var inUse *InUseError
	if !errors.As(err, &inUse) {
		t.Fatalf("error %v is not an *InUseError", err)
	}
	want := "state_dir " + dir + " is in use by another vipd (pid " + itoa(os.Getpid()) + ")"
	if err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
}

func TestInUseErrorWithoutPID(t *testing.T) {
	err := &InUseError{Dir: "/x"}
	if got, want := err.Error(), "state_dir /x is in use by another vipd (pid unknown)"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestRecordsSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	a := mustAddress(t, "192.0.2.1", "lo")
	b := mustAddress(t, "2001:db8::1", "lo")
	c := mustAddress(t, "192.0.2.1", "eth0")

	s := openT(t, dir)
	if err := s.RecordAddresses(a, b); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordAddresses(c, a); err != nil { // a again: idempotent
		t.Fatal(err)
	}
	closeT(t, s)

	s = openT(t, dir)
	got, err := s.AddedAddresses()
	if err != nil {
		t.Fatal(err)
	}
	want := []Address{c, a, b} // sorted by key: "eth0 …" < "lo 192…" < "lo 2001…"
	if diff := cmp.Diff(want, got, cmpAddr); diff != "" {
		t.Errorf("after reopen (-want +got):\n%s", diff)
	}

	if err := s.ForgetAddresses(a, mustAddress(t, "198.51.100.1", "lo")); err != nil {
		t.Fatal(err)
	}
	closeT(t, s)

	s = openT(t, dir)
	defer closeT(t, s)
	got, err = s.AddedAddresses()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]Address{c, b}, got, cmpAddr); diff != "" {
		t.Errorf("after forget and reopen (-want +got):\n%s", diff)
	}
}

func TestRecordRejectsInvalidAddress(t *testing.T) {
	s := openT(t, t.TempDir())
	defer closeT(t, s)

	good := mustAddress(t, "192.0.2.1", "lo")
	tests := []struct {
		name string
		addr Address
		want string
	}{
		{"zero address", Address{Interface: "lo"}, "invalid IP address"},
		{"zone", Address{Addr: netipMust(t, "fe80::1%eth0"), Interface: "eth0"}, "has a zone"},
		{"no interface", Address{Addr: good.Addr}, "no interface"},
		{"long interface", Address{Addr: good.Addr, Interface: "abcdefghijklmnop"}, "longer than 15"},
		{"space in interface", Address{Addr: good.Addr, Interface: "a b"}, "has a space"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// good comes first: a bad item must abort the whole batch.
			err := s.RecordAddresses(good, tc.addr)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("RecordAddresses error = %v, want it to contain %q", err, tc.want)
			}
			got, err := s.AddedAddresses()
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 0 {
				t.Errorf("recorded %v after a rejected batch, want nothing", got)
			}
		})
	}
}

// TestOpenRefusesDamagedFile checks that Open never resets a file it
// cannot trust: it names the path and leaves the bytes alone.
func TestOpenRefusesDamagedFile(t *testing.T) {
	tests := []struct {
		name  string
		write func(t *testing.T, path string)
		want  string
	}{
		{"garbage", writeGarbage, "state db"},
		{"truncated", writeTruncated, "state db"},
		{"foreign bbolt file", writeForeignDB, "not a vipd state database"},
		{"damaged data page", writeDamagedPage, "integrity check"},
		{"newer schema", writeNewerSchema, "written by a newer vipd"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, dbFileName)
			tc.write(t, path)
			before, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}

			s, err := Open(dir)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded on a damaged file")
			}
			for _, part := range []string{path, tc.want} {
				if !strings.Contains(err.Error(), part) {
					t.Errorf("error %q does not mention %q", err, part)
				}
			}
			after, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(before, after) {
				t.Error("Open changed the damaged file")
			}
		})
	}
}

func TestOpenRefusesDirectoryAsDB(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, dbFileName)
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir)
	if err == nil {
		s.Close()
		t.Fatal("Open succeeded with a directory as the db file")
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not mention %q", err, path)
	}
}

func writeGarbage(t *testing.T, path string) {
	rng := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 4*4096)
	for i := range buf {
		buf[i] = byte(rng.Uint32())
	}
	writeFile(t, path, buf)
}

func writeTruncated(t *testing.T, path string) {
	dir := filepath.Dir(path)
	s := openT(t, dir)
	if err := s.RecordAddresses(mustAddress(t, "192.0.2.1", "lo")); err != nil {
		t.Fatal(err)
	}
	closeT(t, s)
	if err := os.Truncate(path, 100); err != nil {
		t.Fatal(err)
	}
}

// writeDamagedPage overwrites the addresses bucket's root page, which
// bbolt only reads when that bucket is walked.
func writeDamagedPage(t *testing.T, path string) {
	dir := filepath.Dir(path)
	s := openT(t, dir)
	for i := range 100 { // enough keys that the bucket gets its own page
		if err := s.RecordAddresses(mustAddress(t, "192.0.2."+itoa(i), "lo")); err != nil {
			t.Fatal(err)
		}
	}
	closeT(t, s)

	var root, pageSize int64
	withRawDB(t, path, func(tx *bolt.Tx) error {
		root = int64(tx.Bucket(bucketAddresses).Root())
		pageSize = int64(tx.DB().Info().PageSize)
		return nil
	})
	if root == 0 {
		t.Fatal("addresses bucket is inline; the test needs it on its own page")
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	junk := bytes.Repeat([]byte{0xa5}, 64)
	if _, err := f.WriteAt(junk, root*pageSize); err != nil {
		t.Fatal(err)
	}
}

func writeForeignDB(t *testing.T, path string) {
	withRawDB(t, path, func(tx *bolt.Tx) error {
		_, err := tx.CreateBucket([]byte("somebody-else"))
		return err
	})
}

func writeNewerSchema(t *testing.T, path string) {
	withRawDB(t, path, func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket(bucketMeta)
		if err != nil {
			return err
		}
		return b.Put(keySchema, []byte(itoa(schemaVersion+1)))
	})
}

func withRawDB(t *testing.T, path string, fn func(*bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

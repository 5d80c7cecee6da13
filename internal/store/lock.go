package store

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// pidFileName names the file that tells a refused vipd who holds the lock.
// It is advice only: the bbolt file lock is what guards the state.
const pidFileName = "vipd.pid"

// InUseError reports that another process holds state_dir's lock.
type InUseError struct {
	Dir string
	PID int // 0 when the holder is unknown
}

func (e *InUseError) Error() string {
	holder := "pid unknown"
	if e.PID > 0 {
		holder = "pid " + strconv.Itoa(e.PID)
	}
	return fmt.Sprintf("state_dir %s is in use by another vipd (%s)", e.Dir, holder)
}

// writePIDFile records this process as the lock holder. It writes a temp
// file and renames it so a reader never sees a partial pid.
func writePIDFile(dir string) error {
	tmp, err := os.CreateTemp(dir, pidFileName+".tmp*")
	if err != nil {
		return fmt.Errorf("pid file: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	_, err = fmt.Fprintf(tmp, "%d\n", os.Getpid())
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("pid file: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, pidFileName)); err != nil {
		return fmt.Errorf("pid file: %w", err)
	}
	return nil
}

// readHolderPID returns the pid in dir's pid file, or 0 if it cannot tell.
func readHolderPID(dir string) int {
	f, err := os.Open(filepath.Join(dir, pidFileName))
	if err != nil {
		return 0
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, 32))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}

// removePIDFile deletes the pid file if it still names this process.
func removePIDFile(dir string) {
	if readHolderPID(dir) == os.Getpid() {
		_ = os.Remove(filepath.Join(dir, pidFileName))
	}
}

package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
	"time"
)

// Limits of the files vipd reads at start and at every reload. A config
// path pointing at /dev/zero must not fill memory, and a FIFO must not
// block a reload (and with it every API write) forever.
const (
	MaxConfigSize = 16 << 20 // 100k VIPs take about 2 MiB
	maxSecretSize = 4 << 10  // keys and tokens are far shorter
	readTimeout   = 5 * time.Second
)

// ErrFileTooLarge is wrapped by ReadFile's error for a file over its limit.
var ErrFileTooLarge = errors.New("file too large")

// ReadFile reads the regular file at path, refusing anything else (a FIFO,
// a device, a directory), a file over limit bytes, and a read that takes
// longer than a few seconds (a hung network file system). Errors name the
// file.
func ReadFile(path string, limit int64) ([]byte, error) {
	// O_NONBLOCK makes opening a FIFO return at once instead of waiting
	// for a writer; the Stat below then refuses it. It has no effect on
	// reads from a regular file.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is %s, not a regular file", path, fileKind(st.Mode()))
	}
	if st.Size() > limit {
		return nil, fmt.Errorf("%s holds %d bytes, more than the %d allowed: %w", path, st.Size(), limit, ErrFileTooLarge)
	}
	type result struct {
		data []byte
		err  error
	}
	done := make(chan result, 1)
	go func() {
		// The file may grow after Stat: read one byte past the limit to
		// notice.
		data, err := io.ReadAll(io.LimitReader(f, limit+1))
		done <- result{data, err}
	}()
	timer := time.NewTimer(readTimeout)
	defer timer.Stop()
	select {
	case r := <-done:
		switch {
		case r.err != nil:
			return nil, fmt.Errorf("read %s: %w", path, r.err)
		case int64(len(r.data)) > limit:
			return nil, fmt.Errorf("%s holds more than the %d bytes allowed: %w", path, limit, ErrFileTooLarge)
		}
		return r.data, nil
	case <-timer.C:
		// The reader goroutine ends when the read does; the deferred
		// Close makes that sooner where the file system allows.
		return nil, fmt.Errorf("read %s: no answer after %s", path, readTimeout)
	}
}

func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	case m&fs.ModeSocket != 0:
		return "a socket"
	}
	return "a file of type " + m.Type().String()
}

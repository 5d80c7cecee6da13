package health

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Watcher is a Checker that also notices failure between rounds. A Monitor
// runs Watch on a goroutine of its own until ctx ends; Watch calls fail, which
// may block until the monitor takes the error, each time the target that the
// last Check found goes away.
type Watcher interface {
	Checker
	Watch(ctx context.Context, fail func(error))
}

// Process passes while a process runs: the one whose PID is in PIDFile, or
// else the oldest process whose name (/proc/PID/comm) is Name. Check finds
// the process and holds a pidfd on it; Watch waits on that pidfd, so the
// process's exit fails the service at that instant, not at the next round.
// Each Check re-reads the pid file, so a restarted process is picked up.
//
// Make it with NewProcess; a Process belongs to one monitor.
type Process struct {
	PIDFile string
	Name    string

	armed chan struct{} // 1 slot: Check holds a new pidfd for Watch

	mu      sync.Mutex
	held    *os.File // pidfd of the process found last; nil if none
	pid     int
	exited  bool // Watch saw held's process exit
	stopped bool // Watch has returned: hold nothing more
}

var _ Watcher = (*Process)(nil)

// NewProcess returns a process check on the PID in pidFile or, if pidFile is
// "", on the process called name.
func NewProcess(pidFile, name string) *Process {
	return &Process{PIDFile: pidFile, Name: name, armed: make(chan struct{}, 1)}
}

// Kind implements Kinder.
func (*Process) Kind() string { return KindProcess }

// Check implements Checker.
func (p *Process) Check(context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	alive := p.held != nil && !p.exited && !exited(p.held)
	if p.PIDFile == "" && alive {
		return nil // a process found by name is held until it exits
	}
	pid, err := p.find()
	if err != nil {
		p.release()
		return fmt.Errorf("process check: %w", err)
	}
	if alive && p.pid == pid {
		return nil
	}
	p.release()
	if p.stopped {
		return errors.New("process check: stopped")
	}
	f, err := openPidfd(pid)
	if err != nil {
		return fmt.Errorf("process check: %s: %w", p.target(pid), err)
	}
	p.held, p.pid, p.exited = f, pid, false
	select {
	case p.armed <- struct{}{}:
	default: // Watch has a wake-up pending already
	}
	return nil
}

// target names what p checks, for errors.
func (p *Process) target(pid int) string {
	if p.PIDFile != "" {
		return fmt.Sprintf("process %d from %s", pid, p.PIDFile)
	}
	return fmt.Sprintf("process %d (%s)", pid, p.Name)
}

// release closes the held pidfd, which also ends Watch's wait on it.
func (p *Process) release() {
	if p.held != nil {
		p.held.Close()
		p.held, p.pid, p.exited = nil, 0, false
	}
}

// find returns the PID the check is about.
func (p *Process) find() (int, error) {
	if p.PIDFile != "" {
		return readPIDFile(p.PIDFile)
	}
	return findByName("/proc", p.Name)
}

// Watch implements Watcher.
func (p *Process) Watch(ctx context.Context, fail func(error)) {
	defer func() {
		p.mu.Lock()
		p.release()
		p.stopped = true
		p.mu.Unlock()
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.armed:
		}
		p.mu.Lock()
		f, pid := p.held, p.pid
		p.mu.Unlock()
		if f == nil || !waitExit(ctx, f) {
			continue // released (a newer pidfd is armed) or stopping
		}
		p.mu.Lock()
		current := p.held == f
		if current {
			p.exited = true
		}
		p.mu.Unlock()
		if current {
			fail(fmt.Errorf("process check: %s exited", p.target(pid)))
		}
	}
}

// openPidfd opens a non-blocking pidfd on pid as a file the runtime's poller
// can wait on. A PID that names a zombie (exited, not yet reaped) fails.
func openPidfd(pid int) (*os.File, error) {
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if errors.Is(err, unix.ESRCH) {
		return nil, errors.New("no such process")
	}
	if err != nil {
		return nil, fmt.Errorf("pidfd_open: %w", err)
	}
	// NewFile sees the non-blocking fd and registers it with the poller.
	f := os.NewFile(uintptr(fd), "pidfd:"+strconv.Itoa(pid))
	if exited(f) {
		f.Close()
		return nil, errors.New("has exited")
	}
	return f, nil
}

// exited reports whether the pidfd is readable: its process has exited.
func exited(f *os.File) bool {
	rc, err := f.SyscallConn()
	if err != nil {
		return true
	}
	var done bool
	if err := rc.Control(func(fd uintptr) { done = pollIn(int(fd)) }); err != nil {
		return true
	}
	return done
}

func pollIn(fd int) bool {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for range 100 { // EINTR only
		n, err := unix.Poll(fds, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		return err != nil || n > 0
	}
	return false
}

// waitExit blocks until f's process exits (true), or f is closed or ctx
// ends (false). The wait is the runtime poller's: no thread, no timer.
func waitExit(ctx context.Context, f *os.File) bool {
	rc, err := f.SyscallConn()
	if err != nil {
		return false
	}
	stop := context.AfterFunc(ctx, func() { f.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	var done bool
	err = rc.Read(func(fd uintptr) bool {
		done = pollIn(int(fd))
		return done
	})
	return err == nil && done
}

// maxPIDFile bounds what is read of a pid file.
const maxPIDFile = 64

// readPIDFile reads a PID written as decimal text, like every daemon writes.
func readPIDFile(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("pid file: %w", err)
	}
	defer f.Close()
	buf := make([]byte, maxPIDFile)
	n, err := f.Read(buf)
	if err != nil && n == 0 {
		return 0, fmt.Errorf("pid file %s: empty", path)
	}
	text := strings.TrimSpace(string(buf[:n]))
	pid, err := strconv.Atoi(text)
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("pid file %s: want a process ID, got %q", path, text)
	}
	return pid, nil
}

// findByName returns the oldest live process whose comm is name: for a
// daemon that forks workers under its own name, that is the master, the one
// whose exit ends the service.
func findByName(proc, name string) (int, error) {
	comms, err := filepath.Glob(filepath.Join(proc, "[0-9]*", "comm"))
	if err != nil {
		return 0, err
	}
	best, bestStart := 0, uint64(0)
	for _, c := range comms {
		b, err := os.ReadFile(c)
		if err != nil || string(bytes.TrimSuffix(b, []byte("\n"))) != name {
			continue // gone since the glob, or another process
		}
		pid, err := strconv.Atoi(filepath.Base(filepath.Dir(c)))
		if err != nil {
			continue
		}
		start, ok := liveStartTime(proc, pid)
		if ok && (best == 0 || start < bestStart) {
			best, bestStart = pid, start
		}
	}
	if best == 0 {
		return 0, fmt.Errorf("no process named %q", name)
	}
	return best, nil
}

// liveStartTime returns pid's start time (in clock ticks since boot) from
// /proc/PID/stat; ok is false for a zombie or a process that is gone.
func liveStartTime(proc string, pid int) (uint64, bool) {
	b, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, false
	}
	// The command name is in parentheses and may hold spaces: fields are
	// counted after its closing one. State is field 3, starttime field 22.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	fields := strings.Fields(string(b[i+1:]))
	if len(fields) < 20 || fields[0] == "Z" || fields[0] == "X" {
		return 0, false
	}
	start, err := strconv.ParseUint(fields[19], 10, 64)
	return start, err == nil
}

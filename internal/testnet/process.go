package testnet

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrStillRunning is returned by Process.Wait when the process outlives the
// timeout.
var ErrStillRunning = errors.New("process still running")

// Process is a long-running program this world started in a namespace,
// with stdout and stderr captured in a log file. It is safe for concurrent
// use.
type Process struct {
	name    string // for messages: "n1/vipd"
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed once the process has been reaped

	mu      sync.Mutex
	waitErr error // cmd.Wait's result, once done is closed
}

// startProcess runs argv inside namespace ns. The process outlives ctx:
// only Stop, Signal or the world's Close end it.
func startProcess(name, ns, logPath string, argv []string) (*Process, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%s: log: %w", name, err)
	}
	defer logFile.Close() // the child holds its own copy
	// ip netns exec execs argv in place, so the PID is the program's own.
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, argv...)...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	// Its own process group keeps terminal signals meant for the test
	// away. No Pdeathsig: the kernel sends it when the forking OS thread
	// ends, and Go ends threads whose goroutine exits locked (as
	// Host.inNamespace's do), which killed daemons in the middle of tests.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: start %s: %w", name, argv[0], err)
	}
	p := &Process{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go p.reap()
	return p, nil
}

// reap waits for the process; it ends when the process does.
func (p *Process) reap() {
	err := p.cmd.Wait()
	p.mu.Lock()
	p.waitErr = err
	p.mu.Unlock()
	close(p.done)
}

// Name says which member and program this is, e.g. "n1/vipd".
func (p *Process) Name() string { return p.name }

// PID is the process id.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Args is the program's command line (without the namespace wrapper).
func (p *Process) Args() []string { return append([]string(nil), p.cmd.Args[4:]...) }

// LogPath is the file that holds the process's stdout and stderr.
func (p *Process) LogPath() string { return p.logPath }

// Log returns everything the process has written so far.
func (p *Process) Log() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(%s: %v)", p.name, err)
	}
	return string(b)
}

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Signal sends sig to the process alone (not its group).
func (p *Process) Signal(sig os.Signal) error {
	if p.Exited() {
		return fmt.Errorf("%s: signal %v: %w", p.name, sig, os.ErrProcessDone)
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("%s: signal %v: %w", p.name, sig, err)
	}
	return nil
}

// Wait waits up to timeout for the process to end. It returns nil after a
// zero exit, an *exec.ExitError after any other, and ErrStillRunning when
// the process outlives the timeout.
func (p *Process) Wait(timeout time.Duration) error {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-p.done:
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.waitErr
	case <-timer.C:
		return fmt.Errorf("%s: pid %d after %v: %w", p.name, p.PID(), timeout, ErrStillRunning)
	}
}

// ExitCode is the exit code of an ended process, -1 while it runs or when
// a signal ended it.
func (p *Process) ExitCode() int {
	if !p.Exited() {
		return -1
	}
	return p.cmd.ProcessState.ExitCode()
}

// Stop sends SIGTERM, waits up to timeout, then sends SIGKILL. It returns
// nil once the process is gone, whatever its exit status; stopping an ended
// process does nothing.
func (p *Process) Stop(timeout time.Duration) error {
	if p.Exited() {
		return nil
	}
	_ = p.Signal(syscall.SIGTERM) // it may end in between; Wait tells
	if err := p.Wait(timeout); !errors.Is(err, ErrStillRunning) {
		return nil
	}
	_ = p.Signal(syscall.SIGKILL)
	if err := p.Wait(10 * time.Second); errors.Is(err, ErrStillRunning) {
		return err
	}
	return nil
}

// tail returns the last n lines of the log, for failure reports.
func (p *Process) tail(n int) string {
	lines := strings.Split(strings.TrimRight(p.Log(), "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("... (%d earlier lines in %s)", len(lines)-n, p.logPath)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

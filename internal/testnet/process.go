package testnet

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ErrStillRunning is returned by Process.Wait when the process outlives the
// timeout.
var ErrStillRunning = errors.New("process still running")

// Process is a long-running program this world started in a namespace,
// with stdout and stderr captured in a log file. It is safe for concurrent
// use.
//
// A world loaded from its record (Load) adopts the processes an earlier
// program started: it cannot reap them or learn their exit codes, and it
// acts on one only while its PID still names the process recorded (same
// start time), so a reused PID is never signalled.
type Process struct {
	name    string   // for messages: "n1/vipd"
	args    []string // the program's command line, without the namespace wrapper
	logPath string
	pid     int
	started uint64 // start time in clock ticks after boot (/proc/PID/stat)

	cmd  *exec.Cmd     // nil for an adopted process
	done chan struct{} // closed once a child has been reaped; nil for an adopted one

	mu      sync.Mutex
	waitErr error // cmd.Wait's result, once done is closed
}

// startProcess runs argv inside namespace ns. The process outlives ctx and
// the program that started it: only Stop, Signal or the world's Close end
// it.
func startProcess(name, ns, logPath string, argv []string) (*Process, error) {
	// ip netns exec execs argv in place, so the PID is the program's own.
	return spawn(name, logPath, argv, append([]string{"ip", "netns", "exec", ns}, argv...))
}

// spawn runs command, which runs the program argv (command itself, or a
// wrapper that execs argv in place), with its output appended to logPath.
func spawn(name, logPath string, argv, command []string) (*Process, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%s: log: %w", name, err)
	}
	defer logFile.Close() // the child holds its own copy
	cmd := exec.Command(command[0], command[1:]...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	// Its own session keeps terminal signals meant for the test away and
	// lets a lab's daemons outlive the terminal that started them. No
	// Pdeathsig: the kernel sends it when the forking OS thread ends, and
	// Go ends threads whose goroutine exits locked (as Host.inNamespace's
	// do), which killed daemons in the middle of tests.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: start %s: %w", name, argv[0], err)
	}
	p := &Process{name: name, args: slices.Clone(argv), logPath: logPath, pid: cmd.Process.Pid, cmd: cmd, done: make(chan struct{})}
	// Not reaped yet, so /proc still has it even if it has already ended.
	started, _, err := procStat(p.pid)
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	p.started = started
	go p.reap()
	return p, nil
}

// adoptProcess takes over a process another program started, as its
// record describes it.
func adoptProcess(rec processRecord) *Process {
	return &Process{name: rec.Name, args: rec.Args, logPath: rec.Log, pid: rec.PID, started: rec.Started}
}

// procStat returns the start time (clock ticks after boot) and the state
// letter of process pid from /proc/PID/stat.
func procStat(pid int) (started uint64, state byte, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, fmt.Errorf("pid %d: %w", pid, err)
	}
	return parseProcStat(string(b))
}

// parseProcStat reads fields 3 (state) and 22 (starttime) of a
// /proc/PID/stat line. Field 2, the command name, is in parentheses and
// may hold spaces and parentheses itself, so counting starts after the
// last ")".
func parseProcStat(line string) (started uint64, state byte, err error) {
	i := strings.LastIndexByte(line, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("proc stat %q: no command name", line)
	}
	fields := strings.Fields(line[i+1:]) // fields[0] is field 3
	if len(fields) < 20 || len(fields[0]) != 1 {
		return 0, 0, fmt.Errorf("proc stat %q: too short", line)
	}
	started, err = strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("proc stat: start time: %w", err)
	}
	return started, fields[0][0], nil
}

// alive reports whether an adopted process still runs: its PID names a
// live (not zombie) process that started when the recorded one did.
func (p *Process) alive() bool {
	started, state, err := procStat(p.pid)
	return err == nil && started == p.started && state != 'Z'
}

// pidfd opens a descriptor for an adopted process that stays bound to it
// whatever becomes of its PID. It returns os.ErrProcessDone once the
// process has ended; a PID now used by another process counts as ended.
func (p *Process) pidfd() (int, error) {
	fd, err := unix.PidfdOpen(p.pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return -1, os.ErrProcessDone
	}
	if err != nil {
		return -1, fmt.Errorf("pidfd_open %d: %w", p.pid, err)
	}
	// Checked after opening: the descriptor names the process checked.
	if !p.alive() {
		unix.Close(fd)
		return -1, os.ErrProcessDone
	}
	return fd, nil
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
func (p *Process) PID() int { return p.pid }

// Args is the program's command line (without the namespace wrapper).
func (p *Process) Args() []string { return append([]string(nil), p.args...) }

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
	if p.cmd == nil {
		return !p.alive()
	}
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Signal sends sig to the process alone (not its group).
func (p *Process) Signal(sig os.Signal) error {
	if p.cmd == nil {
		return p.signalAdopted(sig)
	}
	if p.Exited() {
		return fmt.Errorf("%s: signal %v: %w", p.name, sig, os.ErrProcessDone)
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("%s: signal %v: %w", p.name, sig, err)
	}
	return nil
}

func (p *Process) signalAdopted(sig os.Signal) error {
	s, ok := sig.(syscall.Signal)
	if !ok {
		return fmt.Errorf("%s: signal %v: not a syscall.Signal", p.name, sig)
	}
	fd, err := p.pidfd()
	if err != nil {
		return fmt.Errorf("%s: signal %v: %w", p.name, sig, err)
	}
	defer unix.Close(fd)
	err = unix.PidfdSendSignal(fd, s, nil, 0)
	if errors.Is(err, unix.ESRCH) {
		err = os.ErrProcessDone
	}
	if err != nil {
		return fmt.Errorf("%s: signal %v: %w", p.name, sig, err)
	}
	return nil
}

// Wait waits up to timeout for the process to end. It returns nil after a
// zero exit, an *exec.ExitError after any other, and ErrStillRunning when
// the process outlives the timeout. For an adopted process it returns nil
// once the process has ended, whatever its exit.
func (p *Process) Wait(timeout time.Duration) error {
	if p.cmd == nil {
		return p.waitAdopted(timeout)
	}
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

// waitAdopted polls a pidfd, which becomes readable when its process ends.
func (p *Process) waitAdopted(timeout time.Duration) error {
	fd, err := p.pidfd()
	if errors.Is(err, os.ErrProcessDone) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s: wait: %w", p.name, err)
	}
	defer unix.Close(fd)
	deadline := time.Now().Add(timeout)
	for {
		wait := max(time.Until(deadline), 0)
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, int(wait.Milliseconds()))
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return fmt.Errorf("%s: wait: %w", p.name, err)
		case n > 0:
			return nil
		}
		return fmt.Errorf("%s: pid %d after %v: %w", p.name, p.pid, timeout, ErrStillRunning)
	}
}

// ExitCode is the exit code of an ended process, -1 while it runs, when a
// signal ended it, or when it was adopted (its parent got the code).
func (p *Process) ExitCode() int {
	if p.cmd == nil || !p.Exited() {
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

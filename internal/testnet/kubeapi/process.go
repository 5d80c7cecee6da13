package kubeapi

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// stopGrace is how long a process gets to end after SIGTERM before SIGKILL.
const stopGrace = 15 * time.Second

// process is etcd or kube-apiserver, started by this package and known by
// its PID only to it: stop signals that PID and nothing else.
type process struct {
	name    string
	logPath string
	pid     int
	done    chan struct{} // closed once the process has been reaped
	err     error         // cmd.Wait's result, set before done is closed
}

// startProcess runs argv with its output appended to logPath. The process
// is tied to this program: if the program dies without Close, the kernel
// kills it (Pdeathsig), so a crashed test leaves no control plane behind.
func startProcess(name, logPath string, argv []string) (*process, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%s: log: %w", name, err)
	}
	p := &process{name: name, logPath: logPath, done: make(chan struct{})}
	started := make(chan error, 1)
	// The kernel sends Pdeathsig when the *thread* that forked the child
	// ends, and Go ends threads whose goroutine exits locked (testnet's
	// namespace helpers do). So the fork happens on a thread this goroutine
	// keeps locked, and so alive, until the child has been reaped.
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		defer logFile.Close() // the child holds its own copy
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Stdout, cmd.Stderr = logFile, logFile
		// Its own session keeps a terminal's Ctrl-C meant for the test away
		// from it; Close ends it in order instead.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		p.pid = cmd.Process.Pid
		started <- nil
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("%s: start %s: %w", name, argv[0], err)
	}
	return p, nil
}

// exited returns a non-nil error once the process has ended.
func (p *process) exited() error {
	select {
	case <-p.done:
		return fmt.Errorf("%s (pid %d) exited: %v; log %s:\n%s", p.name, p.pid, p.err, p.logPath, p.tail(20))
	default:
		return nil
	}
}

// stop sends SIGTERM, then SIGKILL after stopGrace, and waits until the
// process has been reaped. Stopping an ended process does nothing.
func (p *process) stop() error {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		select {
		case <-p.done:
			return nil
		default:
		}
		// Not reaped yet, so the PID is still ours: no one else can get it.
		if err := syscall.Kill(p.pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("%s (pid %d): %v: %w", p.name, p.pid, sig, err)
		}
		select {
		case <-p.done:
			return nil
		case <-time.After(stopGrace):
		}
	}
	return fmt.Errorf("%s (pid %d): still running %v after SIGKILL", p.name, p.pid, stopGrace)
}

// tail returns the last n lines of the process's log.
func (p *process) tail(n int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// freePorts returns n distinct TCP ports free on 127.0.0.1 right now.
// Another program could take one before we bind it; Start then fails
// cleanly rather than talking to a stranger, as etcd and kube-apiserver
// refuse to start on a port in use.
func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// loopback returns 127.0.0.1:port.
func loopback(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

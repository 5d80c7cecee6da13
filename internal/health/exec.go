package health

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

const (
	// maxExecOutput caps how much of a command's stdout and stderr is kept.
	maxExecOutput = 4 << 10
	// maxErrorLine caps the output line quoted in a failed check's error.
	maxErrorLine = 200
	// execWaitDelay bounds the wait for output pipes after the process group
	// is dead, in case a process that left the group still holds them.
	execWaitDelay = 100 * time.Millisecond
)

// Exec passes when Command exits 0. The command runs in its own process group.
// When the check's deadline passes the whole group gets SIGKILL, and after the
// command exits whatever it left behind in its group is killed too, so a check
// can never leave processes running. It has a value receiver, so Exec and
// *Exec are both Checkers.
type Exec struct {
	Command []string
}

var _ Checker = Exec{}

// Check implements Checker.
func (e Exec) Check(ctx context.Context) error {
	if len(e.Command) == 0 {
		return errors.New("exec: empty command")
	}
	var stdout, stderr cappedBuffer
	cmd := exec.CommandContext(ctx, e.Command[0], e.Command[1:]...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return killGroup(cmd.Process.Pid) }
	cmd.WaitDelay = execWaitDelay
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("exec %s: %w", e.Command[0], err)
	}
	awaitExit(cmd.Process.Pid)
	// The leader is a zombie now, so its PID, the group's ID, cannot be reused
	// yet: killing the group reaches only what the command started.
	_ = killGroup(cmd.Process.Pid) // ESRCH when the group is already empty
	err := cmd.Wait()
	if err == nil {
		return nil
	}
	return fmt.Errorf("exec %s: %s%s", e.Command[0], exitText(err), firstLine(stderr.Bytes(), stdout.Bytes()))
}

// killGroup sends SIGKILL to the process group led by pid.
func killGroup(pid int) error {
	return syscall.Kill(-pid, syscall.SIGKILL)
}

// awaitExit blocks until the child pid has exited, without reaping it. On
// error it returns early; Wait then reaps as usual.
func awaitExit(pid int) {
	var info unix.Siginfo
	for range 100 { // retries only on EINTR
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if !errors.Is(err, unix.EINTR) {
			return
		}
	}
}

// exitText describes why the command failed.
func exitText(err error) string {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return err.Error()
	}
	if code := ee.ExitCode(); code >= 0 {
		return fmt.Sprintf("exit code %d", code)
	}
	return ee.ProcessState.String() // "signal: killed"
}

// firstLine returns ": " and the first non-empty line of the first output that
// has one, capped, or "" when there is none.
func firstLine(outputs ...[]byte) string {
	for _, out := range outputs {
		for line := range bytes.Lines(out) {
			line = bytes.TrimSpace(line)
			if len(line) == 0 {
				continue
			}
			if len(line) > maxErrorLine {
				line = append(line[:maxErrorLine:maxErrorLine], "..."...)
			}
			return ": " + string(line)
		}
	}
	return ""
}

// cappedBuffer keeps the first maxExecOutput bytes written to it and drops
// the rest, while reporting every write as complete so the command's output
// is drained rather than blocked.
type cappedBuffer struct {
	buf bytes.Buffer
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	if room := maxExecOutput - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (b *cappedBuffer) Bytes() []byte { return b.buf.Bytes() }

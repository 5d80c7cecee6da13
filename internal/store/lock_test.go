package store

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// holdEnv names the state_dir a re-executed test binary should lock.
const holdEnv = "VIPD_STORE_TEST_HOLD_DIR"

// TestHelperHoldLock is not a test: run as a child by
// TestSecondOpenAcrossProcesses, it opens the store, says "locked" and
// holds the lock until its stdin closes or it is killed.
func TestHelperHoldLock(t *testing.T) {
	dir := os.Getenv(holdEnv)
	if dir == "" {
		t.Skip("helper process only")
	}
	s, err := Open(dir)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(2)
	}
	fmt.Println("locked")
	_, _ = io.Copy(io.Discard, os.Stdin)
	s.Close()
	os.Exit(0)
}

// TestSecondOpenAcrossProcesses checks the lock between processes, since
// flock is held per open file description: another process holds the
// store, Open is refused naming that process, and once the holder dies
// without closing (a crash) the state_dir can be opened again.
func TestSecondOpenAcrossProcesses(t *testing.T) {
	dir := t.TempDir()
	child, stdin := startHolder(t, dir)

	_, err := Open(dir)
	var inUse *InUseError
	if !errors.As(err, &inUse) {
		t.Fatalf("Open while another process holds the lock: %v, want *InUseError", err)
	}
	if inUse.PID != child.Process.Pid {
		t.Errorf("InUseError.PID = %d, want the holder's pid %d", inUse.PID, child.Process.Pid)
	}
	if !strings.Contains(err.Error(), dir) {
		t.Errorf("error %q does not name the state_dir", err)
	}

	// A crash: the holder dies with the lock held and its pid file left.
	if err := child.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()
	stdin.Close()

	s := openT(t, dir)
	defer closeT(t, s)
	if got := readHolderPID(dir); got != os.Getpid() {
		t.Errorf("pid file names %d after takeover, want %d", got, os.Getpid())
	}
}

// TestHolderCloseReleasesLock checks that a clean Close in another process
// lets this one open the store at once.
func TestHolderCloseReleasesLock(t *testing.T) {
	dir := t.TempDir()
	child, stdin := startHolder(t, dir)
	stdin.Close()
	waitExit(t, child)
	closeT(t, openT(t, dir))
}

// startHolder re-executes the test binary as a process that holds dir's
// lock, and waits until it says so.
func startHolder(t *testing.T, dir string) (*exec.Cmd, io.WriteCloser) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperHoldLock$")
	cmd.Env = append(os.Environ(), holdEnv+"="+dir)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})

	line := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- strings.TrimSpace(l)
	}()
	select {
	case l := <-line:
		if l != "locked" {
			t.Fatalf("holder said %q, want \"locked\"", l)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("holder did not lock within 30s")
	}
	return cmd, stdin
}

func waitExit(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("holder exited: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("holder did not exit within 30s")
	}
}

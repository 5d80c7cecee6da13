package health

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// startSleeper starts a process that sleeps until killed and returns it;
// the test kills and reaps it at the end if it is still there.
func startSleeper(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "300")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd
}

func writePIDFile(t *testing.T, path string, pid int) {
	t.Helper()
	if err := os.WriteFile(path, []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestProcessCheckPIDFile(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "svc.pid")
	p := NewProcess(pidFile, "")
	ctx := t.Context()

	if err := p.Check(ctx); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing pid file: Check() = %v, want an error naming it", err)
	}
	os.WriteFile(pidFile, []byte("nginx\n"), 0o644)
	if err := p.Check(ctx); err == nil || !strings.Contains(err.Error(), "want a process ID") {
		t.Errorf("garbage pid file: Check() = %v", err)
	}

	cmd := startSleeper(t)
	writePIDFile(t, pidFile, cmd.Process.Pid)
	if err := p.Check(ctx); err != nil {
		t.Fatalf("running process: Check() = %v", err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if err := p.Check(ctx); err == nil || !strings.Contains(err.Error(), "no such process") {
		t.Errorf("stale pid file: Check() = %v, want no such process", err)
	}

	// A restart writes a new PID: the next round picks it up.
	cmd2 := startSleeper(t)
	writePIDFile(t, pidFile, cmd2.Process.Pid)
	if err := p.Check(ctx); err != nil {
		t.Errorf("restarted process: Check() = %v", err)
	}
}

func TestProcessCheckByName(t *testing.T) {
	cmd := startSleeper(t)
	p := NewProcess("", "sleep")
	if err := p.Check(t.Context()); err != nil {
		t.Fatalf("Check() = %v", err)
	}
	if p.pid == 0 {
		t.Fatal("no process held")
	}
	if err := NewProcess("", "vipd-no-such-proc").Check(t.Context()); err == nil || !strings.Contains(err.Error(), "no process named") {
		t.Errorf("unknown name: Check() = %v", err)
	}
	_ = cmd
}

// findByName picks the oldest live process of that name and skips zombies.
func TestFindByName(t *testing.T) {
	proc := t.TempDir()
	mk := func(pid int, comm, stat string) {
		d := filepath.Join(proc, strconv.Itoa(pid))
		os.MkdirAll(d, 0o755)
		os.WriteFile(filepath.Join(d, "comm"), []byte(comm+"\n"), 0o644)
		os.WriteFile(filepath.Join(d, "stat"), []byte(stat), 0o644)
	}
	stat := func(pid int, name, state string, start int) string {
		f := []string{strconv.Itoa(pid), "(" + name + ")", state}
		for i := 4; i <= 21; i++ {
			f = append(f, "0")
		}
		return strings.Join(append(f, strconv.Itoa(start), "0"), " ")
	}
	mk(300, "nginx", stat(300, "nginx", "S", 500)) // a worker
	mk(200, "nginx", stat(200, "nginx", "S", 100)) // the master
	mk(100, "nginx", stat(100, "nginx", "Z", 50))  // an old zombie
	mk(50, "sshd", stat(50, "sshd", "S", 10))
	if pid, err := findByName(proc, "nginx"); err != nil || pid != 200 {
		t.Errorf("findByName = %d, %v, want 200 (oldest live)", pid, err)
	}
}

// The monitor learns of the process's exit from its pidfd at once, long
// before the next round (an hour away).
func TestProcessWatchFailsAtExit(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "svc.pid")
	cmd := startSleeper(t)
	writePIDFile(t, pidFile, cmd.Process.Pid)

	changed := make(chan bool, 4)
	var m *Monitor
	m = NewMonitor("svc", []Checker{NewProcess(pidFile, "")},
		Params{Interval: time.Hour, Timeout: time.Second, Rise: 1, Fall: 1},
		func() { changed <- m.Up() })
	stop := run(t, m)
	select {
	case up := <-changed:
		if !up {
			t.Fatal("went down first")
		}
	case <-time.After(testWait):
		t.Fatal("never up")
	}
	killed := time.Now()
	cmd.Process.Kill()
	select {
	case up := <-changed:
		took := time.Since(killed)
		if up {
			t.Fatal("went up again")
		}
		// Generous for a shared machine; a poll would take an hour here.
		if took > 2*time.Second {
			t.Errorf("down %v after the kill", took)
		}
		t.Logf("down %v after the kill", took)
	case <-time.After(testWait):
		t.Fatalf("still up %v after the kill: %+v", testWait, m.Status())
	}
	if s := m.Status(); !strings.Contains(s.LastError, "exited") {
		t.Errorf("LastError = %q, want the exit", s.LastError)
	}
	stop()
}

// Watch ends when its context does, and closes what it holds.
func TestProcessWatchStops(t *testing.T) {
	cmd := startSleeper(t)
	p := NewProcess("", "")
	p.Name = "sleep"
	if err := p.Check(t.Context()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.Watch(ctx, func(err error) { t.Errorf("fail(%v) for a live process", err) })
	}()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case <-done:
	case <-time.After(testWait):
		t.Fatal("Watch did not return after its context ended")
	}
	if p.held != nil {
		t.Error("Watch returned holding a pidfd")
	}
	if err := p.Check(t.Context()); err == nil || !strings.Contains(err.Error(), "stopped") {
		t.Errorf("Check after Watch ended = %v, want stopped: nothing may hold a pidfd then", err)
	}
	_ = cmd
}

package health

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestExecPassFail(t *testing.T) {
	tests := []struct {
		name    string
		script  string
		wantErr []string // substrings; none means pass
		notIn   string
	}{
		{name: "exit 0", script: "exit 0"},
		{name: "exit 1 quotes stderr", script: "echo 'first line' >&2; echo second >&2; exit 1",
			wantErr: []string{"exit code 1", ": first line"}, notIn: "second"},
		{name: "stdout when stderr is empty", script: "echo; echo 'from stdout'; exit 3",
			wantErr: []string{"exit code 3", ": from stdout"}},
		{name: "no output", script: "exit 2", wantErr: []string{"exit code 2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			err := Exec{Command: []string{"sh", "-c", tt.script}}.Check(ctx)
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("Check() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Check() = nil, want an error containing %q", tt.wantErr)
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Check() = %q, want it to contain %q", err, want)
				}
			}
			if tt.notIn != "" && strings.Contains(err.Error(), tt.notIn) {
				t.Errorf("Check() = %q, want only the first line", err)
			}
		})
	}
}

func TestExecOutputLineCapped(t *testing.T) {
	err := Exec{Command: []string{"sh", "-c", "head -c 100000 /dev/zero | tr '\\0' a; exit 1"}}.Check(t.Context())
	if err == nil {
		t.Fatal("Check() = nil, want an error")
	}
	if n := len(err.Error()); n > maxErrorLine+100 {
		t.Fatalf("error is %d bytes long, want it capped near %d", n, maxErrorLine)
	}
	if !strings.Contains(err.Error(), strings.Repeat("a", maxErrorLine)+"...") {
		t.Fatalf("Check() = %q, want the capped line", err)
	}
}

func TestExecBadCommand(t *testing.T) {
	if err := (Exec{}).Check(t.Context()); err == nil {
		t.Error("empty command: Check() = nil")
	}
	err := Exec{Command: []string{"/nonexistent/vipd-check"}}.Check(t.Context())
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/vipd-check") {
		t.Errorf("missing binary: Check() = %v, want an error naming it", err)
	}
}

// At the deadline the whole process group dies: the shell and both sleeps.
func TestExecTimeoutKillsProcessGroup(t *testing.T) {
	dir := t.TempDir()
	script := fmt.Sprintf("echo $$ >%[1]s/sh; sleep 30 & echo $! >%[1]s/bg; sleep 30", dir)

	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	start := time.Now()
	err := Exec{Command: []string{"sh", "-c", script}}.Check(ctx)
	if err == nil {
		t.Fatal("Check() = nil, want a failure at the deadline")
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("Check took %v, want about the 1s deadline", took)
	}
	pids := readPIDs(t, dir, "sh", "bg")
	for name, pid := range pids {
		if !eventually(5*time.Second, func() bool { return gone(pid) }) {
			t.Errorf("%s (pid %d) is still running after the check timed out", name, pid)
		}
	}
}

// A command that exits but leaves a child in its group does not leak it.
func TestExecKillsLeftovers(t *testing.T) {
	dir := t.TempDir()
	script := fmt.Sprintf("sleep 30 & echo $! >%s/bg; exit 0", dir)

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	start := time.Now()
	if err := (Exec{Command: []string{"sh", "-c", script}}).Check(ctx); err != nil {
		t.Fatalf("Check() = %v, want nil", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("Check took %v: it waited for the leftover child", took)
	}
	pid := readPIDs(t, dir, "bg")["bg"]
	if !eventually(5*time.Second, func() bool { return gone(pid) }) {
		t.Errorf("leftover sleep (pid %d) is still running", pid)
	}
}

// readPIDs reads the PIDs a test script wrote to dir/name, and kills any that
// survive the test so a failure leaves nothing behind.
func readPIDs(t *testing.T, dir string, names ...string) map[string]int {
	t.Helper()
	pids := make(map[string]int, len(names))
	for _, name := range names {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("the script did not record its %s pid: %v", name, err)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 1 {
			t.Fatalf("bad %s pid %q", name, b)
		}
		pids[name] = pid
		t.Cleanup(func() {
			if !gone(pid) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		})
	}
	return pids
}

// gone reports whether pid no longer runs. A zombie counts as gone: it is
// dead, and whether its new parent reaps it is out of our hands.
func gone(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// The state follows the parenthesised command name.
	i := bytes.LastIndexByte(stat, ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] == 'Z' || stat[i+2] == 'X'
}

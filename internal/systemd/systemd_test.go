package systemd

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

func TestNotify(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	t.Setenv("WATCHDOG_USEC", "4000000")
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	n := FromEnv()
	if n.Watchdog() != 4*time.Second {
		t.Errorf("Watchdog() = %v, want 4s", n.Watchdog())
	}
	for _, step := range []struct {
		send func() error
		want string
	}{{n.Ready, "READY=1"}, {n.Alive, "WATCHDOG=1"}, {func() error { return n.Status("2 peers up") }, "STATUS=2 peers up"}, {n.Stopping, "STOPPING=1"}} {
		if err := step.send(); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 256)
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		k, err := conn.Read(buf)
		if err != nil || string(buf[:k]) != step.want {
			t.Errorf("got %q (%v), want %q", buf[:k], err, step.want)
		}
	}
}

func TestNoSystemd(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	t.Setenv("WATCHDOG_USEC", "")
	var zero Notifier
	for _, n := range []Notifier{FromEnv(), zero} {
		if err := n.Ready(); err != nil || n.Watchdog() != 0 {
			t.Errorf("outside systemd: Ready() = %v, Watchdog() = %v; want no-ops", err, n.Watchdog())
		}
	}
}

func TestWatchdogForAnotherPID(t *testing.T) {
	t.Setenv("WATCHDOG_USEC", "1000000")
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()+1))
	if d := FromEnv().Watchdog(); d != 0 {
		t.Errorf("Watchdog() = %v for another PID's watchdog, want 0", d)
	}
}

// Package systemd speaks systemd's sd_notify protocol: readiness, status,
// stopping, and watchdog keep-alives. Outside systemd (no NOTIFY_SOCKET)
// every call is a no-op.
package systemd

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"time"
)

// Notifier sends sd_notify messages. The zero value sends nothing.
type Notifier struct {
	socket   string
	watchdog time.Duration
}

// FromEnv returns a notifier for the service manager that started us, if any.
func FromEnv() Notifier {
	n := Notifier{socket: os.Getenv("NOTIFY_SOCKET")}
	if pid, err := strconv.Atoi(os.Getenv("WATCHDOG_PID")); err == nil && pid != os.Getpid() {
		return n // the watchdog is meant for another process
	}
	if usec, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64); err == nil && usec > 0 {
		n.watchdog = time.Duration(usec) * time.Microsecond
	}
	return n
}

// Watchdog is how often systemd expects a keep-alive; 0 when it expects none.
func (n Notifier) Watchdog() time.Duration { return n.watchdog }

// Ready says start-up is done.
func (n Notifier) Ready() error { return n.send("READY=1") }

// Reloading says a reload started; Ready ends it.
func (n Notifier) Reloading() error { return n.send("RELOADING=1") }

// Stopping says shutdown started.
func (n Notifier) Stopping() error { return n.send("STOPPING=1") }

// Alive is one watchdog keep-alive.
func (n Notifier) Alive() error { return n.send("WATCHDOG=1") }

// Status sets the one-line status systemctl shows.
func (n Notifier) Status(s string) error { return n.send("STATUS=" + s) }

func (n Notifier) send(msg string) error {
	if n.socket == "" {
		return nil
	}
	name := n.socket
	if name[0] == '@' { // abstract namespace
		name = "\x00" + name[1:]
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sd_notify %s: %w", n.socket, err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(msg)); err != nil {
		return fmt.Errorf("sd_notify %s: %w", n.socket, err)
	}
	return nil
}

// ExtendTimeout asks for d more time for the current start, reload or
// stop (systemd 236 and later), beyond the unit's Timeout*Sec.
func (n Notifier) ExtendTimeout(d time.Duration) error {
	return n.send("EXTEND_TIMEOUT_USEC=" + strconv.FormatInt(d.Microseconds(), 10))
}

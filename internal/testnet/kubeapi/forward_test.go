package kubeapi_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/vipd/vipd/internal/testnet/kubeapi"
)

// TestForward relays a line to an echo server, closes a client's
// connection at once when the target is down, and ends with its context.
func TestForward(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	echo := listen(t)
	go func() {
		for {
			conn, err := echo.Accept()
			if err != nil {
				return // the test closed it
			}
			go func() {
				defer conn.Close()
				_, _ = io.Copy(conn, conn)
			}()
		}
	}()
	defer echo.Close()

	l := listen(t)
	fwdCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- kubeapi.Forward(fwdCtx, l, echo.Addr().String()) }()

	conn := dial(ctx, t, l.Addr().String())
	if _, err := io.WriteString(conn, "hello\n"); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || line != "hello\n" {
		t.Fatalf("echo through the forward: %q, %v; want \"hello\\n\"", line, err)
	}

	// The target goes away: a new connection is accepted, then closed.
	echo.Close()
	down := dial(ctx, t, l.Addr().String())
	if err := down.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if n, err := down.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read with the target down: %d bytes, %v; want EOF", n, err)
	}

	// Stopping ends the relayed connection still open, and Forward.
	stop()
	if err := <-done; err != nil {
		t.Fatalf("Forward: %v", err)
	}
	if err := conn.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read after Forward ended: %v, want EOF", err)
	}
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func dial(ctx context.Context, t *testing.T, addr string) net.Conn {
	t.Helper()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

package kubeapi

import (
	"context"
	"io"
	"net"
	"sync"
	"time"
)

// dialTimeout bounds each upstream dial; the target is on loopback.
const dialTimeout = 2 * time.Second

// Forward relays every connection accepted on l to target until ctx ends,
// then closes l and every relayed connection and returns nil once all its
// goroutines have ended; it returns early only if Accept fails.
//
// It lets a process inside a network namespace reach the API server on the
// host's loopback without any route out of the namespace: open l there
// (testnet's Host.Listen("tcp", "127.0.0.1:PORT"), the API server's port,
// which its certificate covers) and pass the control plane's Addr. While
// the API server is stopped, dials fail and accepted connections are
// closed at once. A client sees EOF where a direct one would see the
// connection refused: client-go retries a GET on EOF (10 times, 1 s apart)
// but not on a refusal, so through Forward a GET fails after about 10 s
// instead of at once. Watches and reconnects behave the same either way.
func Forward(ctx context.Context, l net.Listener, target string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	// Accept blocks until l is closed: that is how ctx stops it.
	wg.Go(func() {
		<-ctx.Done()
		l.Close()
	})
	for {
		conn, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		wg.Go(func() { relay(ctx, conn, target) })
	}
}

// relay copies bytes both ways between conn and a new connection to
// target until either side closes or ctx ends, then closes both.
func relay(ctx context.Context, conn net.Conn, target string) {
	defer conn.Close()
	d := net.Dialer{Timeout: dialTimeout}
	up, err := d.DialContext(ctx, "tcp", target)
	if err != nil {
		return // the API server is down: the client sees a closed connection
	}
	defer up.Close()
	stop := context.AfterFunc(ctx, func() {
		conn.Close()
		up.Close()
	})
	defer stop()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		done <- struct{}{}
	}
	go pipe(up, conn)
	go pipe(conn, up)
	// TLS and HTTP never half-close, so when one direction ends the
	// connection is over: close both to end the other copy too.
	<-done
	conn.Close()
	up.Close()
	<-done
}

package health

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

func TestTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan struct{}, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		conn.Close()
		accepted <- struct{}{}
	}()

	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := (TCP{Address: ln.Addr().String()}).Check(ctx); err != nil {
		t.Fatalf("open port: Check() = %v, want nil", err)
	}
	select {
	case <-accepted:
	case <-ctx.Done():
		t.Fatal("the listener never saw the connection")
	}
}

func TestTCPClosedPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	err = TCP{Address: addr}.Check(ctx)
	if err == nil || !strings.Contains(err.Error(), "refused") || !strings.Contains(err.Error(), addr) {
		t.Fatalf("closed port: Check() = %v, want connection refused naming %s", err, addr)
	}
}

func TestTCPBadAddress(t *testing.T) {
	if err := (TCP{Address: "no-port"}).Check(t.Context()); err == nil {
		t.Fatal("Check() = nil for an address without a port")
	}
}

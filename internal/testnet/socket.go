package testnet

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// Listen opens a listener inside the member's namespace, e.g.
// Listen("tcp", "[::]:8080"). A socket keeps the namespace it was made in,
// so the caller uses it like any other.
func (h *Host) Listen(network, address string) (net.Listener, error) {
	var l net.Listener
	err := h.inNamespace(func() error {
		var err error
		l, err = net.Listen(network, address)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s: listen %s %s: %w", h.name, network, address, err)
	}
	return l, nil
}

// DialContext connects from inside the member's namespace. address must
// hold an IP literal: name resolution could leave the namespace's thread.
func (h *Host) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	var conn net.Conn
	err := h.inNamespace(func() error {
		var err error
		var d net.Dialer
		conn, err = d.DialContext(ctx, network, address)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s: dial %s %s: %w", h.name, network, address, err)
	}
	return conn, nil
}

// inNamespace runs fn on a new OS thread switched into the member's
// network namespace and waits for it. The thread is never switched back:
// it stays locked and Go retires it when the goroutine ends, so no other
// goroutine ever runs in the namespace by accident.
func (h *Host) inNamespace(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		target, err := os.Open("/run/netns/" + h.ns)
		if err != nil {
			errc <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns: %w", err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

package health

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
)

// listenOn opens a TCP listener on addr and returns it with its port.
func listenOn(t *testing.T, network, addr string) (net.Listener, uint16) {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Skipf("cannot listen on %s: %v", addr, err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln, uint16(ln.Addr().(*net.TCPAddr).Port)
}

func TestListenCheck(t *testing.T) {
	ctx := t.Context()
	ln, port := listenOn(t, "tcp4", "127.0.0.1:0")
	loop := netip.MustParseAddr("127.0.0.1")
	for _, c := range []Listen{{Port: port}, {Port: port, Address: loop}} {
		if err := c.Check(ctx); err != nil {
			t.Errorf("%+v: Check() = %v with a listener", c, err)
		}
	}
	if err := (Listen{Port: port, Address: netip.MustParseAddr("127.0.0.2")}).Check(ctx); err == nil {
		t.Error("a listener on 127.0.0.1 passed for 127.0.0.2")
	}
	ln.Close()
	err := Listen{Port: port}.Check(ctx)
	if err == nil || !strings.Contains(err.Error(), "nothing listens on TCP port") {
		t.Errorf("after close: Check() = %v, want nothing listens", err)
	}
}

// The check does not connect: the listener's accept queue stays empty.
func TestListenCheckDoesNotConnect(t *testing.T) {
	ln, port := listenOn(t, "tcp4", "127.0.0.1:0")
	for range 3 {
		if err := (Listen{Port: port}).Check(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	tl := ln.(*net.TCPListener)
	raw, err := tl.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	// A non-blocking accept finds nothing queued.
	var aerr error
	raw.Control(func(fd uintptr) {
		nfd, _, err := syscall.Accept4(int(fd), syscall.SOCK_NONBLOCK)
		if err == nil {
			syscall.Close(nfd)
		}
		aerr = err
	})
	if aerr != syscall.EAGAIN {
		t.Errorf("accept after three checks = %v, want EAGAIN (no connection made)", aerr)
	}
}

// A wildcard listener covers every address of its family; a dual-stack
// "::" listener covers IPv4 too, a v6-only one does not.
func TestListenCovers(t *testing.T) {
	v4, v6 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")
	tests := []struct {
		name string
		s    listener
		want netip.Addr
		ok   bool
	}{
		{"exact v4", listener{addr: v4}, v4, true},
		{"0.0.0.0", listener{addr: netip.IPv4Unspecified()}, v4, true},
		{"0.0.0.0 not for v6", listener{addr: netip.IPv4Unspecified()}, v6, false},
		{"dual-stack ::", listener{addr: netip.IPv6Unspecified()}, v4, true},
		{"v6-only ::", listener{addr: netip.IPv6Unspecified(), v6only: true}, v4, false},
		{":: for v6", listener{addr: netip.IPv6Unspecified(), v6only: true}, v6, true},
		{"other address", listener{addr: v4}, netip.MustParseAddr("192.0.2.2"), false},
		{"mapped", listener{addr: netip.AddrFrom16(v4.As16())}, v4, true},
	}
	for _, tt := range tests {
		if got := (Listen{Address: tt.want}).covers(tt.s); got != tt.ok {
			t.Errorf("%s: covers = %v, want %v", tt.name, got, tt.ok)
		}
	}
}

// sock_diag reports IPV6_V6ONLY, which covers depends on.
func TestListenersV6Only(t *testing.T) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IPV6, syscall.IPV6_V6ONLY, 1) })
		return serr
	}}
	ln, err := lc.Listen(context.Background(), "tcp6", "[::]:0")
	if err != nil {
		t.Skipf("no IPv6: %v", err)
	}
	defer ln.Close()
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	socks, err := listeners(syscall.AF_INET6)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range socks {
		if s.port == port {
			if !s.v6only {
				t.Error("v6-only listener reported without v6only")
			}
			if err := (Listen{Port: port, Address: netip.MustParseAddr("127.0.0.1")}).Check(t.Context()); err == nil {
				t.Error("a v6-only listener passed for 127.0.0.1")
			}
			return
		}
	}
	t.Fatalf("listener on [::]:%d not in the dump", port)
}

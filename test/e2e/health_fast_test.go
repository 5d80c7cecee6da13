package e2e

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/vipd/vipd/internal/testnet"
	"github.com/vipd/vipd/internal/testnet/worldtest"
)

// Services of TestHealthFastChecks, one VIP each.
var (
	coldVIP   = mustPrefix("192.168.0.16/32")
	procVIP   = mustPrefix("192.168.0.17/32")
	listenVIP = mustPrefix("192.168.0.18/32")
)

// Bounds of TestHealthFastChecks, generous for a shared machine running
// the race-built vipd. They stay far below what the interval alone would
// give (15 s per round), so a vipd without fast rounds or without the
// pidfd fails them.
const (
	// coldBound: three rounds at the 1 s fast interval (the first within
	// 1 s of the start, on the service's phase) plus BGP.
	coldBound = 3*time.Second + 6*time.Second
	// procBound: the exit is seen at once; the rest is the agent's loop,
	// one UPDATE, the router's FIB and our 10 ms polling.
	procBound = time.Second
)

// TestHealthFastChecks runs the issue-16 checks against BIRD and FRR, at
// ExaBGP's Safespring setting (interval 15 s, rise 3, fall 3, vipd's
// default fast interval 1 s):
//   - cold: a tcp check on a server that starts 300 ms after vipd; the
//     service is up after fast_interval × rise plus BGP, not 2 × 15 s;
//   - proc: a process check (pid_file, fall 1); killing the process
//     withdraws at once, not at the next round 15 s away;
//   - listen: a listen check follows a server closing and reopening its
//     socket.
func TestHealthFastChecks(t *testing.T) {
	for _, kind := range []testnet.RouterKind{testnet.BIRD, testnet.FRR} {
		t.Run(string(kind), func(t *testing.T) { testHealthFastChecks(t, kind) })
	}
}

func testHealthFastChecks(t *testing.T, kind testnet.RouterKind) {
	nodes := nodeSpecs(1)
	w := worldtest.New(t, testnet.Spec{
		Routers: []testnet.RouterSpec{{Name: "r1", Kind: kind, ASN: 65535, Address: addr("10.255.255.1"),
			Neighbors: neighbors(nodes, 4200000000, "")}},
		Nodes: nodes,
	})
	r, n1 := w.Router("r1"), w.Node("n1")

	sleeper, err := n1.StartProcess("guarded", "sleep", "600")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleeper.Stop(stopTimeout) })
	pidFile := filepath.Join(n1.Dir(), "guarded.pid")
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(sleeper.PID())+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const coldAddr, listenPort = "127.0.0.1:18080", 18443

	started := time.Now()
	startVipd(t, n1, fmt.Sprintf(`bgp:
  asn: 4200000000
  allowed_prefixes: [192.168.0.16/30]
  peers:
%s
services:
  - name: cold
    vips: [%s]
    interval: 15s
    rise: 3
    fall: 3
    checks: [{tcp: {address: %q}}]
  - name: proc
    vips: [%s]
    interval: 15s
    rise: 1
    fall: 1
    checks: [{process: {pid_file: %q}}]
  - name: listen
    vips: [%s]
    interval: 300ms
    rise: 2
    fall: 2
    checks: [{listen: {port: %d}}]
`, peersYAML(peer{"r1", r.Addr4(), 65535, ""}), coldVIP.Addr(), coldAddr, procVIP.Addr(), pidFile, listenVIP.Addr(), listenPort))

	// The server comes up 300 ms after the agent, after its first round.
	time.Sleep(300*time.Millisecond - time.Since(started))
	serveAccepting(t, n1, coldAddr)
	waitFIBWithin(t, r, coldVIP, coldBound, n1.Addr4())
	t.Logf("cold start: %v from vipd start to the nexthop in the FIB", time.Since(started).Round(time.Millisecond))

	t.Run("process exit withdraws at once", func(t *testing.T) {
		waitFIB(t, r, procVIP, n1.Addr4())
		if err := sleeper.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		killed := time.Now()
		took := pollGone(t, r, procVIP, n1.Addr4(), killed, procBound)
		t.Logf("process killed → nexthop gone in %v", took.Round(time.Millisecond))
	})

	t.Run("listen follows the socket", func(t *testing.T) {
		l := listenIn(t, n1, listenPort)
		waitFIB(t, r, listenVIP, n1.Addr4())
		l.Close()
		waitFIB(t, r, listenVIP)
		listenIn(t, n1, listenPort)
		waitFIB(t, r, listenVIP, n1.Addr4())
	})
}

// serveAccepting accepts and closes connections on address in node's
// namespace until the test ends.
func serveAccepting(t *testing.T, node *testnet.Node, address string) {
	t.Helper()
	l, err := node.Listen("tcp", address)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for range 1_000_000 {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
}

// listenIn opens a listener on 127.0.0.1:port in node's namespace that
// accepts nothing: the listen check must not need to connect.
func listenIn(t *testing.T, node *testnet.Node, port int) net.Listener {
	t.Helper()
	l, err := node.Listen("tcp", netip.AddrPortFrom(addr("127.0.0.1"), uint16(port)).String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// pollGone polls r's FIB every 10 ms until hop has left prefix's route and
// returns the time since cut; it fails the test after bound.
func pollGone(t *testing.T, r *testnet.Router, prefix netip.Prefix, hop netip.Addr, cut time.Time, bound time.Duration) time.Duration {
	t.Helper()
	for time.Since(cut) < convergeTimeout {
		hops, err := r.FIB(t.Context(), prefix)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(hops, hop) {
			took := time.Since(cut)
			if took > bound {
				t.Errorf("%s left %s's route after %v, want within %v", hop, prefix, took, bound)
			}
			return took
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s never left %s's route", hop, prefix)
	return 0
}

package e2e

import (
	"bufio"
	"context"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vipd/vipd/internal/api"
	"github.com/vipd/vipd/internal/testnet"
)

// netlinkLog records what `ip -ts monitor` prints in a namespace: every
// kernel change of the watched kind, stamped when it happened, so a test
// can order changes in two namespaces without sampling either.
type netlinkLog struct {
	mu    sync.Mutex
	lines []string
}

// watchNetlink runs `ip -n NS -ts monitor WHAT` until the test ends.
func watchNetlink(t *testing.T, ns, what string) *netlinkLog {
	t.Helper()
	cmd := exec.Command("ip", "-n", ns, "-ts", "monitor", what)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	l := &netlinkLog{}
	read := make(chan struct{})
	go func() {
		defer close(read)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			l.mu.Lock()
			l.lines = append(l.lines, sc.Text())
			l.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM) // the PID we started
		<-read
		_ = cmd.Wait()
	})
	return l
}

// deleted waits for the first "Deleted" line containing match and returns
// when the kernel made that change.
func (l *netlinkLog) deleted(t *testing.T, match string) time.Time {
	t.Helper()
	var at time.Time
	err := testnet.WaitFor(context.Background(), convergeTimeout, func(context.Context) error {
		l.mu.Lock()
		defer l.mu.Unlock()
		for _, line := range l.lines {
			stamp, rest, ok := strings.Cut(strings.TrimPrefix(line, "["), "] ")
			if !ok || !strings.HasPrefix(rest, "Deleted ") || !strings.Contains(rest, match) {
				continue
			}
			var err error
			at, err = time.ParseInLocation("2006-01-02T15:04:05.000000", stamp, time.Local)
			return err
		}
		return os.ErrNotExist
	})
	if err != nil {
		t.Fatalf("no deletion of %q seen: %v\n%s", match, err, strings.Join(l.lines, "\n"))
	}
	return at
}

// A load balancer deleted and a service removed by reload: their routes
// leave the router's FIB before their addresses leave the node, so the
// router never sends traffic to a node that no longer holds the address.
func TestRemovalWithdrawsBeforeUnbinding(t *testing.T) {
	w := lbWorld(t, 1)
	backends := startBackends(t, w)
	r1, n1 := w.Router("r1"), w.Node("n1")
	svcVIP := addr("198.51.100.20")
	withService := lbConfig("services:\n  - {name: svc, vips: [" + svcVIP.String() + "]}\n")

	fib := watchNetlink(t, r1.Namespace(), "route")
	addresses := watchNetlink(t, n1.Namespace(), "address")
	p := startLBNode(t, n1, withService)
	l := createWebLB(t, n1, netip.Addr{}, backends)
	lbAddr := addr(l.EIP)
	waitFIB(t, r1, mustPrefix(svcVIP.String()+"/32"), n1.Addr4())
	waitFIB(t, r1, mustPrefix(lbAddr.String()+"/32"), n1.Addr4())

	ctx, cancel := context.WithTimeout(context.Background(), convergeTimeout)
	defer cancel()
	if err := lbClient(n1).DeleteLoadBalancer(ctx, l.UUID); err != nil {
		t.Fatal(err)
	}
	routeGone := fib.deleted(t, "Deleted "+lbAddr.String()+" ")
	addrGone := addresses.deleted(t, "inet "+lbAddr.String()+"/32")
	if !routeGone.Before(addrGone) {
		t.Errorf("load balancer %s: the node dropped the address at %v, the router's route went at %v",
			lbAddr, addrGone.Format(time.StampMicro), routeGone.Format(time.StampMicro))
	}

	args := p.Args()
	if err := os.WriteFile(args[len(args)-1], []byte(lbConfig("")+n1.RuntimeYAML()), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := lbClient(n1).Reload(ctx); err != nil {
		t.Fatal(err)
	}
	routeGone = fib.deleted(t, "Deleted "+svcVIP.String()+" ")
	addrGone = addresses.deleted(t, "inet "+svcVIP.String()+"/32")
	if !routeGone.Before(addrGone) {
		t.Errorf("service VIP %s: the node dropped the address at %v, the router's route went at %v",
			svcVIP, addrGone.Format(time.StampMicro), routeGone.Format(time.StampMicro))
	}
	waitStatus(t, n1, "the service gone from status", func(st api.Status) bool { return len(st.Services) == 0 })
}

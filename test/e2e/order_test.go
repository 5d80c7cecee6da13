package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vipd/vipd/internal/api"
	"github.com/vipd/vipd/internal/testnet"
)

// A load balancer deleted and a service removed by reload: their routes
// leave the router's FIB before their addresses leave the node, so the
// router never sends traffic to a node that no longer holds the address.
func TestRemovalWithdrawsBeforeUnbinding(t *testing.T) {
	w := lbWorld(t, 1)
	backends := startBackends(t, w)
	r1, n1 := w.Router("r1"), w.Node("n1")
	svcVIP := addr("198.51.100.20")
	withService := lbConfig("services:\n  - {name: svc, vips: [" + svcVIP.String() + "]}\n")

	p := startLBNode(t, n1, withService)
	l := createWebLB(t, n1, netip.Addr{}, backends)
	lbAddr := addr(l.EIP)
	waitFIB(t, r1, mustPrefix(svcVIP.String()+"/32"), n1.Addr4())
	waitFIB(t, r1, mustPrefix(lbAddr.String()+"/32"), n1.Addr4())
	fib := watchKernel(t, &r1.Host, "route")
	addresses := watchKernel(t, &n1.Host, "address")

	ctx, cancel := context.WithTimeout(context.Background(), convergeTimeout)
	defer cancel()
	if err := lbClient(n1).DeleteLoadBalancer(ctx, l.UUID); err != nil {
		t.Fatal(err)
	}

	args := p.Args()
	if err := os.WriteFile(args[len(args)-1], []byte(lbConfig("")+n1.RuntimeYAML()), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := lbClient(n1).Reload(ctx); err != nil {
		t.Fatal(err)
	}
	// The addresses go in a pass of their own, removalDelay after their
	// withdrawal: wait for both before the first look ends the records.
	waitUnbound(t, &n1.Host, lbAddr, svcVIP)
	routeBeforeAddress(t, "load balancer", fib, addresses, lbAddr)
	routeBeforeAddress(t, "service VIP", fib, addresses, svcVIP)
	waitStatus(t, n1, "the service gone from status", func(st api.Status) bool { return len(st.Services) == 0 })
}

// waitUnbound waits until none of addrs is on any of h's interfaces.
func waitUnbound(t *testing.T, h *testnet.Host, addrs ...netip.Addr) {
	t.Helper()
	err := testnet.WaitFor(t.Context(), convergeTimeout, func(ctx context.Context) error {
		out, err := h.Exec(ctx, "ip", "-o", "addr", "show")
		if err != nil {
			return err
		}
		for _, a := range addrs {
			if strings.Contains(out, " "+netip.PrefixFrom(a, a.BitLen()).String()+" ") {
				return fmt.Errorf("%s still on %s", a, h.Name())
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// routeBeforeAddress checks that the router's route to a went before the
// node's address a did, once each.
func routeBeforeAddress(t *testing.T, what string, fib, addresses *kernelWatch, a netip.Addr) {
	t.Helper()
	prefix := netip.PrefixFrom(a, a.BitLen())
	routes, addrs := fib.deletions(t, prefix), addresses.deletions(t, prefix)
	if len(routes) == 0 || len(addrs) == 0 {
		t.Fatalf("%s %s: route deletions %q, address deletions %q; want one each", what, a, routes, addrs)
	}
	if route, address := routes[0].at, addrs[len(addrs)-1].at; !route.Before(address) {
		t.Errorf("%s %s: the node dropped the address at %v, the router's route went at %v",
			what, a, address.Format(time.StampMicro), route.Format(time.StampMicro))
	}
}

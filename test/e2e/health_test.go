package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/vipd/vipd/internal/api"
	"github.com/vipd/vipd/internal/testnet"
)

// TestHealth: a node whose check fails leaves the router's ECMP set and
// comes back after rise passes; a degrade-mode service stays announced with
// its down_med instead.
func TestHealth(t *testing.T) {
	w := birdWorld(t, 3, "")
	r := w.Router("r1")
	flag := func(n *testnet.Node, svc string) string { return filepath.Join(n.Dir(), "healthy-"+svc) }
	for _, n := range w.Nodes() {
		for _, svc := range []string{"web", "dns"} {
			if err := os.WriteFile(flag(n, svc), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		startVipd(t, n, webConfig(r1Peer(r), fmt.Sprintf(`    interval: 200ms
    rise: 2
    fall: 2
    med: 100
    checks:
      - exec: {command: [test, -f, %q]}
  - name: dns
    vips: [192.168.0.17]
    interval: 200ms
    on_down: degrade
    med: 100
    down_med: 1000
    down_prepend: 2
    checks:
      - exec: {command: [test, -f, %q]}
`, flag(n, "web"), flag(n, "dns"))))
	}
	web, dns := mustPrefix("192.168.0.16/32"), mustPrefix("192.168.0.17/32")
	all := addrs4(w.Nodes())
	waitFIB(t, r, web, all...)
	waitFIB(t, r, dns, all...)

	n1, n2 := w.Node("n1"), w.Node("n2")
	t.Run("withdraw", func(t *testing.T) {
		if err := os.Remove(flag(n1, "web")); err != nil {
			t.Fatal(err)
		}
		waitFIB(t, r, web, n2.Addr4(), w.Node("n3").Addr4())
		st := waitStatus(t, n1, "web down", func(st api.Status) bool { return serviceState(st, "web") == "down" })
		for _, v := range st.VIPs {
			if v.Service == "web" && (v.Announced || v.Reason != "checks failing" || !v.Bound) {
				t.Errorf("n1 VIP %s: announced %v bound %v reason %q; want withdrawn, still bound, because checks failing", v.Prefix, v.Announced, v.Bound, v.Reason)
			}
		}
		if err := os.WriteFile(flag(n1, "web"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		waitFIB(t, r, web, all...)
	})
	t.Run("degrade", func(t *testing.T) {
		if err := os.Remove(flag(n2, "dns")); err != nil {
			t.Fatal(err)
		}
		// A worse MED takes n2 out of the router's multipath set while the
		// route stays in its table.
		waitFIB(t, r, dns, n1.Addr4(), w.Node("n3").Addr4())
		routes, err := r.BGPRoutes(t.Context(), dns)
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(routes, func(rt testnet.RouteInfo) bool { return rt.FromPeer == n2.Addr4() })
		if i < 0 {
			t.Fatalf("router has no route for %s from degraded n2: %+v", dns, routes)
		}
		if got := routes[i]; got.MED != 1000 || len(got.ASPath) != 3 {
			t.Errorf("degraded route from n2: MED %d AS path %v, want MED 1000 and 2 prepends", got.MED, got.ASPath)
		}
		if err := os.WriteFile(flag(n2, "dns"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		waitFIB(t, r, dns, all...)
	})
}

func serviceState(st api.Status, name string) string {
	for _, s := range st.Services {
		if s.Name == name {
			return s.State
		}
	}
	return ""
}

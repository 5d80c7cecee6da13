package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vipd/vipd/internal/api"
	"github.com/vipd/vipd/internal/testnet"
	"github.com/vipd/vipd/internal/testnet/worldtest"
)

// vipdCLI runs the CLI against a node's daemon.
func vipdCLI(node *testnet.Node, args ...string) (string, error) {
	out, err := exec.Command(vipdBin, append(args, "--socket", node.Socket())...).CombinedOutput()
	return string(out), err
}

// routeMED returns the MED of the route for prefix that r holds from node.
func routeMED(t *testing.T, r *testnet.Router, prefix string, node *testnet.Node) (uint32, bool) {
	t.Helper()
	routes, err := r.BGPRoutes(t.Context(), mustPrefix(prefix))
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(routes, func(rt testnet.RouteInfo) bool { return rt.FromPeer == node.Addr4() })
	if i < 0 {
		return 0, false
	}
	return routes[i].MED, true
}

// sameSession reports whether two established-since times read from a
// router are the same session. FRR reports an epoch computed at each query
// from its uptime, so one session's reads may differ by up to a second; a
// reset session comes back later than that (reconnect plus OPEN, or our
// 5 s post-reset hold-down).
func sameSession(a, b time.Time) bool {
	d := a.Sub(b)
	return d >= -time.Second && d <= time.Second
}

func establishedSince(t *testing.T, r *testnet.Router, neighbor *testnet.Node) time.Time {
	t.Helper()
	sessions, err := r.Sessions(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sessions {
		if s.Neighbor == neighbor.Addr4() && s.State == testnet.Established {
			return s.Since
		}
	}
	t.Fatalf("router %s: no established session with %s: %+v", r.Name(), neighbor.Name(), sessions)
	return time.Time{}
}

// TestReload: adding a service brings its routes up, a MED change changes
// only that service, no session resets, and a broken config changes nothing.
func TestReload(t *testing.T) {
	nodes := nodeSpecs(1)
	w := worldtest.New(t, testnet.Spec{
		Routers: []testnet.RouterSpec{
			{Name: "r1", Kind: testnet.BIRD, ASN: 65535, Address: addr("10.255.255.1"), Neighbors: neighbors(nodes, 4200000000, "")},
			{Name: "r2", Kind: testnet.BIRD, ASN: 65535, Address: addr("10.255.255.2"), Neighbors: neighbors(nodes, 4200000000, "")},
		},
		Nodes: nodes,
	})
	r1, r2, n1 := w.Router("r1"), w.Router("r2"), w.Node("n1")
	head := fmt.Sprintf("bgp:\n  asn: 4200000000\n  allowed_prefixes: [192.168.0.16/30]\n  peers:\n%s\nservices:\n",
		peersYAML(peer{"r1", r1.Addr4(), 65535, ""}, peer{"r2", r2.Addr4(), 65535, ""}))
	web := func(med int) string { return fmt.Sprintf("  - {name: web, vips: [192.168.0.16], med: %d}\n", med) }
	dns := "  - {name: dns, vips: [192.168.0.17], med: 7}\n"

	p := startVipd(t, n1, head+web(100))
	args := p.Args()
	conf := args[len(args)-1] // run -c FILE
	waitFIB(t, r1, mustPrefix("192.168.0.16/32"), n1.Addr4())
	waitFIB(t, r2, mustPrefix("192.168.0.16/32"), n1.Addr4())
	since1, since2 := establishedSince(t, r1, n1), establishedSince(t, r2, n1)

	write := func(body string) {
		t.Helper()
		if err := os.WriteFile(conf, []byte(body+n1.RuntimeYAML()), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// Add a service, through SIGHUP.
	write(head + web(100) + dns)
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFIB(t, r1, mustPrefix("192.168.0.17/32"), n1.Addr4())

	// Change one MED, through the CLI.
	write(head + web(200) + dns)
	if out, err := vipdCLI(n1, "reload"); err != nil || !strings.Contains(out, `"changed": true`) {
		t.Fatalf("vipd reload: %v\n%s", err, out)
	}
	waitMED(t, r1, "192.168.0.16/32", n1, 200)
	if med, _ := routeMED(t, r1, "192.168.0.17/32", n1); med != 7 {
		t.Errorf("dns MED %d after web's MED changed, want 7", med)
	}
	// A broken config is refused with its field, and nothing changes.
	write(head + web(300) + "  - {name: bad, vips: [10.9.9.9]}\n")
	imports1, imports2 := birdImports(t, r1, n1), birdImports(t, r2, n1)
	out, err := vipdCLI(n1, "reload")
	if err == nil || !strings.Contains(out, "services[1].vips[0]") {
		t.Errorf("reload of a broken config: %v, want an error naming services[1].vips[0]\n%s", err, out)
	}
	// A config path that is a FIFO (which would block the reload and every
	// API write behind it) or /dev/zero (which would fill memory) is
	// refused at once, and the running config stays.
	for _, odd := range []struct {
		name, msg string
		make      func() error
	}{
		{"FIFO", "is a FIFO, not a regular file", func() error { return syscall.Mkfifo(conf, 0o600) }},
		{"/dev/zero", "is a character device, not a regular file", func() error { return os.Symlink("/dev/zero", conf) }},
	} {
		if err := os.Remove(conf); err != nil {
			t.Fatal(err)
		}
		if err := odd.make(); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		out, err := vipdCLI(n1, "reload")
		if err == nil || !strings.Contains(out, odd.msg) || time.Since(start) > 10*time.Second {
			t.Errorf("reload with the config at a %s: %v after %s, want an error with %q\n%s", odd.name, err, time.Since(start), odd.msg, out)
		}
		if _, err := vipdCLI(n1, "status"); err != nil {
			t.Errorf("status after a reload from a %s: %v", odd.name, err)
		}
	}
	if err := os.Remove(conf); err != nil {
		t.Fatal(err)
	}
	write(head + web(200) + dns)
	// A fence: the drain and the undrain of dns pass through the daemon's
	// loop after the refused reload, each pass after the one before, and
	// reach the routers on the same sessions after any change the reload
	// wrongly made. Once the undrain is in both FIBs, the routers' counters
	// hold every route change before it: exactly dns's withdrawal and
	// announcement, and no change of web's that was undone on the way.
	dnsPrefix := mustPrefix("192.168.0.17/32")
	for _, step := range []struct {
		cmd  string
		want []netip.Addr
	}{{"drain", nil}, {"undrain", []netip.Addr{n1.Addr4()}}} {
		if out, err := vipdCLI(n1, step.cmd, "dns"); err != nil {
			t.Fatalf("vipd %s dns: %v\n%s", step.cmd, err, out)
		}
		waitFIB(t, r1, dnsPrefix, step.want...)
		waitFIB(t, r2, dnsPrefix, step.want...)
	}
	want := importStats{updates: 1, withdraws: 1}
	for _, c := range []struct {
		r      *testnet.Router
		before importStats
	}{{r1, imports1}, {r2, imports2}} {
		after := birdImports(t, c.r, n1)
		if got := (importStats{after.updates - c.before.updates, after.withdraws - c.before.withdraws}); got != want {
			t.Errorf("router %s received %v from n1 around a refused reload and dns's drain and undrain, want %v", c.r.Name(), got, want)
		}
	}
	if med, _ := routeMED(t, r1, "192.168.0.16/32", n1); med != 200 {
		t.Errorf("web MED %d after a refused reload, want 200", med)
	}
	if a, b := establishedSince(t, r1, n1), establishedSince(t, r2, n1); !sameSession(a, since1) || !sameSession(b, since2) {
		t.Errorf("sessions re-established during reloads: r1 %v -> %v, r2 %v -> %v", since1, a, since2, b)
	}
}

func waitMED(t *testing.T, r *testnet.Router, prefix string, node *testnet.Node, want uint32) {
	t.Helper()
	err := testnet.WaitFor(t.Context(), convergeTimeout, func(context.Context) error {
		med, ok := routeMED(t, r, prefix, node)
		if !ok || med != want {
			return fmt.Errorf("%s from %s: MED %d (present %v), want %d", prefix, node.Name(), med, ok, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestDrain: drain withdraws and undrain restores; a maintenance file does
// the same and cannot be undrained; a drain survives a restart.
func TestDrain(t *testing.T) {
	w := birdWorld(t, 1, "")
	r, n1 := w.Router("r1"), w.Node("n1")
	maint := filepath.Join(n1.Dir(), "maintenance-dns")
	config := webConfig(r1Peer(r), fmt.Sprintf(`  - name: dns
    vips: [192.168.0.17]
    maintenance_file: %s
`, maint))
	web, dns := mustPrefix("192.168.0.16/32"), mustPrefix("192.168.0.17/32")
	p := startVipd(t, n1, config)
	waitFIB(t, r, web, n1.Addr4())
	waitFIB(t, r, dns, n1.Addr4())

	if out, err := vipdCLI(n1, "drain", "web"); err != nil {
		t.Fatalf("vipd drain web: %v\n%s", err, out)
	}
	waitFIB(t, r, web)
	st := status(t, n1)
	if got := serviceState(st, "web"); got != "drained" {
		t.Errorf("status --json: web state %q, want drained", got)
	}
	for _, v := range st.VIPs {
		if v.Service == "web" && (v.Announced || v.Reason != "drained by operator") {
			t.Errorf("status --json: VIP %s announced %v, reason %q; want withdrawn, drained by operator", v.Prefix, v.Announced, v.Reason)
		}
	}
	if out, err := vipdCLI(n1, "drain", "nosuch"); err == nil || !strings.Contains(out, "nosuch") {
		t.Errorf("drain of an unknown service: %v\n%s", err, out)
	}

	// The drain survives a restart.
	if err := p.Stop(stopTimeout); err != nil {
		t.Fatal(err)
	}
	startVipd(t, n1, config)
	waitFIB(t, r, dns, n1.Addr4())
	if hops, _ := r.FIB(t.Context(), web); len(hops) != 0 {
		t.Errorf("drained web is announced again after a restart: %v", hops)
	}
	if out, err := vipdCLI(n1, "undrain", "web"); err != nil {
		t.Fatalf("vipd undrain web: %v\n%s", err, out)
	}
	waitFIB(t, r, web, n1.Addr4())

	// The maintenance file drains dns while it exists; undrain says why not.
	if err := os.WriteFile(maint, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitFIB(t, r, dns)
	waitStatus(t, n1, "dns drained by its maintenance file", func(st api.Status) bool {
		return serviceState(st, "dns") == "drained"
	})
	if out, err := vipdCLI(n1, "undrain", "dns"); err == nil || !strings.Contains(out, maint) {
		t.Errorf("undrain during maintenance: %v, want an error naming %s\n%s", err, maint, out)
	}
	if err := os.Remove(maint); err != nil {
		t.Fatal(err)
	}
	waitFIB(t, r, dns, n1.Addr4())
}

// TestGracefulShutdown: with shutdown_grace the router first sees 65535:0,
// moves traffic to the other node, and only then gets the withdrawal.
func TestGracefulShutdown(t *testing.T) {
	w := birdWorld(t, 2, "")
	r, n1, n2 := w.Router("r1"), w.Node("n1"), w.Node("n2")
	config := fmt.Sprintf(`bgp:
  asn: 4200000000
  allowed_prefixes: [192.168.0.16/31]
  shutdown_grace: 3s
  peers:
%s
services:
  - name: web
    vips: [192.168.0.16]
`, peersYAML(peer{"r1", r.Addr4(), 65535, ""}))
	p1 := startVipd(t, n1, config)
	startVipd(t, n2, config)
	waitFIB(t, r, vip4, n1.Addr4(), n2.Addr4())

	start := time.Now()
	if err := p1.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Traffic leaves n1 while its route is still in the router's table.
	waitFIB(t, r, vip4, n2.Addr4())
	routes, err := r.BGPRoutes(t.Context(), vip4)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(routes, func(rt testnet.RouteInfo) bool { return rt.FromPeer == n1.Addr4() })
	if i < 0 || !slices.Contains(routes[i].Communities, "65535:0") {
		t.Fatalf("during the grace period: routes %+v, want n1's still there with 65535:0", routes)
	}
	if err := p1.Wait(stopTimeout); err != nil {
		t.Fatalf("vipd after SIGTERM: %v", err)
	}
	if took := time.Since(start); took < 3*time.Second {
		t.Errorf("vipd exited %v after SIGTERM, before its 3s grace", took)
	}
}

// TestGracefulRestart: with bgp.graceful_restart a planned restart keeps
// the route in the router's FIB throughout, and the address on lo.
func TestGracefulRestart(t *testing.T) {
	w := birdWorld(t, 1, "")
	r, n1 := w.Router("r1"), w.Node("n1")
	config := fmt.Sprintf(`bgp:
  asn: 4200000000
  allowed_prefixes: [192.168.0.16/31]
  graceful_restart: true
  peers:
%s
services:
  - name: web
    vips: [192.168.0.16]
`, peersYAML(peer{"r1", r.Addr4(), 65535, ""}))
	p := startVipd(t, n1, config)
	waitFIB(t, r, vip4, n1.Addr4())
	if err := r.WaitEstablished(t.Context(), convergeTimeout, n1.Addr4()); err != nil {
		t.Fatal(err)
	}
	sinceBefore := establishedSince(t, r, n1)
	// A first start is no restart: the OPEN must not ask the router to
	// keep anything.
	checkRestartState(t, r, n1, false)

	// Record every change to the router's kernel routes from before the
	// stop until BIRD has dealt with the new session's End-of-RIB.
	routes := watchKernel(t, &r.Host, "route")
	if err := p.Stop(stopTimeout); err != nil {
		t.Fatal(err)
	}
	if got := loAddrs(t, n1); len(got) != 1 {
		t.Errorf("after a graceful stop lo holds %v, want the VIP kept", got)
	}
	waitGracefulRestart(t, r, n1, true)
	startVipd(t, n1, config)
	waitNewSession(t, r, sinceBefore)
	// BIRD keeps n1's stale routes until End-of-RIB and flushes those not
	// announced again then, before it answers the next command; a route
	// that left the FIB at any moment, even to come back, is a Deleted line
	// in the record.
	waitGracefulRestart(t, r, n1, false)
	checkRestartState(t, r, n1, true)
	if routes, err := r.BGPRoutes(t.Context(), vip4); err != nil || len(routes) != 1 {
		t.Errorf("router %s after End-of-RIB: routes %+v, %v; want n1's", r.Name(), routes, err)
	}
	waitFIB(t, r, vip4, n1.Addr4())
	if gone := routes.deletions(t, vip4); len(gone) != 0 {
		t.Errorf("the route left the router's FIB during a graceful restart: %q", gone)
	}
}

// A reload that restarts the speaker (here: new allowed_prefixes) under
// graceful restart is a graceful restart too: the route never leaves the
// router's FIB.
func TestGracefulRestartOnReload(t *testing.T) {
	w := birdWorld(t, 1, "")
	r, n1 := w.Router("r1"), w.Node("n1")
	config := func(allowed string) string {
		return fmt.Sprintf(`bgp:
  asn: 4200000000
  allowed_prefixes: [%s]
  graceful_restart: true
  peers:
%s
services:
  - name: web
    vips: [192.168.0.16]
`, allowed, peersYAML(peer{"r1", r.Addr4(), 65535, ""}))
	}
	p := startVipd(t, n1, config("192.168.0.16/31"))
	waitFIB(t, r, vip4, n1.Addr4())
	if err := r.WaitEstablished(t.Context(), convergeTimeout, n1.Addr4()); err != nil {
		t.Fatal(err)
	}
	sinceBefore := establishedSince(t, r, n1)
	routes := watchKernel(t, &r.Host, "route")

	args := p.Args()
	conf := args[len(args)-1] // run -c FILE
	if err := os.WriteFile(conf, []byte(config("192.168.0.16/30")+n1.RuntimeYAML()), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := vipdCLI(n1, "reload"); err != nil || !strings.Contains(out, `"sessions_reset": true`) {
		t.Fatalf("vipd reload: %v, want sessions reset\n%s", err, out)
	}
	waitNewSession(t, r, sinceBefore)
	waitGracefulRestart(t, r, n1, false)
	checkRestartState(t, r, n1, true)
	waitFIB(t, r, vip4, n1.Addr4())
	if gone := routes.deletions(t, vip4); len(gone) != 0 {
		t.Errorf("the route left the router's FIB during the reload: %q", gone)
	}
}

// checkRestartState checks the graceful-restart capability in the OPEN
// that BIRD router r received from node on the current session: with
// restarted, the Restart State bit ("Restart recovery") and forwarding
// state preserved for both families; otherwise neither.
func checkRestartState(t *testing.T, r *testnet.Router, node *testnet.Node, restarted bool) {
	t.Helper()
	block, err := birdSession(t.Context(), r, node)
	if err != nil {
		t.Fatal(err)
	}
	caps := block[strings.Index(block, "Neighbor capabilities"):]
	if !strings.Contains(caps, "Graceful restart\n") {
		t.Fatalf("router %s: %s offers no graceful restart:\n%s", r.Name(), node.Name(), block)
	}
	preserved := ""
	for line := range strings.Lines(caps) {
		if f, ok := strings.CutPrefix(strings.TrimSpace(line), "AF preserved:"); ok {
			preserved = strings.TrimSpace(f)
			break
		}
	}
	recovery := strings.Contains(caps, "Restart recovery\n")
	want := map[bool]string{true: "ipv4 ipv6", false: ""}[restarted]
	if recovery != restarted || preserved != want {
		t.Errorf("router %s: %s's OPEN: restart recovery %v, families preserved %q; want %v, %q:\n%s",
			r.Name(), node.Name(), recovery, preserved, restarted, want, block)
	}
}

// waitNewSession waits until router r's one session is Established again,
// as a new session (not the one established at since).
func waitNewSession(t *testing.T, r *testnet.Router, since time.Time) {
	t.Helper()
	err := testnet.WaitFor(t.Context(), convergeTimeout, func(ctx context.Context) error {
		sessions, err := r.Sessions(ctx)
		if err != nil {
			return err
		}
		if len(sessions) != 1 || sessions[0].State != testnet.Established || sameSession(sessions[0].Since, since) {
			return fmt.Errorf("no new session yet: %+v", sessions)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// waitGracefulRestart waits until BIRD router r is (active) or is no
// longer in a graceful restart for node: from the moment the session goes
// down gracefully until node's End-of-RIB on the next one.
func waitGracefulRestart(t *testing.T, r *testnet.Router, node *testnet.Node, active bool) {
	t.Helper()
	err := testnet.WaitFor(t.Context(), convergeTimeout, func(ctx context.Context) error {
		block, err := birdSession(ctx, r, node)
		if err != nil {
			return err
		}
		if strings.Contains(block, "Neighbor graceful restart active") != active {
			return fmt.Errorf("graceful restart active is not %v:\n%s", active, block)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("router %s, session with %s: %v", r.Name(), node.Name(), err)
	}
}

package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vipd/vipd/internal/api"
	"github.com/vipd/vipd/internal/bfd"
	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/internal/lb"
)

// These tests run the whole agent (store, API handlers, loop, health
// monitors) with fakes at its seams, and check the order in which it
// changes the data plane, the addresses and the routes.

func TestStartAddsRulesThenAddressThenRoute(t *testing.T) {
	h := newHarness(t, testConfig)
	h.start(t)
	events := h.rec.waitFor(t, 0, "rules +filter 198.51.100.1", "bind 198.51.100.1", "announce 198.51.100.1/32",
		"bind 198.51.100.3", "announce 198.51.100.3/32")
	before(t, events, "rules +filter 198.51.100.1", "bind 198.51.100.1")
	before(t, events, "bind 198.51.100.1", "announce 198.51.100.1/32")
	before(t, events, "bind 198.51.100.3", "announce 198.51.100.3/32")
}

// createLB makes a load balancer with one backend and returns its address.
func createLB(t *testing.T, h *harness) (id string, addr netip.Addr) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	l, _, err := h.CreateLoadBalancer(ctx, lb.Spec{Name: "web", Port: 80})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.AddBackend(ctx, l.UUID, lb.BackendSpec{IP: netip.MustParseAddr("10.0.0.5"), Port: 8080}); err != nil {
		t.Fatal(err)
	}
	return l.UUID, netip.MustParseAddr(l.EIP)
}

func TestLoadBalancerDeleteWithdrawsFirst(t *testing.T) {
	h := newHarness(t, testConfig)
	h.start(t)
	mark := h.rec.mark()
	id, addr := createLB(t, h)
	// Create and AddBackend return after their pass: the rules, the
	// address and the route are in place already, in that order.
	events, _ := h.rec.snapshot()
	events = events[mark:]
	before(t, events, "rules +lb "+addr.String(), "bind "+addr.String())
	before(t, events, "bind "+addr.String(), "announce "+addr.String()+"/32")

	mark = h.rec.mark()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := h.DeleteLoadBalancer(ctx, id); err != nil {
		t.Fatal(err)
	}
	// Delete returns once the route is withdrawn, the address released
	// and the rules removed, in that order.
	events, _ = h.rec.snapshot()
	events = events[mark:]
	before(t, events, "withdraw "+addr.String()+"/32", "unbind "+addr.String())
	before(t, events, "withdraw "+addr.String()+"/32", "rules -lb "+addr.String())
	if i := find(events, "withdraw 198.51.100.1/32"); i >= 0 {
		t.Errorf("deleting a load balancer withdrew a service VIP:\n  %s", strings.Join(events, "\n  "))
	}
}

func TestReloadRemovesAfterWithdrawal(t *testing.T) {
	h := newHarness(t, testConfig)
	h.start(t)
	h.rec.waitFor(t, 0, "announce 198.51.100.2/32", "announce 198.51.100.3/32")

	// A VIP dropped from a service.
	mark := h.rec.mark()
	if err := h.reloadWith(t, strings.Replace(testConfig, "vips: [198.51.100.1, 198.51.100.2]", "vips: [198.51.100.1]", 1)); err != nil {
		t.Fatal(err)
	}
	// The address and rules go removalDelay after the withdrawal.
	events := h.rec.waitFor(t, mark, "unbind 198.51.100.2", "rules -filter 198.51.100.2")
	before(t, events, "withdraw 198.51.100.2/32", "unbind 198.51.100.2")
	before(t, events, "withdraw 198.51.100.2/32", "rules -filter 198.51.100.2")
	if find(events, "withdraw 198.51.100.1/32") >= 0 || find(events, "unbind 198.51.100.1") >= 0 {
		t.Errorf("dropping one VIP touched the other:\n  %s", strings.Join(events, "\n  "))
	}

	// A service removed.
	mark = h.rec.mark()
	withoutDNS := strings.Replace(testConfig, "  - name: dns\n    vips: [198.51.100.3]\n", "", 1)
	if err := h.reloadWith(t, withoutDNS); err != nil {
		t.Fatal(err)
	}
	events = h.rec.waitFor(t, mark, "unbind 198.51.100.3")
	before(t, events, "withdraw 198.51.100.3/32", "unbind 198.51.100.3")
}

func TestDataplaneFailureWithdrawsOnlyItsLoadBalancer(t *testing.T) {
	h := newHarness(t, testConfig)
	h.start(t)
	id, addr := createLB(t, h)

	h.dp.setFail(errInjected)
	mark := h.rec.mark()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if _, err := h.AddBackend(ctx, id, lb.BackendSpec{IP: netip.MustParseAddr("10.0.0.6"), Port: 8080}); err != nil {
		t.Fatal(err)
	}
	events := h.rec.waitFor(t, mark, "withdraw "+addr.String()+"/32")
	if find(events, "withdraw 198.51.100.1/32") >= 0 || find(events, "unbind "+addr.String()) >= 0 {
		t.Errorf("a failed rules write withdrew a service or unbound the address:\n  %s", strings.Join(events, "\n  "))
	}
	if v := vipStatus(t, h, addr); v.Announced || v.ReasonCode != string(ReasonNoDataplane) {
		t.Errorf("status of %s: announced %v, reason %q; want withdrawn, %s", addr, v.Announced, v.ReasonCode, ReasonNoDataplane)
	}

	// The loop retries; once the write works, the address comes back.
	mark = h.rec.mark()
	h.dp.setFail(nil)
	events = h.rec.waitFor(t, mark, "announce "+addr.String()+"/32")
	before(t, events, "rules ~lb "+addr.String(), "announce "+addr.String()+"/32")
}

func vipStatus(t *testing.T, h *harness, addr netip.Addr) api.VIPStatus {
	t.Helper()
	for _, v := range h.Status().VIPs {
		if v.Prefix == netip.PrefixFrom(addr, 32).String() {
			return v
		}
	}
	t.Fatalf("no status for %s", addr)
	return api.VIPStatus{}
}

func TestShutdownWithdrawsThenRemoves(t *testing.T) {
	h := newHarness(t, testConfig)
	h.start(t)
	_, addr := createLB(t, h)
	mark := h.rec.mark()
	if err := h.stop(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	events, _ := h.rec.snapshot()
	events = events[mark:]
	before(t, events, "bgp stop", "bfd stop")
	before(t, events, "bgp stop", "rules deleted")
	before(t, events, "bgp stop", "unbind 198.51.100.1")
	before(t, events, "bgp stop", "unbind "+addr.String())
}

// The grace period and the work after it each have their own bound: a
// grace longer than the stop timeout must not leave the later steps an
// expired context.
func TestShutdownGraceLongerThanStopTimeout(t *testing.T) {
	h := newHarness(t, strings.Replace(testConfig, "  asn: 65001\n", "  asn: 65001\n  shutdown_grace: 600ms\n", 1))
	h.stopTimeout = 200 * time.Millisecond
	h.start(t)
	h.rec.waitFor(t, 0, "announce 198.51.100.1/32")
	mark := h.rec.mark()
	began := time.Now()
	if err := h.stop(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if took := time.Since(began); took < 600*time.Millisecond {
		t.Errorf("shutdown took %v, less than the grace period", took)
	}
	events, _ := h.rec.snapshot()
	events = events[mark:]
	before(t, events, "announce 198.51.100.1/32 med 0 communities [65535:0]", "bgp stop")
	before(t, events, "bgp stop", "rules deleted")
	before(t, events, "bgp stop", "unbind 198.51.100.1")
}

func TestGracefulRestartLeavesRoutesAndAddresses(t *testing.T) {
	h := newHarness(t, strings.Replace(testConfig, "  asn: 65001\n", "  asn: 65001\n  graceful_restart: true\n", 1))
	h.start(t)
	h.rec.waitFor(t, 0, "announce 198.51.100.1/32")
	mark := h.rec.mark()
	if err := h.stop(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	events, _ := h.rec.snapshot()
	events = events[mark:]
	if find(events, "bgp stop") < 0 {
		t.Errorf("the speaker was not stopped:\n  %s", strings.Join(events, "\n  "))
	}
	for _, bad := range []string{"withdraw", "unbind", "rules -", "rules deleted"} {
		if find(events, bad) >= 0 {
			t.Errorf("a graceful-restart stop did %q:\n  %s", bad, strings.Join(events, "\n  "))
		}
	}
}

// Only a start that follows a graceful-restart stop tells the speaker it
// is restarting, once: not the first start, not a start after a full stop,
// not a start with graceful restart turned off (which still clears the
// mark).
func TestRestartingOnlyAfterAGracefulStop(t *testing.T) {
	gr := strings.Replace(testConfig, "  asn: 65001\n", "  asn: 65001\n  graceful_restart: true\n", 1)
	h := newHarness(t, gr)
	for i, step := range []struct {
		config string
		want   bool
	}{
		{gr, false},         // first start
		{gr, true},          // after a graceful stop
		{testConfig, false}, // after a graceful stop, but graceful restart is now off
		{gr, false},         // after a full stop
	} {
		if i > 0 {
			h.nextProcess(t, step.config)
		}
		mark := h.rec.mark()
		h.start(t)
		want := fmt.Sprintf("bgp start restarting=%v", step.want)
		if events, _ := h.rec.snapshot(); find(events[mark:], want) < 0 {
			t.Errorf("start %d: no %q:\n  %s", i+1, want, strings.Join(events[mark:], "\n  "))
		}
		if err := h.stop(t); err != nil {
			t.Fatalf("start %d: Run: %v", i+1, err)
		}
	}
}

// A reload that restarts the speaker under graceful restart stops the old
// one gracefully, so the new one starts as a restart; otherwise not.
func TestReloadRestartingSpeaker(t *testing.T) {
	gr := strings.Replace(testConfig, "  asn: 65001\n", "  asn: 65001\n  graceful_restart: true\n", 1)
	newASN := func(yaml string) string { return strings.Replace(yaml, "  asn: 65001\n", "  asn: 65002\n", 1) }
	for _, tc := range []struct {
		name     string
		old, cfg string
		want     bool
	}{
		{"graceful restart in both", gr, newASN(gr), true},
		{"without graceful restart", testConfig, newASN(testConfig), false},
		{"graceful restart turned off", gr, newASN(testConfig), false},
		{"graceful restart turned on", testConfig, newASN(gr), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.old)
			h.start(t)
			mark := h.rec.mark()
			if err := h.reloadWith(t, tc.cfg); err != nil {
				t.Fatal(err)
			}
			want := fmt.Sprintf("bgp start restarting=%v", tc.want)
			if events, _ := h.rec.snapshot(); find(events[mark:], want) < 0 {
				t.Errorf("no %q after the reload:\n  %s", want, strings.Join(events[mark:], "\n  "))
			}
		})
	}
}

// nextProcess makes h's agent a new one for yaml on the same state
// directory and fakes, as a restarted vipd.
func (h *harness) nextProcess(t *testing.T, yaml string) {
	t.Helper()
	writeConfig(t, h.path, fmt.Sprintf(yaml, h.dir))
	cfg, err := config.Load(h.path)
	if err != nil {
		t.Fatal(err)
	}
	act := h.act
	h.Agent = New(h.path, cfg, "test", slog.New(slog.DiscardHandler))
	h.act = act
}

const twoPeers = "    - {name: r1, address: 192.0.2.254, asn: 65000}\n    - {name: r2, address: 192.0.2.253, asn: 65000}\n"

func TestReloadFailingHalfWayRollsBack(t *testing.T) {
	withPeers := func(peers string) string {
		return strings.Replace(testConfig, "    - {name: r1, address: 192.0.2.254, asn: 65000}\n", peers, 1)
	}
	four := twoPeers + "    - {name: r3, address: 192.0.2.252, asn: 65000}\n    - {name: r4, address: 192.0.2.251, asn: 65000, bfd: {enabled: true}}\n"

	for _, tc := range []struct {
		name   string
		inject func(h *harness)
		step   string
	}{
		{"bgp peers", func(h *harness) {
			h.speaker.failPeers = func(peers []config.Peer) error {
				if len(peers) == 4 {
					return errInjected
				}
				return nil
			}
		}, "bgp peers"},
		{"bfd", func(h *harness) {
			h.bfd.fail = func(peers []bfd.Peer) error {
				if len(peers) == 1 { // r4's
					return errInjected
				}
				return nil
			}
		}, "bfd"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, withPeers(twoPeers))
			h.start(t)
			hash := h.hash
			tc.inject(h)
			err := h.reloadWith(t, withPeers(four))
			var re *ReloadError
			if !errors.As(err, &re) || !re.RolledBack || re.Step != tc.step || !errors.Is(err, errInjected) {
				t.Fatalf("reload: %v; want a rolled-back ReloadError at step %q", err, tc.step)
			}
			if !strings.Contains(err.Error(), "rolled back") {
				t.Errorf("the reply does not say it rolled back: %v", err)
			}
			if got := peerNames(h.speaker.peerList()); got != "r1,r2" {
				t.Errorf("speaker peers after the failed reload: %s, want r1,r2", got)
			}
			h.mu.Lock()
			defer h.mu.Unlock()
			if h.hash != hash || len(h.cfg.BGP.Peers) != 2 {
				t.Errorf("the running config changed: hash %s (was %s), %d peers", h.hash, hash, len(h.cfg.BGP.Peers))
			}
		})
	}
}

// A reload stuck on a peer must not hold up the shutdown.
func TestStuckReloadDoesNotHoldShutdown(t *testing.T) {
	h := newHarness(t, testConfig)
	h.speaker.blockPeer = netip.MustParseAddr("192.0.2.253")
	h.start(t)
	h.rec.waitFor(t, 0, "announce 198.51.100.1/32")

	reloaded := make(chan error, 1)
	writeConfig(t, h.path, fmt.Sprintf(strings.Replace(testConfig, "    - {name: r1, address: 192.0.2.254, asn: 65000}\n", twoPeers, 1), h.dir))
	go func() {
		_, err := h.Reload(context.Background())
		reloaded <- err
	}()
	h.rec.waitFor(t, 0, "peers blocked")
	mark := h.rec.mark()
	if err := h.stop(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	select {
	case err := <-reloaded:
		if err == nil {
			t.Error("the stuck reload reported success")
		}
	case <-time.After(waitTimeout):
		t.Fatal("the stuck reload never returned")
	}
	events, _ := h.rec.snapshot()
	before(t, events[mark:], "bgp stop", "unbind 198.51.100.1")
}

// extSource is a source like Kubernetes will be: one service, no checks.
func extSource(vips ...string) Source {
	svc := config.Service{Name: "ext", Interface: "lo", Bind: true, OnDown: config.OnDownWithdraw}
	for _, v := range vips {
		svc.VIPs = append(svc.VIPs, netip.MustParseAddr(v))
	}
	return SourceFunc(func() Snapshot { return Snapshot{Services: []config.Service{svc}} })
}

func TestSourceRemovedWithdrawsThenUnbinds(t *testing.T) {
	h := newHarness(t, testConfig)
	h.start(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	mark := h.rec.mark()
	if err := h.SetSource(ctx, "ext", extSource("198.51.100.50")); err != nil {
		t.Fatal(err)
	}
	events, _ := h.rec.snapshot()
	before(t, events[mark:], "bind 198.51.100.50", "announce 198.51.100.50/32")

	mark = h.rec.mark()
	if err := h.SetSource(ctx, "ext", nil); err != nil {
		t.Fatal(err)
	}
	events = h.rec.waitFor(t, mark, "unbind 198.51.100.50")
	before(t, events, "withdraw 198.51.100.50/32", "unbind 198.51.100.50")
	if slices.ContainsFunc(h.Status().Services, func(s api.ServiceStatus) bool { return s.Name == "ext" }) {
		t.Error("status still lists the removed source's service")
	}
}

// TestNewLoadBalancerTakesALeavingOnesAddress: a load balancer deleted
// and another created on its address at once (two nodes of a cluster can
// do that) must not leave the two clashing in the data plane, which
// refuses a state where both listen on one address and port.
func TestNewLoadBalancerTakesALeavingOnesAddress(t *testing.T) {
	h := newHarness(t, testConfig)
	h.start(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	addr := netip.MustParseAddr("198.51.100.60")
	source := func(id string) Source {
		l := lb.LoadBalancer{UUID: id, Spec: lb.Spec{Name: "lb-" + id, Port: 80, Address: addr, OnEmpty: lb.OnEmptyAnnounce}.WithDefaults()}
		return SourceFunc(func() Snapshot { return Snapshot{LoadBalancers: []lb.LoadBalancer{l}} })
	}
	mark := h.rec.mark()
	if err := h.SetSource(ctx, "ext", source("old")); err != nil {
		t.Fatal(err)
	}
	h.rec.waitFor(t, mark, "announce 198.51.100.60/32")
	if err := h.SetSource(ctx, "ext", source("new")); err != nil {
		t.Fatal(err)
	}
	if v := vipStatus(t, h, addr); !v.Announced || v.Service != "lb/lb-new" {
		events, _ := h.rec.snapshot()
		t.Errorf("after the swap %s is announced %v for %s (%s); want announced for lb/lb-new\n  %s",
			addr, v.Announced, v.Service, v.ReasonCode, strings.Join(events[mark:], "\n  "))
	}
	if events, _ := h.rec.snapshot(); find(events[mark:], "rules refused") >= 0 {
		t.Errorf("the data plane was handed both load balancers:\n  %s", strings.Join(events[mark:], "\n  "))
	}
}

func TestSourceCannotTakeAConfiguredVIP(t *testing.T) {
	h := newHarness(t, testConfig)
	h.start(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := h.SetSource(ctx, "ext", extSource("198.51.100.1", "198.51.100.51")); err != nil {
		t.Fatal(err)
	}
	h.rec.waitFor(t, 0, "announce 198.51.100.51/32")
	var web, ext int
	for _, v := range h.Status().VIPs {
		if v.Prefix != "198.51.100.1/32" {
			continue
		}
		switch v.Service {
		case "web":
			web++
			if !v.Announced {
				t.Errorf("web's VIP is no longer announced: %+v", v)
			}
		case "ext":
			ext++
			if v.Announced || v.ReasonCode != string(ReasonConflict) || !strings.Contains(v.Reason, "web") {
				t.Errorf("ext's claim on web's VIP: %+v; want withdrawn, conflict, naming web", v)
			}
		}
	}
	if web != 1 || ext != 1 {
		t.Errorf("198.51.100.1 listed %d times for web and %d for ext, want once each", web, ext)
	}
}

// A taken listener port fails the start before any BGP session opens.
func TestListenersBindBeforeSessions(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	h := newHarness(t, strings.Replace(testConfig, `metrics: {listen: ""}`, "metrics: {listen: \""+ln.Addr().String()+"\"}", 1))
	err = h.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "metrics.listen") {
		t.Fatalf("Run with a taken metrics port: %v, want a metrics.listen error", err)
	}
	if n := h.started.Load(); n != 0 {
		t.Errorf("%d BGP speakers were started before the listener failed", n)
	}
}

// Status says which services check at their fast interval: one with
// checks and no decision yet does, one without checks never does.
func TestStatusShowsFastRounds(t *testing.T) {
	h := newHarness(t, strings.Replace(testConfig, "    ports: [80]\n",
		"    ports: [80]\n    checks: [{tcp: {address: \"127.0.0.1:1\"}}]\n    interval: 1h\n    fast_interval: 1h\n", 1))
	h.start(t)
	fast := map[string]bool{}
	for _, s := range h.Status().Services {
		fast[s.Name] = s.FastRounds
	}
	if want := map[string]bool{"web": true, "dns": false}; !maps.Equal(fast, want) {
		t.Errorf("fast rounds by service: %v, want %v", fast, want)
	}
}

// verdictSource is a source that decides its one service's health itself,
// as Kubernetes does, and records what the agent tells it.
type verdictSource struct {
	mu      sync.Mutex
	verdict Verdict
	told    []string
}

func (s *verdictSource) set(v Verdict) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.verdict = v
}

func (s *verdictSource) Snapshot() Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Snapshot{
		Services: []config.Service{{Name: "ns/app", VIPs: []netip.Addr{netip.MustParseAddr("198.51.100.60")}, Interface: "lo", Bind: true}},
		Verdicts: map[string]Verdict{"ns/app": s.verdict},
		Refused: []Refusal{{Service: "ns/app", Addr: netip.MustParseAddr("203.0.113.1"), Reason: "address_not_allowed",
			Detail: "203.0.113.1 is outside bgp.allowed_prefixes"}},
	}
}

func (s *verdictSource) Announced(service string, announced bool, why string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.told = append(s.told, fmt.Sprintf("%s %v: %s", service, announced, why))
}

func (s *verdictSource) heard() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.told)
}

// A source's verdict decides the announcement (bound either way), the
// operator's drain still wins, a refused address shows in status without
// being bound, and the source hears each start and stop once.
func TestSourceVerdicts(t *testing.T) {
	h := newHarness(t, testConfig)
	h.start(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	src := &verdictSource{verdict: Verdict{Up: false, Reason: "no_serving_endpoint", Detail: "no endpoint of ns/app is serving"}}
	if err := h.SetSource(ctx, "kube", src); err != nil {
		t.Fatal(err)
	}
	h.rec.waitFor(t, 0, "bind 198.51.100.60")
	vip := func(prefix string) api.VIPStatus {
		for _, v := range h.Status().VIPs {
			if v.Prefix == prefix {
				return v
			}
		}
		t.Fatalf("no %s in status", prefix)
		return api.VIPStatus{}
	}
	if v := vip("198.51.100.60/32"); v.Announced || v.ReasonCode != "no_serving_endpoint" || v.Reason != "no endpoint of ns/app is serving" {
		t.Errorf("down verdict: %+v", v)
	}
	if v := vip("203.0.113.1/32"); v.Announced || v.Bound || v.ReasonCode != "address_not_allowed" {
		t.Errorf("refused address: %+v", v)
	}

	mark := h.rec.mark()
	src.set(Verdict{Up: true, Reason: "endpoints_serving", Detail: "serving endpoints: 2"})
	h.Wake()
	h.rec.waitFor(t, mark, "announce 198.51.100.60/32")

	if err := h.Drain(ctx, "ns/app"); err != nil {
		t.Fatal(err)
	}
	h.rec.waitFor(t, mark, "withdraw 198.51.100.60/32")
	if v := vip("198.51.100.60/32"); v.ReasonCode != string(ReasonDrained) {
		t.Errorf("drained: %+v", v)
	}
	if err := h.Undrain(ctx, "ns/app"); err != nil {
		t.Fatal(err)
	}
	h.pass(t)
	want := []string{
		"ns/app true: serving endpoints: 2",
		"ns/app false: drained by operator",
		"ns/app true: serving endpoints: 2",
	}
	if got := src.heard(); !slices.Equal(got, want) {
		t.Errorf("the source heard %q, want %q", got, want)
	}
	events, _ := h.rec.snapshot()
	for _, e := range events {
		if strings.Contains(e, "203.0.113.1") {
			t.Errorf("the refused address reached an actuator: %q", e)
		}
	}
}

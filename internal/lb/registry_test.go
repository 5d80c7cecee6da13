package lb

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/vipd/vipd/internal/config"
)

var (
	poolA = config.Pool{Name: "a", Prefixes: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/30")}}
	poolB = config.Pool{Name: "b", Prefixes: []netip.Prefix{netip.MustParsePrefix("2001:db8::/126")}}
)

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

func newRegistry(t *testing.T, pools ...config.Pool) *Registry {
	t.Helper()
	r, err := NewRegistry(pools, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// create plans and puts, as the agent does after persisting.
func create(t *testing.T, r *Registry, spec Spec) LoadBalancer {
	t.Helper()
	l, _, err := r.PlanCreate(spec)
	if err != nil {
		t.Fatalf("PlanCreate(%+v): %v", spec, err)
	}
	r.Put(l)
	return l
}

func TestAllocateLowestFreeAndRelease(t *testing.T) {
	r := newRegistry(t, poolA)
	var got []netip.Addr
	for _, name := range []string{"w0", "w1", "w2", "w3"} {
		got = append(got, create(t, r, Spec{Name: name, Port: 80}).Address())
	}
	want := []netip.Addr{addr("192.0.2.0"), addr("192.0.2.1"), addr("192.0.2.2"), addr("192.0.2.3")}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("lb %d got %s, want %s", i, got[i], want[i])
		}
	}
	_, _, err := r.PlanCreate(Spec{Name: "w4", Port: 80})
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "exhausted") {
		t.Fatalf("full pool: got %v, want an exhausted conflict", err)
	}
	// Releasing one address makes exactly that address free again.
	w1, _ := r.Get(r.byName("w1").UUID)
	r.Remove(w1.UUID)
	if l := create(t, r, Spec{Name: "w5", Port: 80}); l.Address() != w1.Address() {
		t.Errorf("after release got %s, want the released %s", l.Address(), w1.Address())
	}
}

func TestPlanDoesNotChangeTheRegistry(t *testing.T) {
	r := newRegistry(t, poolA)
	a, _, err := r.PlanCreate(Spec{Name: "w", Port: 80})
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := r.PlanCreate(Spec{Name: "x", Port: 80})
	if err != nil {
		t.Fatal(err)
	}
	if a.Address() != b.Address() || len(r.List()) != 0 {
		t.Errorf("plans changed the registry: %s, %s, %d stored", a.Address(), b.Address(), len(r.List()))
	}
}

func TestCreateIsIdempotent(t *testing.T) {
	r := newRegistry(t, poolA)
	first := create(t, r, Spec{Name: "web", Port: 80})
	again, exists, err := r.PlanCreate(Spec{Name: "web", Port: 80, Protocol: TCP})
	if err != nil || !exists || again.UUID != first.UUID {
		t.Fatalf("same spec again: %v exists=%v uuid %s, want the first (%s)", err, exists, again.UUID, first.UUID)
	}
	// The explicit address it got also matches.
	if _, exists, err := r.PlanCreate(Spec{Name: "web", Port: 80, Address: first.Address()}); err != nil || !exists {
		t.Fatalf("same spec with its address: %v exists=%v", err, exists)
	}
	for _, spec := range []Spec{
		{Name: "web", Port: 81},
		{Name: "web", Port: 80, Protocol: UDP},
		{Name: "web", Port: 80, Address: addr("192.0.2.3")},
	} {
		if _, _, err := r.PlanCreate(spec); !errors.Is(err, ErrConflict) {
			t.Errorf("PlanCreate(%+v) = %v, want a conflict", spec, err)
		}
	}
}

func TestExplicitAddress(t *testing.T) {
	r := newRegistry(t, poolA, poolB)
	l := create(t, r, Spec{Name: "v6", Port: 53, Protocol: UDP, Address: addr("2001:db8::2")})
	if l.Spec.Pool != "b" {
		t.Errorf("pool = %q, want b (the one holding the address)", l.Spec.Pool)
	}
	_, _, err := r.PlanCreate(Spec{Name: "other", Port: 80, Address: addr("2001:db8::2")})
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), `"v6"`) {
		t.Errorf("taken address: %v, want a conflict naming v6", err)
	}
}

func TestCreateFieldErrors(t *testing.T) {
	r := newRegistry(t, poolA, poolB)
	noPools := newRegistry(t)
	for _, tc := range []struct {
		r     *Registry
		spec  Spec
		field string
	}{
		{r, Spec{Name: "", Port: 80}, "name"},
		{r, Spec{Name: "a\tb", Port: 80}, "name"},
		{r, Spec{Name: "a\nb", Port: 80}, "name"},
		{r, Spec{Name: " web", Port: 80}, "name"},
		{r, Spec{Name: "web\u00a0", Port: 80}, "name"},
		{r, Spec{Name: "\xff", Port: 80}, "name"},
		{r, Spec{Name: "a\u200bb", Port: 80}, "name"}, // zero-width space: invisible
		{r, Spec{Name: strings.Repeat("x", MaxNameLen+1), Port: 80}, "name"},
		{r, Spec{Name: "test loadbalancer", Port: 80, Pool: "a"}, ""}, // Vippy's guide
		{r, Spec{Name: "Käse/Shop #1 (prod)", Port: 81, Pool: "a"}, ""},
		{r, Spec{Name: strings.Repeat("é", MaxNameLen/2), Port: 82, Pool: "a"}, ""},
		{r, Spec{Name: "w"}, "port"},
		{r, Spec{Name: "w", Port: 80, Protocol: "sctp"}, "protocol"},
		{r, Spec{Name: "w", Port: 80, Mode: "tunnel"}, "mode"},
		{r, Spec{Name: "w", Port: 80, Mode: ModeDSR, Masquerade: new(true)}, "masquerade"},
		{r, Spec{Name: "w", Port: 80, OnEmpty: "hope"}, "on_empty"},
		{r, Spec{Name: "w", Port: 80, Mode: ModeLocal, Masquerade: new(true)}, "masquerade"},
		{r, Spec{Name: "w", Port: 80, Pool: "a"}, ""}, // fine: proves the table's setup
		{r, Spec{Name: "w", Port: 80}, "pool"},        // two pools: which?
		{r, Spec{Name: "w", Port: 80, Pool: "c"}, "pool"},
		{r, Spec{Name: "w", Port: 80, Pool: "a", Address: addr("2001:db8::1")}, "address"},
		{r, Spec{Name: "w", Port: 80, Address: addr("198.51.100.1")}, "address"},
		{r, Spec{Name: "w", Port: 80, Address: addr("127.0.0.1")}, "address"},
		{r, Spec{Name: "w", Port: 80, Pool: "a", Ports: []uint16{22, 0}}, "ports[1]"},
		{r, Spec{Name: "w", Port: 80, Pool: "a", Ports: []uint16{22, 22}}, "ports[1]"},
		{r, Spec{Name: "w", Port: 80, Pool: "a", Check: &Check{Type: "icmp"}}, "check.type"},
		{r, Spec{Name: "w", Port: 80, Pool: "a", Check: &Check{Type: CheckHTTP, Path: "healthz"}}, "check.path"},
		{r, Spec{Name: "w", Port: 80, Pool: "a", Check: &Check{Type: CheckTCP, Path: "/"}}, "check.path"},
		{r, Spec{Name: "w", Port: 80, Pool: "a", Check: &Check{Type: CheckTCP, Interval: 10}}, "check.interval"},
		{r, Spec{Name: "w", Port: 80, Pool: "a", Check: &Check{Type: CheckTCP, Timeout: 2e9}}, "check.timeout"},
		{r, Spec{Name: "w", Port: 80, Pool: "a", Check: &Check{Type: CheckTCP, Interval: 2e9, FastInterval: 3e9}}, "check.fast_interval"},
		{r, Spec{Name: "w", Port: 80, Pool: "a", Check: &Check{Type: CheckTCP, Rise: 101}}, "check.rise"},
		{r, Spec{Name: "w", Port: 80, Pool: "a", Check: &Check{Type: CheckHTTP, StatusMin: 300, StatusMax: 200}}, "check.expect_status"},
		{noPools, Spec{Name: "w", Port: 80}, "pool"},
	} {
		_, _, err := tc.r.PlanCreate(tc.spec)
		var fe *FieldError
		switch {
		case tc.field == "" && err != nil:
			t.Errorf("PlanCreate(%+v) = %v, want no error", tc.spec, err)
		case tc.field != "" && (!errors.As(err, &fe) || fe.Field != tc.field):
			t.Errorf("PlanCreate(%+v) = %v, want a field error on %s", tc.spec, err, tc.field)
		}
	}
}

func TestBackends(t *testing.T) {
	r := newRegistry(t, poolA)
	l := create(t, r, Spec{Name: "web", Port: 80})
	l, err := r.PlanAddBackend(l.UUID, BackendSpec{IP: addr("10.0.0.1"), Port: 8080})
	if err != nil {
		t.Fatal(err)
	}
	r.Put(l)
	if len(l.Backends) != 1 || l.Backends[0].Weight != 1 || l.Backends[0].UUID == "" {
		t.Fatalf("backends = %+v, want one of weight 1 with a UUID", l.Backends)
	}
	// The same backend again changes nothing; with another weight it conflicts.
	if again, err := r.PlanAddBackend(l.UUID, BackendSpec{IP: addr("10.0.0.1"), Port: 8080}); err != nil || len(again.Backends) != 1 {
		t.Errorf("same backend again: %v, %d backends", err, len(again.Backends))
	}
	if _, err := r.PlanAddBackend(l.UUID, BackendSpec{IP: addr("10.0.0.1"), Port: 8080, Weight: 5}); !errors.Is(err, ErrConflict) {
		t.Errorf("same backend, new weight: %v, want a conflict", err)
	}
	for _, tc := range []struct {
		b     BackendSpec
		field string
	}{
		{BackendSpec{Port: 80}, "ip"},
		{BackendSpec{IP: addr("10.0.0.2")}, "port"},
		{BackendSpec{IP: addr("10.0.0.2"), Port: 80, Weight: 101}, "weight"},
		{BackendSpec{IP: addr("2001:db8::9"), Port: 80}, "ip"},
		{BackendSpec{IP: l.Address(), Port: 80}, "ip"},
		{BackendSpec{IP: addr("224.0.0.1"), Port: 80}, "ip"},
	} {
		var fe *FieldError
		if _, err := r.PlanAddBackend(l.UUID, tc.b); !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("PlanAddBackend(%+v) = %v, want a field error on %s", tc.b, err, tc.field)
		}
	}
	if _, err := r.PlanAddBackend("nope", BackendSpec{IP: addr("10.0.0.2"), Port: 80}); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown lb: %v, want not found", err)
	}
	if _, err := r.PlanRemoveBackend(l.UUID, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown backend: %v, want not found", err)
	}
	removed, err := r.PlanRemoveBackend(l.UUID, l.Backends[0].UUID)
	if err != nil || len(removed.Backends) != 0 {
		t.Fatalf("remove: %v, %d left", err, len(removed.Backends))
	}
	if stored, _ := r.Get(l.UUID); len(stored.Backends) != 1 {
		t.Errorf("a plan changed the stored load balancer")
	}
}

func TestLocalModeBackends(t *testing.T) {
	r := newRegistry(t, poolA)
	l := create(t, r, Spec{Name: "local", Port: 80, Mode: ModeLocal})
	if *l.Spec.Masquerade {
		t.Error("local mode masquerades by default")
	}
	got, err := r.PlanAddBackend(l.UUID, BackendSpec{Port: 8080})
	if err != nil || got.Backends[0].IP != l.Address() {
		t.Fatalf("local backend: %v %+v, want it on %s", err, got.Backends, l.Address())
	}
	var fe *FieldError
	if _, err := r.PlanAddBackend(l.UUID, BackendSpec{IP: addr("10.0.0.1"), Port: 8080}); !errors.As(err, &fe) || fe.Field != "ip" {
		t.Errorf("remote backend in local mode: %v, want a field error on ip", err)
	}
}

func TestDSRModeBackends(t *testing.T) {
	r := newRegistry(t, poolA)
	l := create(t, r, Spec{Name: "dsr", Port: 80, Mode: ModeDSR})
	if *l.Spec.Masquerade {
		t.Error("dsr mode masquerades by default")
	}
	got, err := r.PlanAddBackend(l.UUID, BackendSpec{IP: addr("10.0.0.1")})
	if err != nil || got.Backends[0].Port != 80 {
		t.Fatalf("dsr backend without a port: %v %+v, want port 80", err, got.Backends)
	}
	var fe *FieldError
	if _, err := r.PlanAddBackend(l.UUID, BackendSpec{IP: addr("10.0.0.2"), Port: 8080}); !errors.As(err, &fe) || fe.Field != "port" {
		t.Errorf("dsr backend on another port: %v, want a field error on port", err)
	}
	if _, err := r.PlanAddBackend(l.UUID, BackendSpec{IP: l.Address()}); !errors.As(err, &fe) || fe.Field != "ip" {
		t.Errorf("dsr backend on the load balancer's own address: %v, want a field error on ip", err)
	}
}

func TestSetPoolsRefusesOrphans(t *testing.T) {
	r := newRegistry(t, poolA, poolB)
	create(t, r, Spec{Name: "web", Port: 80, Pool: "a", Address: addr("192.0.2.2")})
	shrunk := config.Pool{Name: "a", Prefixes: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/31")}}
	for _, pools := range [][]config.Pool{{poolB}, {shrunk, poolB}} {
		err := r.SetPools(pools)
		if err == nil || !strings.Contains(err.Error(), `"web"`) {
			t.Errorf("SetPools(%v) = %v, want an error naming web", pools, err)
		}
	}
	if len(r.Pools()) != 2 {
		t.Error("a refused SetPools changed the pools")
	}
	grown := config.Pool{Name: "a", Prefixes: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/29")}}
	if err := r.SetPools([]config.Pool{grown}); err != nil {
		t.Errorf("growing the pool: %v", err)
	}
}

func TestNewRegistryRefusesInconsistentState(t *testing.T) {
	l := LoadBalancer{UUID: "u1", Spec: Spec{Name: "web", Port: 80, Pool: "a", Address: addr("192.0.2.1")}.WithDefaults()}
	dupName := l
	dupName.UUID, dupName.Spec.Address = "u2", addr("192.0.2.2")
	dupAddr := l
	dupAddr.UUID, dupAddr.Spec.Name = "u3", "api"
	for _, lbs := range [][]LoadBalancer{{l, l}, {l, dupName}, {l, dupAddr}} {
		if _, err := NewRegistry([]config.Pool{poolA}, lbs); err == nil {
			t.Errorf("NewRegistry(%d lbs) accepted an inconsistent state", len(lbs))
		}
	}
	if _, err := NewRegistry([]config.Pool{poolB}, []LoadBalancer{l}); err == nil || !strings.Contains(err.Error(), "web") {
		t.Errorf("orphaned lb at start: %v, want an error naming it", err)
	}
	if _, err := NewRegistry([]config.Pool{poolA}, []LoadBalancer{l}); err != nil {
		t.Errorf("consistent state: %v", err)
	}
}

func TestSpecialAddressesRefused(t *testing.T) {
	// A pool as wide as a careless allowed_prefixes: config refuses it,
	// but a registry must not hand out or accept special addresses even
	// so.
	wide := config.Pool{Name: "w", Prefixes: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}}
	r := newRegistry(t, wide)
	for _, a := range []string{"127.0.0.2", "255.255.255.255", "0.0.0.1", "240.0.0.1", "224.0.0.1", "169.254.1.1"} {
		_, _, err := r.PlanCreate(Spec{Name: "x", Port: 80, Address: addr(a)})
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != "address" {
			t.Errorf("address %s: got %v, want a field error on address", a, err)
		}
	}
	if l := create(t, r, Spec{Name: "first", Port: 80}); l.Address() != addr("1.0.0.0") {
		t.Errorf("first allocation from 0.0.0.0/0 = %s, want 1.0.0.0 (0.0.0.0/8 skipped)", l.Address())
	}
}

func TestHostAddressesSkipped(t *testing.T) {
	r := newRegistry(t, poolA)
	calls := 0
	r.SetHostAddrs(func() (map[netip.Addr]string, error) {
		calls++
		return map[netip.Addr]string{addr("192.0.2.0"): "lo", addr("192.0.2.2"): "eth0"}, nil
	})
	var got []netip.Addr
	for _, name := range []string{"a", "b"} {
		got = append(got, create(t, r, Spec{Name: name, Port: 80}).Address())
	}
	if got[0] != addr("192.0.2.1") || got[1] != addr("192.0.2.3") {
		t.Errorf("allocated %v, want [192.0.2.1 192.0.2.3]: the host's own addresses skipped", got)
	}
	if calls != 2 {
		t.Errorf("host addresses looked up %d times, want once per create", calls)
	}
	_, _, err := r.PlanCreate(Spec{Name: "c", Port: 80})
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "already on this host") {
		t.Errorf("pool full but for host addresses: got %v, want an exhausted conflict", err)
	}
	_, _, err = r.PlanCreate(Spec{Name: "c", Port: 80, Address: addr("192.0.2.2")})
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "interface eth0") {
		t.Errorf("explicit host address: got %v, want a conflict naming eth0", err)
	}
	r.SetHostAddrs(func() (map[netip.Addr]string, error) { return nil, errors.New("netlink down") })
	if _, _, err := r.PlanCreate(Spec{Name: "d", Port: 80}); err == nil || errors.Is(err, ErrConflict) {
		t.Errorf("failed lookup: got %v, want a plain error (500)", err)
	}
}

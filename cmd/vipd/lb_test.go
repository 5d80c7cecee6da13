package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vipd/vipd/internal/api"
	"github.com/vipd/vipd/internal/lb"
)

// lbDaemon plays the daemon's load-balancer backend: it keeps load
// balancers in memory and records the last specs the API decoded.
type lbDaemon struct {
	mu          sync.Mutex
	lbs         []api.LoadBalancer
	next        int
	lastSpec    lb.Spec
	lastBackend lb.BackendSpec
}

func (d *lbDaemon) Status() api.Status                               { return api.Status{} }
func (d *lbDaemon) Reload(context.Context) (api.ReloadResult, error) { return api.ReloadResult{}, nil }
func (d *lbDaemon) Drain(context.Context, string) error              { return nil }
func (d *lbDaemon) Undrain(context.Context, string) error            { return nil }
func (d *lbDaemon) Cluster() (api.ClusterStatus, error)              { return api.ClusterStatus{}, api.ErrNotFound }

func (d *lbDaemon) CreateLoadBalancer(_ context.Context, spec lb.Spec) (api.LoadBalancer, bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.lastSpec = spec
	for _, l := range d.lbs {
		if l.Name == spec.Name {
			return l, false, nil
		}
	}
	if spec.Port == 0 {
		return api.LoadBalancer{}, false, &lb.FieldError{Field: "port", Msg: "want 1..65535"}
	}
	d.next++
	l := api.LoadBalancer{UUID: fmt.Sprintf("uuid-%d", d.next), Name: spec.Name, EIP: fmt.Sprintf("198.51.100.%d", d.next),
		Port: spec.Port, Protocol: "tcp", Mode: "nat", Pool: "default", Ports: []uint16{}, Masquerade: true,
		OnEmpty: "withdraw", Backends: []api.LoadBalancerBackend{}, Reason: "no backend up",
		Created: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
	d.lbs = append(d.lbs, l)
	return l, true, nil
}

func (d *lbDaemon) LoadBalancers() []api.LoadBalancer {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]api.LoadBalancer(nil), d.lbs...)
}

func (d *lbDaemon) find(uuid string) (int, error) {
	for i, l := range d.lbs {
		if l.UUID == uuid {
			return i, nil
		}
	}
	return 0, fmt.Errorf("load balancer %q: %w", uuid, api.ErrNotFound)
}

func (d *lbDaemon) LoadBalancer(uuid string) (api.LoadBalancer, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	i, err := d.find(uuid)
	if err != nil {
		return api.LoadBalancer{}, err
	}
	return d.lbs[i], nil
}

func (d *lbDaemon) DeleteLoadBalancer(_ context.Context, uuid string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	i, err := d.find(uuid)
	if err != nil {
		return err
	}
	d.lbs = append(d.lbs[:i], d.lbs[i+1:]...)
	return nil
}

func (d *lbDaemon) AddBackend(_ context.Context, lbUUID string, b lb.BackendSpec) (api.LoadBalancer, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.lastBackend = b
	i, err := d.find(lbUUID)
	if err != nil {
		return api.LoadBalancer{}, err
	}
	d.next++
	ip := ""
	if b.IP.IsValid() {
		ip = b.IP.String()
	}
	d.lbs[i].Backends = append(d.lbs[i].Backends, api.LoadBalancerBackend{UUID: fmt.Sprintf("be-%d", d.next), IP: ip,
		Port: b.Port, Weight: max(b.Weight, 1), State: "up"})
	return d.lbs[i], nil
}

func (d *lbDaemon) RemoveBackend(_ context.Context, lbUUID, backendUUID string) (api.LoadBalancer, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	i, err := d.find(lbUUID)
	if err != nil {
		return api.LoadBalancer{}, err
	}
	l := &d.lbs[i]
	for j, b := range l.Backends {
		if b.UUID == backendUUID {
			l.Backends = append(l.Backends[:j], l.Backends[j+1:]...)
			return *l, nil
		}
	}
	return api.LoadBalancer{}, fmt.Errorf("backend %q: %w", backendUUID, api.ErrNotFound)
}

// startLBDaemon serves d's API on a control socket in a temp dir and
// returns the socket's path.
func startLBDaemon(t *testing.T, d *lbDaemon) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "vipd.sock")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ln, err := api.ListenSocket(sock)
	if err != nil {
		t.Fatal(err)
	}
	go func() { done <- api.NewServer(d, slog.New(slog.DiscardHandler)).ServeSocket(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeSocket: %v", err)
		}
	})
	return sock
}

// vipd runs the CLI with args and returns its stdout and error.
func vipd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRootCmd()
	var out, stderr bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(t.Context())
	return out.String(), err
}

// mustVipd runs the CLI and fails the test on an error.
func mustVipd(t *testing.T, args ...string) string {
	t.Helper()
	out, err := vipd(t, args...)
	if err != nil {
		t.Fatalf("vipd %s: %v", strings.Join(args, " "), err)
	}
	return out
}

var addrComparer = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

func TestLBCreateSendsFlags(t *testing.T) {
	d := &lbDaemon{}
	sock := startLBDaemon(t, d)
	out := mustVipd(t, "--socket", sock, "lb", "create", "web", "--port", "80", "--protocol", "udp", "--mode", "nat",
		"--pool", "edge", "--address", "2001:db8::5", "--ports", "80,443", "--masquerade=false", "--on-empty", "announce",
		"--check", "http", "--check-path", "/hz", "--check-status", "204", "--check-interval", "2s",
		"--check-timeout", "300ms", "--check-rise", "3", "--check-fall", "4", "--nodes", "rack=a,n3")
	no := false
	want := lb.Spec{Name: "web", Port: 80, Protocol: lb.UDP, Mode: lb.ModeNAT, Pool: "edge",
		Address: netip.MustParseAddr("2001:db8::5"), Ports: []uint16{80, 443}, Masquerade: &no, OnEmpty: lb.OnEmptyAnnounce,
		Check: &lb.Check{Type: lb.CheckHTTP, Path: "/hz", StatusMin: 204, StatusMax: 204, Interval: 2 * time.Second,
			Timeout: 300 * time.Millisecond, Rise: 3, Fall: 4}, Nodes: []string{"rack=a", "n3"}}
	if diff := cmp.Diff(want, d.lastSpec, addrComparer); diff != "" {
		t.Errorf("spec (-want +got):\n%s", diff)
	}
	if !strings.Contains(out, "load balancer web created") || !strings.Contains(out, "198.51.100.1:80/tcp") {
		t.Errorf("create printed:\n%s", out)
	}

	// Unset flags leave the defaults to the daemon.
	out = mustVipd(t, "--socket", sock, "lb", "create", "web", "--port", "80")
	if diff := cmp.Diff(lb.Spec{Name: "web", Port: 80}, d.lastSpec, addrComparer); diff != "" {
		t.Errorf("spec of a bare create (-want +got):\n%s", diff)
	}
	if !strings.Contains(out, "exists already, unchanged") {
		t.Errorf("second create printed:\n%s", out)
	}
}

func TestLBUsage(t *testing.T) {
	token := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(token, []byte("t"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"lb"},
		{"lb", "bogus"},
		{"lb", "backend"},
		{"lb", "create", "web"},
		{"lb", "create", "--port", "80"},
		{"lb", "create", "web", "--port", "65536"},
		{"lb", "create", "web", "--port", "80", "--ports", "70000"},
		{"lb", "create", "web", "--port", "80", "--check-path", "/x"},
		{"lb", "create", "web", "--port", "80", "--check", "tcp", "--check-interval", "5"},
		{"lb", "show"},
		{"lb", "delete", "a", "b"},
		{"lb", "backend", "add", "web", "10.0.0.1"},
		{"lb", "backend", "add", "web", "10.0.0.1:80", "--weight", "-1"},
		{"lb", "backend", "remove", "web"},
		{"--api", "http://127.0.0.1:1", "lb", "list"},
		{"--token-file", token, "lb", "list"},
	} {
		_, err := vipd(t, append([]string{"--socket", "/nonexistent/vipd.sock"}, args...)...)
		var ue usageError
		if !errors.As(err, &ue) {
			t.Errorf("vipd %s: %v, want a usage error", strings.Join(args, " "), err)
		}
	}
}

func TestLBCommands(t *testing.T) {
	d := &lbDaemon{}
	sock := startLBDaemon(t, d)
	lbCmd := func(args ...string) string { return mustVipd(t, append([]string{"--socket", sock, "lb"}, args...)...) }
	lbCmd("create", "web", "--port", "80")
	lbCmd("create", "api", "--port", "443")

	out := lbCmd("list")
	for _, want := range []string{"NAME", "web", "uuid-1", "198.51.100.1:80", "api", "uuid-2", "0/0"} {
		if !strings.Contains(out, want) {
			t.Errorf("list lacks %q:\n%s", want, out)
		}
	}

	// Backends, by load balancer name and UUID.
	lbCmd("backend", "add", "web", "10.0.0.1:8080", "--weight", "5")
	if want := (lb.BackendSpec{IP: netip.MustParseAddr("10.0.0.1"), Port: 8080, Weight: 5}); d.lastBackend != want {
		t.Errorf("backend add sent %+v, want %+v", d.lastBackend, want)
	}
	lbCmd("backend", "add", "uuid-1", "[2001:db8::1]:8080")
	out = lbCmd("backend", "add", "web", ":9090")
	if want := (lb.BackendSpec{Port: 9090}); d.lastBackend != want {
		t.Errorf("local backend add sent %+v, want %+v", d.lastBackend, want)
	}
	for _, want := range []string{"10.0.0.1:8080", "[2001:db8::1]:8080", ":9090", "BACKEND"} {
		if !strings.Contains(out, want) {
			t.Errorf("backend add output lacks %q:\n%s", want, out)
		}
	}
	lbCmd("backend", "remove", "web", "10.0.0.1:8080")
	lbCmd("backend", "remove", "web", "[2001:db8:0::1]:8080") // the same address, written otherwise
	lbCmd("backend", "remove", "web", ":9090")
	if l, _ := d.LoadBalancer("uuid-1"); len(l.Backends) != 0 {
		t.Errorf("backends left after removing all: %+v", l.Backends)
	}
	lbCmd("backend", "add", "web", "10.0.0.2:80")
	lbCmd("backend", "remove", "web", d.LoadBalancers()[0].Backends[0].UUID)

	// JSON is the API's reply.
	var l api.LoadBalancer
	if err := json.Unmarshal([]byte(lbCmd("show", "uuid-2", "--json")), &l); err != nil || l.Name != "api" {
		t.Errorf("show --json: %+v %v", l, err)
	}
	var list []api.LoadBalancer
	if err := json.Unmarshal([]byte(lbCmd("list", "--json")), &list); err != nil || len(list) != 2 {
		t.Errorf("list --json: %+v %v", list, err)
	}

	out = lbCmd("delete", "api")
	if !strings.Contains(out, "api (uuid-2) deleted; 198.51.100.2 released") {
		t.Errorf("delete printed %q", out)
	}
	if n := len(d.LoadBalancers()); n != 1 {
		t.Errorf("%d load balancers after delete, want 1", n)
	}
}

func TestLBErrors(t *testing.T) {
	sock := startLBDaemon(t, &lbDaemon{})
	mustVipd(t, "--socket", sock, "lb", "create", "web", "--port", "80")
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"create", "x", "--port", "0"}, "port: want 1..65535"},                                // the daemon's field error
		{[]string{"create", "x", "--port", "1", "--address", "nope"}, "address: want an IPv4 or IPv6"}, // the API's
		{[]string{"show", "nope"}, `no load balancer has the UUID or name "nope"`},
		{[]string{"backend", "remove", "web", "10.9.9.9:1"}, `no backend with the UUID or address "10.9.9.9:1"`},
	} {
		_, err := vipd(t, append([]string{"--socket", sock, "lb"}, tt.args...)...)
		var ue usageError
		if err == nil || errors.As(err, &ue) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("vipd lb %s: %v, want an error (not usage) with %q", strings.Join(tt.args, " "), err, tt.want)
		}
	}
	_, err := vipd(t, "--socket", filepath.Join(t.TempDir(), "none.sock"), "lb", "list")
	if err == nil || !strings.Contains(err.Error(), "is vipd running?") {
		t.Errorf("lb list without a daemon: %v", err)
	}
}

func TestLBOverTCP(t *testing.T) {
	ln, err := api.ListenTCP("127.0.0.1:0", "", "")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	d := &lbDaemon{}
	go func() {
		done <- api.NewServer(d, slog.New(slog.DiscardHandler)).ServeTCP(ctx, ln, []byte("s3cret"))
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeTCP: %v", err)
		}
	})
	dir := t.TempDir()
	good, bad := filepath.Join(dir, "good"), filepath.Join(dir, "bad")
	os.WriteFile(good, []byte("s3cret\n"), 0o600)
	os.WriteFile(bad, []byte("guess"), 0o600)
	url := "http://" + ln.Addr().String()

	mustVipd(t, "--api", url, "--token-file", good, "lb", "create", "web", "--port", "80")
	if out := mustVipd(t, "--api", url, "--token-file", good, "lb", "list"); !strings.Contains(out, "web") {
		t.Errorf("list over TCP:\n%s", out)
	}
	if _, err := vipd(t, "--api", url, "--token-file", bad, "lb", "list"); err == nil || !strings.Contains(err.Error(), "wrong bearer token") {
		t.Errorf("list with a wrong token: %v", err)
	}
}

package api

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vipd/vipd/internal/lb"
)

// serve sends one request through the API handler over a fake backend.
func serve(b Backend, method, path, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	rec := httptest.NewRecorder()
	NewServer(b, slog.New(slog.DiscardHandler)).Handler().ServeHTTP(rec, req)
	return rec
}

// errorBody decodes an error reply, failing the test unless it is JSON
// with a message.
func errorBody(t *testing.T, rec *httptest.ResponseRecorder) Error {
	t.Helper()
	var e Error
	if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Message == "" {
		t.Fatalf("error reply %d %q: want JSON {error, field} (%v)", rec.Code, rec.Body, err)
	}
	return e
}

func TestLoadBalancerRoutes(t *testing.T) {
	const ok = `{"name": "api", "port": 443}`
	tests := []struct {
		name, method, path, body string
		wantCode                 int
		wantField                string // for error replies
		wantBackends             int    // for load balancer replies; -1: not one
	}{
		{"create", "POST", "/loadbalancer", ok, 201, "", 0},
		{"create same as existing", "POST", "/loadbalancer", `{"name": "web", "port": 80}`, 200, "", 1},
		{"create taken name", "POST", "/loadbalancer", `{"name": "web", "port": 81}`, 409, "", -1},
		{"create without name", "POST", "/loadbalancer", `{"port": 80}`, 400, "name", -1},
		{"create without port", "POST", "/loadbalancer", `{"name": "x"}`, 400, "port", -1},
		{"get", "GET", "/loadbalancer/lb-1", "", 200, "", 1},
		{"get unknown", "GET", "/loadbalancer/nope", "", 404, "", -1},
		{"delete unknown", "DELETE", "/loadbalancer/nope", "", 404, "", -1},
		{"add backend", "POST", "/loadbalancer/lb-1/backend", `{"ip": "10.0.0.2", "port": 8080, "weight": 3}`, 201, "", 2},
		{"add backend v6", "POST", "/loadbalancer/lb-1/backend", `{"ip": "2001:db8::2", "port": 8080}`, 201, "", 2},
		{"add backend twice", "POST", "/loadbalancer/lb-1/backend", `{"ip": "10.0.0.1", "port": 8080}`, 409, "", -1},
		{"add backend without ip", "POST", "/loadbalancer/lb-1/backend", `{"port": 8080}`, 400, "ip", -1},
		{"add backend bad ip", "POST", "/loadbalancer/lb-1/backend", `{"ip": "10.0.0.300", "port": 8080}`, 400, "ip", -1},
		{"add backend bad weight", "POST", "/loadbalancer/lb-1/backend", `{"ip": "10.0.0.2", "port": 1, "weight": -1}`, 400, "weight", -1},
		{"add backend unknown field", "POST", "/loadbalancer/lb-1/backend", `{"ip": "10.0.0.2", "port": 1, "wieght": 1}`, 400, "wieght", -1},
		{"add backend to unknown", "POST", "/loadbalancer/nope/backend", `{"ip": "10.0.0.2", "port": 1}`, 404, "", -1},
		{"remove backend", "DELETE", "/loadbalancer/lb-1/backend/be-1", "", 200, "", 0},
		{"remove unknown backend", "DELETE", "/loadbalancer/lb-1/backend/be-9", "", 404, "", -1},
		{"remove backend of unknown", "DELETE", "/loadbalancer/nope/backend/be-1", "", 404, "", -1},
		{"wrong method", "PUT", "/loadbalancer/lb-1", ok, 405, "", -1},
		{"wrong method on create", "GET", "/loadbalancer", "", 405, "", -1},
		{"unknown path", "GET", "/loadbalancer/lb-1/nope", "", 404, "", -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := serve(newFakeLBs(), tt.method, tt.path, tt.body)
			if rec.Code != tt.wantCode {
				t.Fatalf("%s %s: %d %s, want %d", tt.method, tt.path, rec.Code, rec.Body, tt.wantCode)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q, want application/json", ct)
			}
			if tt.wantCode >= 400 {
				if e := errorBody(t, rec); e.Field != tt.wantField {
					t.Errorf("field %q (%s), want %q", e.Field, e.Message, tt.wantField)
				}
				return
			}
			if tt.wantBackends < 0 {
				return
			}
			var l LoadBalancer
			if err := json.Unmarshal(rec.Body.Bytes(), &l); err != nil || l.UUID == "" {
				t.Fatalf("reply %s: want a load balancer (%v)", rec.Body, err)
			}
			if len(l.Backends) != tt.wantBackends {
				t.Errorf("%d backends, want %d: %+v", len(l.Backends), tt.wantBackends, l.Backends)
			}
		})
	}
}

func TestCreateIsIdempotent(t *testing.T) {
	f := newFakeLBs()
	body := `{"name": "api", "port": 443, "check": {"type": "tcp"}}`
	first := serve(f, "POST", "/loadbalancer", body)
	again := serve(f, "POST", "/loadbalancer", body)
	if first.Code != http.StatusCreated || again.Code != http.StatusOK {
		t.Fatalf("create twice: %d then %d, want 201 then 200", first.Code, again.Code)
	}
	if first.Body.String() != again.Body.String() {
		t.Errorf("second create answered\n%s\nwant the first's\n%s", again.Body, first.Body)
	}
	if loc := first.Header().Get("Location"); loc != "/loadbalancer/lb-2" {
		t.Errorf("Location %q, want /loadbalancer/lb-2", loc)
	}
	if n := len(f.LoadBalancers()); n != 2 {
		t.Errorf("%d load balancers after creating one twice, want 2", n)
	}
}

func TestDeleteLoadBalancer(t *testing.T) {
	f := newFakeLBs()
	rec := serve(f, "DELETE", "/loadbalancer/lb-1", "")
	var d Deleted
	if err := json.Unmarshal(rec.Body.Bytes(), &d); rec.Code != 200 || err != nil || d != (Deleted{UUID: "lb-1", Deleted: true}) {
		t.Fatalf("DELETE: %d %s", rec.Code, rec.Body)
	}
	if rec := serve(f, "GET", "/loadbalancers", ""); strings.TrimSpace(rec.Body.String()) != "[]" {
		t.Errorf("list after delete: %s, want an empty array", rec.Body)
	}
}

func TestListLoadBalancers(t *testing.T) {
	rec := serve(newFakeLBs(), "GET", "/loadbalancers", "")
	var list []map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &list); rec.Code != 200 || err != nil || len(list) != 1 {
		t.Fatalf("GET /loadbalancers: %d %s (%v), want an array of one", rec.Code, rec.Body, err)
	}
	// The Vippy shape, exactly: these keys, and backends with theirs.
	for _, k := range []string{"uuid", "name", "eip", "port", "protocol", "mode", "backends"} {
		if _, ok := list[0][k]; !ok {
			t.Errorf("load balancer lacks %q: %v", k, list[0])
		}
	}
	be := list[0]["backends"].([]any)[0].(map[string]any)
	want := map[string]any{"uuid": "be-1", "ip": "10.0.0.1", "port": 8080.0, "weight": 1.0, "state": "up"}
	if diff := cmp.Diff(want, be); diff != "" {
		t.Errorf("backend (-want +got):\n%s", diff)
	}
}

// TestCreateDecodesEveryField sends every request field and checks the
// spec the backend got, and that the reply shows the check as it was sent.
func TestCreateDecodesEveryField(t *testing.T) {
	f := newFakeLBs()
	body := `{"name": "api", "port": 443, "protocol": "udp", "mode": "local", "pool": "edge",
		"address": "2001:db8::10", "ports": [80, 8443], "masquerade": false, "on_empty": "announce",
		"check": {"type": "http", "path": "/healthz", "expect_status": "204", "interval": "2s",
		"fast_interval": "500ms", "timeout": "300ms", "rise": 3, "fall": 4}}`
	rec := serve(f, "POST", "/loadbalancer", body)
	if rec.Code != http.StatusCreated {
		t.Fatalf("create: %d %s", rec.Code, rec.Body)
	}
	no := false
	want := lb.Spec{Name: "api", Port: 443, Protocol: lb.UDP, Mode: lb.ModeLocal, Pool: "edge",
		Address: netip.MustParseAddr("2001:db8::10"), Ports: []uint16{80, 8443}, Masquerade: &no,
		OnEmpty: lb.OnEmptyAnnounce, Check: &lb.Check{Type: lb.CheckHTTP, Path: "/healthz", StatusMin: 204,
			StatusMax: 204, Interval: 2 * time.Second, FastInterval: 500 * time.Millisecond, Timeout: 300 * time.Millisecond, Rise: 3, Fall: 4}}
	if diff := cmp.Diff(want, f.lastSpec, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("spec (-want +got):\n%s", diff)
	}
	var got LoadBalancer
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	wantCheck := Check{Type: "http", Path: "/healthz", ExpectStatus: "204", Interval: "2s", FastInterval: "500ms", Timeout: "300ms", Rise: 3, Fall: 4}
	if got.Check == nil || *got.Check != wantCheck {
		t.Errorf("reply check %+v, want %+v", got.Check, wantCheck)
	}
	if got.EIP != "2001:db8::10" || got.Masquerade || got.OnEmpty != "announce" || !cmp.Equal(got.Ports, []uint16{80, 8443}) {
		t.Errorf("reply %+v does not show the spec", got)
	}
}

func TestNewLoadBalancer(t *testing.T) {
	yes := true
	l := lb.LoadBalancer{UUID: "u", Spec: lb.Spec{Name: "n", Port: 80, Protocol: lb.TCP, Mode: lb.ModeNAT,
		Pool: "p", Address: netip.MustParseAddr("198.51.100.7"), Masquerade: &yes, OnEmpty: lb.OnEmptyWithdraw,
		Check: &lb.Check{Type: lb.CheckTCP, Interval: time.Second, Timeout: time.Second, Rise: 2, Fall: 2}},
		Backends: []lb.Backend{{UUID: "b1", IP: netip.MustParseAddr("10.0.0.1"), Port: 8080, Weight: 1},
			{UUID: "b2", IP: netip.MustParseAddr("10.0.0.2"), Port: 8080, Weight: 2}},
		Created: time.Unix(1700000000, 0).UTC()}
	state := func(b lb.Backend) lb.BackendState {
		if b.UUID == "b1" {
			return lb.BackendUp
		}
		return lb.BackendDown
	}
	got := NewLoadBalancer(l, state, false, "no backend up")
	want := LoadBalancer{UUID: "u", Name: "n", EIP: "198.51.100.7", Port: 80, Protocol: "tcp", Mode: "nat", Pool: "p",
		Ports: []uint16{}, Masquerade: true, OnEmpty: "withdraw", LocalPref: 100,
		Check: &Check{Type: "tcp", Interval: "1s", Timeout: "1s", Rise: 2, Fall: 2},
		Backends: []LoadBalancerBackend{{UUID: "b1", IP: "10.0.0.1", Port: 8080, Weight: 1, State: "up"},
			{UUID: "b2", IP: "10.0.0.2", Port: 8080, Weight: 2, State: "down"}},
		Reason: "no backend up", Created: l.Created, Nodes: []string{}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("NewLoadBalancer (-want +got):\n%s", diff)
	}
	// Empty lists are arrays on the wire, never null.
	data, _ := json.Marshal(NewLoadBalancer(lb.LoadBalancer{}, state, false, ""))
	for _, k := range []string{`"ports":[]`, `"backends":[]`, `"check":null`, `"eip":""`} {
		if !strings.Contains(string(data), k) {
			t.Errorf("empty load balancer %s lacks %s", data, k)
		}
	}
}

// TestClientLoadBalancers drives every load-balancer route through the
// client and the control socket.
func TestClientLoadBalancers(t *testing.T) {
	c := NewClient(startServer(t, newFakeLBs()))
	ctx := context.Background()
	req := LoadBalancerRequest{Name: "api", Port: 443, Check: &Check{Type: "tcp"}}
	l, created, err := c.CreateLoadBalancer(ctx, req)
	if err != nil || !created || l.Name != "api" || l.EIP == "" {
		t.Fatalf("create: %+v %v %v", l, created, err)
	}
	if again, created, err := c.CreateLoadBalancer(ctx, req); err != nil || created || again.UUID != l.UUID {
		t.Fatalf("create again: %+v %v %v, want the same one, not created", again, created, err)
	}
	l, err = c.AddBackend(ctx, l.UUID, BackendRequest{IP: "10.0.0.5", Port: 8443, Weight: 2})
	if err != nil || len(l.Backends) != 1 || l.Backends[0].Weight != 2 {
		t.Fatalf("add backend: %+v %v", l, err)
	}
	if got, err := c.LoadBalancer(ctx, l.UUID); err != nil || len(got.Backends) != 1 {
		t.Fatalf("get: %+v %v", got, err)
	}
	if l, err = c.RemoveBackend(ctx, l.UUID, l.Backends[0].UUID); err != nil || len(l.Backends) != 0 {
		t.Fatalf("remove backend: %+v %v", l, err)
	}
	if err := c.DeleteLoadBalancer(ctx, l.UUID); err != nil {
		t.Fatalf("delete: %v", err)
	}
	list, err := c.LoadBalancers(ctx)
	if err != nil || len(list) != 1 || list[0].Name != "web" {
		t.Fatalf("list: %+v %v, want only web", list, err)
	}
	_, _, err = c.CreateLoadBalancer(ctx, LoadBalancerRequest{Name: "x", Port: 1, Address: "nope"})
	var he *HTTPError
	if !errors.As(err, &he) || he.Status != http.StatusBadRequest || he.Field != "address" ||
		!strings.HasPrefix(err.Error(), "address: ") {
		t.Errorf("create with a bad address: %v, want a 400 naming address", err)
	}
	if err := c.DeleteLoadBalancer(ctx, "nope"); !errors.As(err, &he) || he.Status != http.StatusNotFound {
		t.Errorf("delete unknown: %v, want 404", err)
	}
}

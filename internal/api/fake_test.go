package api

import (
	"context"
	"fmt"
	"net/netip"
	"reflect"
	"sync"
	"time"

	"github.com/vipd/vipd/internal/lb"
)

// fakeLBs is a Backend with load balancers kept in memory. It plays the
// agent's answers: a few field checks (name, port, a backend's ip outside
// local mode), 404 for unknown UUIDs and 409 for taken names and backends,
// with lb's errors (the registry's) and api's.
// It records the last spec it got, so tests can see what the handler
// decoded.
type fakeLBs struct {
	fixedBackend

	mu          sync.Mutex
	lbs         []lb.LoadBalancer
	requested   map[string]lb.Spec // by UUID: the spec as the client sent it
	next        int
	lastSpec    lb.Spec
	lastBackend lb.BackendSpec
}

var _ Backend = (*fakeLBs)(nil)

// newFakeLBs returns a fake holding one load balancer, "web" (UUID lb-1)
// on 198.51.100.1:80 with one backend, 10.0.0.1:8080 (UUID be-1).
func newFakeLBs() *fakeLBs {
	f := &fakeLBs{requested: map[string]lb.Spec{}}
	spec := lb.Spec{Name: "web", Port: 80}
	l := f.add(spec)
	l.Backends = append(l.Backends, lb.Backend{UUID: "be-1", IP: netip.MustParseAddr("10.0.0.1"), Port: 8080, Weight: 1})
	return f
}

// add stores a load balancer for spec with the fake's defaults filled in.
func (f *fakeLBs) add(spec lb.Spec) *lb.LoadBalancer {
	f.next++
	uuid := fmt.Sprintf("lb-%d", f.next)
	f.requested[uuid] = spec
	if !spec.Address.IsValid() {
		spec.Address = netip.AddrFrom4([4]byte{198, 51, 100, byte(f.next)})
	}
	if spec.Protocol == "" {
		spec.Protocol = lb.TCP
	}
	if spec.Mode == "" {
		spec.Mode = lb.ModeNAT
	}
	f.lbs = append(f.lbs, lb.LoadBalancer{UUID: uuid, Spec: spec, Created: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)})
	return &f.lbs[len(f.lbs)-1]
}

// Cluster plays a backend with a cluster section when the fixed status
// has one.
func (f *fakeLBs) Cluster() (ClusterStatus, error) {
	if f.fixedBackend.Cluster == nil {
		return ClusterStatus{}, fmt.Errorf("no cluster section: %w", ErrNotFound)
	}
	return *f.fixedBackend.Cluster, nil
}

func render(l lb.LoadBalancer) LoadBalancer {
	return NewLoadBalancer(l, func(lb.Backend) lb.BackendState { return lb.BackendUp }, true, "backends up")
}

func (f *fakeLBs) find(uuid string) (*lb.LoadBalancer, error) {
	for i := range f.lbs {
		if f.lbs[i].UUID == uuid {
			return &f.lbs[i], nil
		}
	}
	return nil, fmt.Errorf("load balancer %q: %w", uuid, lb.ErrNotFound)
}

func (f *fakeLBs) CreateLoadBalancer(_ context.Context, spec lb.Spec) (LoadBalancer, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastSpec = spec
	switch {
	case spec.Name == "":
		return LoadBalancer{}, false, &lb.FieldError{Field: "name", Msg: "required"}
	case spec.Port == 0:
		return LoadBalancer{}, false, &lb.FieldError{Field: "port", Msg: "want 1..65535"}
	}
	for _, l := range f.lbs {
		if l.Spec.Name != spec.Name {
			continue
		}
		if !reflect.DeepEqual(f.requested[l.UUID], spec) {
			return LoadBalancer{}, false, fmt.Errorf("load balancer %q exists with another spec: %w", spec.Name, ErrConflict)
		}
		return render(l), false, nil
	}
	return render(*f.add(spec)), true, nil
}

func (f *fakeLBs) LoadBalancers() []LoadBalancer {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []LoadBalancer
	for _, l := range f.lbs {
		out = append(out, render(l))
	}
	return out
}

func (f *fakeLBs) LoadBalancer(uuid string) (LoadBalancer, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	l, err := f.find(uuid)
	if err != nil {
		return LoadBalancer{}, err
	}
	return render(*l), nil
}

func (f *fakeLBs) DeleteLoadBalancer(_ context.Context, uuid string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.lbs {
		if f.lbs[i].UUID == uuid {
			f.lbs = append(f.lbs[:i], f.lbs[i+1:]...)
			return nil
		}
	}
	return fmt.Errorf("load balancer %q: %w", uuid, ErrNotFound)
}

func (f *fakeLBs) AddBackend(_ context.Context, lbUUID string, b lb.BackendSpec) (LoadBalancer, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastBackend = b
	l, err := f.find(lbUUID)
	if err != nil {
		return LoadBalancer{}, err
	}
	switch {
	case !b.IP.IsValid() && l.Spec.Mode != lb.ModeLocal:
		return LoadBalancer{}, &lb.FieldError{Field: "ip", Msg: "required in nat mode"}
	case b.Port == 0:
		return LoadBalancer{}, &lb.FieldError{Field: "port", Msg: "want 1..65535"}
	}
	for _, have := range l.Backends {
		if have.IP == b.IP && have.Port == b.Port {
			return LoadBalancer{}, fmt.Errorf("backend %s: %w", have.Key(), lb.ErrConflict)
		}
	}
	f.next++
	l.Backends = append(l.Backends, lb.Backend{UUID: fmt.Sprintf("be-%d", f.next), IP: b.IP, Port: b.Port, Weight: max(b.Weight, 1)})
	return render(*l), nil
}

func (f *fakeLBs) RemoveBackend(_ context.Context, lbUUID, backendUUID string) (LoadBalancer, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	l, err := f.find(lbUUID)
	if err != nil {
		return LoadBalancer{}, err
	}
	for i, b := range l.Backends {
		if b.UUID == backendUUID {
			l.Backends = append(l.Backends[:i], l.Backends[i+1:]...)
			return render(*l), nil
		}
	}
	return LoadBalancer{}, fmt.Errorf("backend %q: %w", backendUUID, ErrNotFound)
}

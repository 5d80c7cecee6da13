package lb

import (
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/vipd/vipd/internal/config"
)

// Errors the Registry wraps, so callers can choose a reply.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict")
)

// Registry is this node's set of load balancers and the pools their
// addresses come from. It never changes on its own: the Plan methods
// return the load balancer a request would make, without changing
// anything, so the caller can persist it first and then Put it. That way
// a failed write leaves memory and disk alike.
//
// A Registry is not safe for concurrent use.
type Registry struct {
	pools  []config.Pool
	byUUID map[string]*LoadBalancer
	now    func() time.Time
	host   HostAddrs // nil: the host's addresses are not looked at
}

// HostAddrs returns the addresses the operator has on this host's
// interfaces (those vipd did not add), each with its interface. vipd
// leaves such an address alone, so a load balancer given it would be
// announced and DNATed on an address vipd does not own.
type HostAddrs func() (map[netip.Addr]string, error)

// SetHostAddrs makes the registry skip the host's own addresses when it
// allocates, and refuse an explicit request for one.
func (r *Registry) SetHostAddrs(f HostAddrs) { r.host = f }

// NewRegistry returns a registry holding lbs (as loaded from the store).
// It fails if one of them does not fit pools, naming it, so a stale state
// is never silently dropped.
func NewRegistry(pools []config.Pool, lbs []LoadBalancer) (*Registry, error) {
	r := &Registry{byUUID: make(map[string]*LoadBalancer), now: time.Now}
	for i := range lbs {
		l := lbs[i]
		if err := r.checkUnique(&l); err != nil {
			return nil, err
		}
		r.byUUID[l.UUID] = &l
	}
	if err := r.SetPools(pools); err != nil {
		return nil, err
	}
	return r, nil
}

// NewView returns a registry over lbs that another store keeps
// consistent, to plan changes against: the cluster store, whose nodes may
// each configure other pools, and whose transactions confirm each plan.
// Nothing is checked.
func NewView(pools []config.Pool, lbs []LoadBalancer) *Registry {
	r := &Registry{byUUID: make(map[string]*LoadBalancer, len(lbs)), now: time.Now, pools: slices.Clone(pools)}
	for i := range lbs {
		r.byUUID[lbs[i].UUID] = &lbs[i]
	}
	return r
}

// CheckPools reports, naming each, the load balancers whose address pools
// would orphan.
func (r *Registry) CheckPools(pools []config.Pool) error {
	var errs []error
	for _, l := range r.List() {
		p := findPool(pools, l.Spec.Pool)
		switch {
		case p == nil:
			errs = append(errs, fmt.Errorf("load balancer %q (%s) holds %s from pool %q, and there is no such pool", l.Spec.Name, l.UUID, l.Address(), l.Spec.Pool))
		case !inPool(p, l.Address()):
			errs = append(errs, fmt.Errorf("load balancer %q (%s) holds %s, which is not in pool %q (%s)", l.Spec.Name, l.UUID, l.Address(), p.Name, prefixList(p.Prefixes)))
		}
	}
	return errors.Join(errs...)
}

// SetPools replaces the pools after CheckPools; if it fails, nothing
// changes.
func (r *Registry) SetPools(pools []config.Pool) error {
	if err := r.CheckPools(pools); err != nil {
		return err
	}
	r.pools = slices.Clone(pools)
	return nil
}

// Pools returns the current pools.
func (r *Registry) Pools() []config.Pool { return r.pools }

// List returns every load balancer, sorted by name.
func (r *Registry) List() []LoadBalancer {
	out := make([]LoadBalancer, 0, len(r.byUUID))
	for _, l := range r.byUUID {
		out = append(out, *l)
	}
	slices.SortFunc(out, func(a, b LoadBalancer) int { return strings.Compare(a.Spec.Name, b.Spec.Name) })
	return out
}

// Get returns the load balancer with the UUID, or an error wrapping
// ErrNotFound.
func (r *Registry) Get(id string) (LoadBalancer, error) {
	l, ok := r.byUUID[id]
	if !ok {
		return LoadBalancer{}, fmt.Errorf("load balancer %q: %w", id, ErrNotFound)
	}
	return *l, nil
}

// PlanCreate returns the load balancer spec would create, with a new UUID
// and an address from its pool. If one with the same name and spec exists,
// it returns that one and exists is true. Errors are *FieldError (bad
// spec) or wrap ErrConflict.
func (r *Registry) PlanCreate(spec Spec) (l LoadBalancer, exists bool, err error) {
	spec = spec.WithDefaults()
	if err := spec.Validate(); err != nil {
		return LoadBalancer{}, false, err
	}
	pool, err := r.choosePool(spec)
	if err != nil {
		return LoadBalancer{}, false, err
	}
	spec.Pool = pool.Name
	if old := r.byName(spec.Name); old != nil {
		if !sameSpec(old.Spec, spec) {
			return LoadBalancer{}, false, fmt.Errorf("name %q is taken by load balancer %s with a different spec: %w", spec.Name, old.UUID, ErrConflict)
		}
		return *old, true, nil
	}
	host, err := r.hostAddrs()
	if err != nil {
		return LoadBalancer{}, false, err
	}
	if spec.Address.IsValid() {
		if other := r.byAddress(spec.Address); other != nil {
			return LoadBalancer{}, false, fmt.Errorf("address %s is held by load balancer %q: %w", spec.Address, other.Spec.Name, ErrConflict)
		}
		if ifname, ok := host[spec.Address]; ok {
			return LoadBalancer{}, false, fmt.Errorf("address %s is already on this host (interface %s), put there by someone else: %w", spec.Address, ifname, ErrConflict)
		}
	} else if spec.Address, err = r.allocate(pool, host); err != nil {
		return LoadBalancer{}, false, err
	}
	return LoadBalancer{UUID: uuid.NewString(), Spec: spec, Created: r.now().UTC()}, false, nil
}

// sameSpec reports whether a repeated create asks for what exists: an
// omitted address matches whatever was allocated.
func sameSpec(have, want Spec) bool {
	if !want.Address.IsValid() {
		want.Address = have.Address
	}
	return reflect.DeepEqual(have, want)
}

// choosePool returns the pool a spec draws from: the named one, the one
// holding its address, or the only one.
func (r *Registry) choosePool(spec Spec) (*config.Pool, error) {
	switch {
	case len(r.pools) == 0:
		return nil, fieldErrorf("pool", "no pools are configured: add one under pools in the config file")
	case spec.Pool != "":
		p := findPool(r.pools, spec.Pool)
		if p == nil {
			return nil, fieldErrorf("pool", "no pool named %q", spec.Pool)
		}
		if spec.Address.IsValid() && !inPool(p, spec.Address) {
			return nil, fieldErrorf("address", "%s is not in pool %q (%s)", spec.Address, p.Name, prefixList(p.Prefixes))
		}
		return p, nil
	case spec.Address.IsValid():
		p := poolOf(r.pools, spec.Address)
		if p == nil {
			return nil, fieldErrorf("address", "%s is in no pool", spec.Address)
		}
		return p, nil
	case len(r.pools) > 1:
		return nil, fieldErrorf("pool", "required: %d pools are configured", len(r.pools))
	}
	return &r.pools[0], nil
}

// hostAddrs asks for the host's own addresses, if the registry was told
// how. A failure refuses the create: handing out an address that may be
// the operator's is worse than answering 500.
func (r *Registry) hostAddrs() (map[netip.Addr]string, error) {
	if r.host == nil {
		return nil, nil
	}
	m, err := r.host()
	if err != nil {
		return nil, fmt.Errorf("look up the host's addresses: %w", err)
	}
	return m, nil
}

// allocate returns the lowest free address of pool: one no load balancer
// holds, not already on the host, and not special (config refuses pools
// over special blocks; this keeps a stale pool from handing one out).
func (r *Registry) allocate(pool *config.Pool, host map[netip.Addr]string) (netip.Addr, error) {
	for _, p := range pool.Prefixes {
		// At most one step per address in use, on the host or special, so
		// this ends quickly even in a /64.
		for a := p.Masked().Addr(); p.Contains(a); a = a.Next() {
			_, onHost := host[a]
			if r.byAddress(a) == nil && !onHost && config.SpecialAddr(a) == "" {
				return a, nil
			}
		}
	}
	return netip.Addr{}, fmt.Errorf("pool %q is exhausted: every address is held by a load balancer or already on this host: %w", pool.Name, ErrConflict)
}

// PlanAddBackend returns load balancer id with backend b added. Adding a
// backend it already has, with the same weight, changes nothing.
func (r *Registry) PlanAddBackend(id string, b BackendSpec) (LoadBalancer, error) {
	l, err := r.Get(id)
	if err != nil {
		return l, err
	}
	b = b.WithDefaults(&l)
	if err := b.Validate(&l); err != nil {
		return LoadBalancer{}, err
	}
	for _, have := range l.Backends {
		if have.IP == b.IP && have.Port == b.Port {
			if have.Weight != b.Weight {
				return LoadBalancer{}, fmt.Errorf("backend %s is already there (%s) with weight %d: %w", have.AddrPort(), have.UUID, have.Weight, ErrConflict)
			}
			return l, nil
		}
	}
	if len(l.Backends) >= MaxBackends {
		return LoadBalancer{}, fmt.Errorf("load balancer %q has the most backends allowed (%d): %w", l.Spec.Name, MaxBackends, ErrConflict)
	}
	l.Backends = append(slices.Clone(l.Backends), Backend{UUID: uuid.NewString(), IP: b.IP, Port: b.Port, Weight: b.Weight})
	return l, nil
}

// PlanRemoveBackend returns load balancer id without the backend.
func (r *Registry) PlanRemoveBackend(id, backendID string) (LoadBalancer, error) {
	l, err := r.Get(id)
	if err != nil {
		return l, err
	}
	i := slices.IndexFunc(l.Backends, func(b Backend) bool { return b.UUID == backendID })
	if i < 0 {
		return LoadBalancer{}, fmt.Errorf("load balancer %q has no backend %q: %w", l.Spec.Name, backendID, ErrNotFound)
	}
	l.Backends = slices.Delete(slices.Clone(l.Backends), i, i+1)
	return l, nil
}

// Put stores l, as planned and persisted.
func (r *Registry) Put(l LoadBalancer) {
	r.byUUID[l.UUID] = &l
}

// Remove forgets load balancer id, releasing its address.
func (r *Registry) Remove(id string) {
	delete(r.byUUID, id)
}

// checkUnique refuses a loaded load balancer whose UUID, name or address
// another already has: the store was edited or damaged.
func (r *Registry) checkUnique(l *LoadBalancer) error {
	switch {
	case r.byUUID[l.UUID] != nil:
		return fmt.Errorf("load balancer %s is stored twice", l.UUID)
	case r.byName(l.Spec.Name) != nil:
		return fmt.Errorf("load balancers %s and %s are both named %q", r.byName(l.Spec.Name).UUID, l.UUID, l.Spec.Name)
	case r.byAddress(l.Address()) != nil:
		return fmt.Errorf("load balancers %s and %s both hold %s", r.byAddress(l.Address()).UUID, l.UUID, l.Address())
	}
	return nil
}

func (r *Registry) byName(name string) *LoadBalancer {
	for _, l := range r.byUUID {
		if l.Spec.Name == name {
			return l
		}
	}
	return nil
}

func (r *Registry) byAddress(a netip.Addr) *LoadBalancer {
	for _, l := range r.byUUID {
		if l.Address() == a {
			return l
		}
	}
	return nil
}

func findPool(pools []config.Pool, name string) *config.Pool {
	for i := range pools {
		if pools[i].Name == name {
			return &pools[i]
		}
	}
	return nil
}

func poolOf(pools []config.Pool, a netip.Addr) *config.Pool {
	for i := range pools {
		if inPool(&pools[i], a) {
			return &pools[i]
		}
	}
	return nil
}

func inPool(p *config.Pool, a netip.Addr) bool {
	return slices.ContainsFunc(p.Prefixes, func(pfx netip.Prefix) bool { return pfx.Contains(a) })
}

func prefixList(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}
